"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 00:45:09.877569
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_request_id'), ['request_id'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('person_lineage',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('other_person_id', sa.String(length=32), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('person_lineage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_lineage_other_person_id'), ['other_person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_lineage_person_id'), ['person_id'], unique=False)

    op.create_table('persons',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_into', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('source_records',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.String(length=160), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=True),
    sa.Column('name_key', sa.String(length=255), nullable=True),
    sa.Column('vendor_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('ident_hash', sa.String(length=32), nullable=False),
    sa.Column('seen_sync', sa.Integer(), nullable=False),
    sa.Column('gone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('dirty', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('system', 'record_id', name='uq_source_records_system_record')
    )
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.create_index('ix_source_records_dirty', ['dirty'], unique=False)
        batch_op.create_index('ix_source_records_person', ['person_id'], unique=False)

    op.create_table('subject_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('origin', sa.String(length=24), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('extended_due_on', sa.Date(), nullable=True),
    sa.Column('extension_reason', sa.Text(), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('subject_name', sa.String(length=255), nullable=True),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subject_requests_state'), ['state'], unique=False)

    op.create_table('suppressions',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hash', 'reason')
    )
    op.create_table('sync_state',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('cursor', sa.String(length=255), nullable=True),
    sa.Column('sync_counter', sa.Integer(), nullable=False),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_full_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('system')
    )
    op.create_table('record_identifiers',
    sa.Column('record_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['record_pk'], ['source_records.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('record_pk', 'kind', 'value')
    )
    with op.batch_alter_table('record_identifiers', schema=None) as batch_op:
        batch_op.create_index('ix_record_identifiers_value', ['kind', 'value'], unique=False)

    op.create_table('request_identifiers',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=True),
    sa.Column('masked', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['subject_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'kind', 'hash')
    )
    with op.batch_alter_table('request_identifiers', schema=None) as batch_op:
        batch_op.create_index('ix_request_identifiers_hash', ['hash'], unique=False)

    op.create_table('tasks',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['subject_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('request_id', 'system', name='uq_tasks_request_system')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_state'), ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_state'))
        batch_op.drop_index(batch_op.f('ix_tasks_request_id'))

    op.drop_table('tasks')
    with op.batch_alter_table('request_identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_request_identifiers_hash')

    op.drop_table('request_identifiers')
    with op.batch_alter_table('record_identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_record_identifiers_value')

    op.drop_table('record_identifiers')
    op.drop_table('sync_state')
    op.drop_table('suppressions')
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subject_requests_state'))

    op.drop_table('subject_requests')
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.drop_index('ix_source_records_person')
        batch_op.drop_index('ix_source_records_dirty')

    op.drop_table('source_records')
    op.drop_table('persons')
    with op.batch_alter_table('person_lineage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_lineage_person_id'))
        batch_op.drop_index(batch_op.f('ix_person_lineage_other_person_id'))

    op.drop_table('person_lineage')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_request_id'))

    op.drop_table('audit_events')
