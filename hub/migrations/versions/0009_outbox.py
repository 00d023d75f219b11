"""the outbox of letters to subjects and ops staff; a request's postal address

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postal_address', sa.Text(), nullable=True))
    op.create_table(
        'outbox',
        sa.Column('id', BigId, primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('request_id', sa.String(length=32),
                  sa.ForeignKey('subject_requests.id', ondelete='CASCADE'), nullable=True),
        sa.Column('language', sa.String(length=2), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('recipient', sa.Text(), nullable=True),
        sa.Column('recipient_masked', sa.String(length=320), nullable=False),
        sa.Column('recipient_hash', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('body_hash', sa.String(length=64), nullable=False),
        sa.Column('attachments', sa.JSON(), nullable=True),
        sa.Column('document', sa.String(length=255), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('key', name='uq_outbox_key'),
    )
    op.create_index('ix_outbox_due', 'outbox', ['state', 'next_attempt_at'])
    op.create_index('ix_outbox_request_id', 'outbox', ['request_id'])


def downgrade() -> None:
    op.drop_index('ix_outbox_request_id', table_name='outbox')
    op.drop_index('ix_outbox_due', table_name='outbox')
    op.drop_table('outbox')
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.drop_column('postal_address')
