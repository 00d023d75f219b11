"""index: partial indexes on the dirty flag and person id; identifiers by value with pk

A full build writes every record twice (inserted dirty without a person, then given
its person and made clean): each write paid an entry in every index. The dirty flag
is only ever searched for dirty records, and the person id only for a person, so
each index now holds only those rows: a new record enters neither person nor clean
index, and a clean record leaves the dirty one. The identifier index carries the
record's pk, so clustering reads identifiers in value order from the index alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_DIRTY = sa.text('dirty = TRUE')
_PERSON = sa.text('person_id IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.drop_index('ix_source_records_dirty')
        batch_op.drop_index('ix_source_records_person')
        batch_op.create_index('ix_source_records_dirty', ['dirty'], unique=False,
                              sqlite_where=_DIRTY, postgresql_where=_DIRTY)
        batch_op.create_index('ix_source_records_person', ['person_id'], unique=False,
                              sqlite_where=_PERSON, postgresql_where=_PERSON)
    with op.batch_alter_table('record_identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_record_identifiers_value')
        batch_op.create_index('ix_record_identifiers_value', ['kind', 'value', 'record_pk'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('record_identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_record_identifiers_value')
        batch_op.create_index('ix_record_identifiers_value', ['kind', 'value'], unique=False)
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.drop_index('ix_source_records_person')
        batch_op.drop_index('ix_source_records_dirty')
        batch_op.create_index('ix_source_records_person', ['person_id'], unique=False)
        batch_op.create_index('ix_source_records_dirty', ['dirty'], unique=False)
