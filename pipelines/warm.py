"""What every op process needs, loaded once in the run's process instead of in each op.

The executor (pipelines/executor.py) imports this module in the run's process before it
forks the first op process. Found: each op process still spent about a second of CPU
before its op began, importing Dagster's storage classes (which the instance names in
its config and imports lazily) and resolving the code location's jobs, once per op
process; on a two-core machine four syncs or four system ops did it at once. Done here
once per run, every op process inherits it. Nothing is opened or started here (no
connection, no thread): a process that forks must hold none.
"""

import importlib
import os
from contextlib import suppress

import dagster._core.storage.sql as dagster_sql
from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._serdes.config_class import ConfigurableClassData

from connectors.http import tls_context
from hub.db import head_revision
from pipelines.definitions import defs


def _import_instance_classes() -> None:
    """Import the storage, compute-log and coordinator classes the instance is configured
    with (DAGSTER_HOME's dagster.yaml), without instantiating them."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        return
    try:
        ref = InstanceRef.from_dir(home)
    except Exception:  # noqa: BLE001 - a warm-up only: the op process will say what is wrong
        return
    for data in ref:
        if isinstance(data, ConfigurableClassData):
            try:
                importlib.import_module(data.module_name)
            except ImportError:
                continue


# What an op process imported lazily, found by listing the modules each one added (the
# instance, step execution, the compute-log paths, httpx's transport).
LAZY_MODULES = (
    "dagster._core.instance.factory", "dagster._core.execution.api",
    "dagster._core.execution.plan.execute_plan", "dagster._daemon",
    "dagster._core.secrets.env_file", "dagster._core.storage.migration.utils",
    "dagster._core.system_config.composite_descent", "dagster._core.utility_ops",
    "dagster._core.workspace.autodiscovery", "upath.implementations.local",
    "fsspec.implementations.local", "httpcore",
)
for _module in LAZY_MODULES:
    with suppress(ImportError):  # a later Dagster may have moved one: only slower
        importlib.import_module(_module)
_import_instance_classes()
# Every job resolved once (the asset job's graph took about a second per op process).
defs.get_repository_def().get_all_jobs()


class _ScriptsOnce:
    """Alembic's scripts of one location, read once per process.

    Dagster checks its SQLite storages' schema revision each time an op process
    connects to one (the run's event shard, the index shard, runs, schedules): a fresh
    ScriptDirectory that imports all 90 of its migration scripts each time, about 0.2 s
    of CPU per op process. The revisions cannot change while the code location runs;
    read here, every op process inherits them.
    """

    _read: dict[str, ScriptDirectory] = {}

    @classmethod
    def from_config(cls, config: Config) -> ScriptDirectory:
        location = config.get_main_option("script_location") or ""
        if location not in cls._read:
            cls._read[location] = ScriptDirectory.from_config(config)
        return cls._read[location]


# Dagster's SQLite storages share one script location. Should a later Dagster read its
# scripts elsewhere, this only stops saving the time.
dagster_sql.ScriptDirectory = _ScriptsOnce
_ScriptsOnce.from_config(dagster_sql.get_alembic_config(sqlite_event_log.__file__)
                         ).as_revision_number("head")
head_revision()  # the hub's own, for each op's store
tls_context()  # one TLS context for every vendor client of every op process
