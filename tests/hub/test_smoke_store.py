from sqlalchemy import inspect


def test_migrations_create_every_table(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"source_records", "record_identifiers", "persons", "subject_requests", "tasks",
            "suppressions", "audit_events", "audit_head", "alembic_version"} <= tables
