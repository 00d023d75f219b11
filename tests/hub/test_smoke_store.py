from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hub.models import Base


def test_migrations_create_every_table(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"source_records", "record_identifiers", "persons", "subject_requests", "tasks",
            "suppressions", "audit_events", "audit_head", "legal_holds",
            "alembic_version"} <= tables


def test_migrations_build_exactly_the_models(store):
    """A model changed without a migration (or the reverse) shows up here, on both DBs."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
