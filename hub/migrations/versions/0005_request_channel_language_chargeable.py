"""how a request arrived, the subject's language, a repeated access request flagged

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=16), server_default='email',
                                      nullable=False))
        batch_op.add_column(sa.Column('language', sa.String(length=2), server_default='fi',
                                      nullable=False))
        batch_op.add_column(sa.Column('chargeable', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.drop_column('chargeable')
        batch_op.drop_column('language')
        batch_op.drop_column('channel')
