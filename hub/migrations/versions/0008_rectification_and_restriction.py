"""rectification's corrected values and restriction's frozen index records

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 11:00:00

`request_corrections` holds the corrected values of a rectification request, like
`request_identifiers` holds the identifiers: plaintext until the request settles.
`restricted_records` points at the index records of a person whose processing is
restricted (GDPR art. 18), so the nightly sync leaves them as they were.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('request_corrections',
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('field', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('masked', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['subject_requests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'field')
    )
    op.create_table('restricted_records',
    sa.Column('system', sa.String(length=32), nullable=False),
    sa.Column('record_id', sa.String(length=160), nullable=False),
    sa.Column('request_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'record_id')
    )


def downgrade() -> None:
    op.drop_table('restricted_records')
    op.drop_table('request_corrections')
