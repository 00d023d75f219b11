"""The executor every hub job runs on: one op process per system, forked from the run.

The system ops and the syncs wait on vendors, not on the CPU, so they all run at once;
each vendor's limit is kept per call by the connectors' gates (connectors/gates.py).
"""

import importlib

from dagster import executor, multiple_process_executor_requirements, multiprocess_executor
from dagster._core.definitions.executor_definition import _core_multiprocess_executor_creation
from dagster._core.executor.multiprocess import MultiprocessExecutor

from connectors import registry

SYSTEMS = registry.names()
WARM = "pipelines.warm"  # what every op process inherits, imported by the run first


def _one_process_per_system(config: dict) -> dict:
    """The system ops wait on vendors, not on the CPU, so all of them run at once.

    Dagster's default runs one op process per core: on a two-core machine the four
    vendors went two by two and a request took as long as its two slowest systems
    added up. An explicit `max_concurrent` (0 = one per core) still wins.
    """
    defaults = {"max_concurrent": len(SYSTEMS)}
    return {**defaults, **{key: value for key, value in config.items() if value is not None}}


def _forked(config: dict) -> dict:
    """Fork each op process from the run's process, unless the config names a start method.

    The run's process has imported Dagster, the hub and the jobs; a forked op process
    starts with all of it. Dagster's own start methods both pay an import first: spawn
    re-imports everything in every op process (about 3 s of CPU, six times per
    request), a forkserver once per run, which bench/fanout.py measured as 2 s between
    a run's start and its first op, a third of a request's whole time. Forking is safe
    here because the run's process holds nothing a child could share by mistake:
    Dagster's storages open a connection per call, the hub's engines drop their pooled
    connections in a forked child (hub/db.py), and `hub request run`'s one other thread
    pauses over each fork (pipelines/launch.py).
    """
    start = config.get("start_method") or {"fork": {}}
    if "forkserver" in start and not start["forkserver"].get("preload_modules"):
        start = {"forkserver": {"preload_modules": [WARM]}}
    return {**config, "start_method": start}


@executor(name="multiprocess", config_schema=multiprocess_executor.config_schema,
          requirements=multiple_process_executor_requirements())
def fanout_executor(init_context) -> MultiprocessExecutor:  # noqa: ANN001 - Dagster's
    """Dagster's multiprocess executor with the defaults above; its own settings all
    remain, and an explicit `start_method` (spawn, forkserver) wins over forking.
    Created once per run, in the run's process, before any op process starts."""
    importlib.import_module(WARM)
    return _core_multiprocess_executor_creation(_forked(_one_process_per_system(
        dict(init_context.executor_config))))
