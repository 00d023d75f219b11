"""index: partial indexes on the dirty flag and person id; identifiers without rowid

A full build writes every record twice (inserted dirty without a person, then given
its person and made clean): each write paid an entry in every index. The dirty flag
is only ever searched for dirty records, and the person id only for a person, so
each index now holds only those rows: a new record enters neither person nor clean
index, and a clean record leaves the dirty one. On SQLite the identifier table is
WITHOUT ROWID: its primary key is the table, one B-tree fewer to write per
identifier, and the value index then carries the record's pk, so clustering reads
identifiers in value order from the index alone (PostgreSQL has no rowid to drop).

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
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_identifiers('WITHOUT ROWID')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_identifiers('')
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.drop_index('ix_source_records_person')
        batch_op.drop_index('ix_source_records_dirty')
        batch_op.create_index('ix_source_records_person', ['person_id'], unique=False)
        batch_op.create_index('ix_source_records_dirty', ['dirty'], unique=False)


def _rebuild_identifiers(options: str) -> None:
    """Copy record_identifiers into a table of the same columns with these options:
    SQLite cannot change a table's rowid in place."""
    op.execute(
        'CREATE TABLE record_identifiers_new ('
        'record_pk INTEGER NOT NULL, kind VARCHAR(16) NOT NULL, value VARCHAR(320) NOT NULL, '
        'PRIMARY KEY (record_pk, kind, value), '
        'FOREIGN KEY(record_pk) REFERENCES source_records (pk) ON DELETE CASCADE'
        f') {options}')
    op.execute('INSERT INTO record_identifiers_new (record_pk, kind, value) '
               'SELECT record_pk, kind, value FROM record_identifiers')
    op.execute('DROP TABLE record_identifiers')
    op.execute('ALTER TABLE record_identifiers_new RENAME TO record_identifiers')
    op.create_index('ix_record_identifiers_value', 'record_identifiers', ['kind', 'value'],
                    unique=False)
