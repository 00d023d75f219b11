"""vendor gates: each vendor account's pace and seats, shared by every process

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'vendor_gates',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('seat', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('next_at', sa.Float(), nullable=False),
        sa.Column('holder', sa.String(length=100), nullable=True),
        sa.Column('held_until', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('key', 'seat'),
    )


def downgrade() -> None:
    op.drop_table('vendor_gates')
