"""review of candidate records, the task action journal, found identifiers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('review_items',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('container', sa.String(length=160), nullable=False),
    sa.Column('record_id', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['subject_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('request_id', 'system', 'kind', 'container', 'record_id', name='uq_review_items_record')
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_items_request_id'), ['request_id'], unique=False)

    op.create_table('task_actions',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('container', sa.String(length=160), nullable=False),
    sa.Column('record_id', sa.String(length=160), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('vendor_request_id', sa.String(length=160), nullable=True),
    sa.Column('legal_basis', sa.Text(), nullable=True),
    sa.Column('retained_until', sa.Date(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['subject_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('task_actions', schema=None) as batch_op:
        batch_op.create_index('ix_task_actions_task', ['request_id', 'system'], unique=False)

    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_round', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('request_identifiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=8), server_default='given', nullable=False))
        batch_op.add_column(sa.Column('shared', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('request_identifiers', schema=None) as batch_op:
        batch_op.drop_column('shared')
        batch_op.drop_column('source')
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.drop_column('run_round')
    with op.batch_alter_table('task_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_task_actions_task')
    op.drop_table('task_actions')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_items_request_id'))
    op.drop_table('review_items')
