"""The executor every hub job runs on: one op process per system, forked from a warm server.

The system ops and the syncs wait on vendors, not on the CPU, so they all run at once;
each vendor's limit is kept per call by the connectors' gates (connectors/gates.py).
"""

import multiprocessing
from multiprocessing import forkserver

from dagster import executor, multiple_process_executor_requirements, multiprocess_executor
from dagster._core.definitions.executor_definition import _core_multiprocess_executor_creation
from dagster._core.executor.multiprocess import MultiprocessExecutor

from connectors import registry

SYSTEMS = registry.names()


def _preloaded_modules() -> list[str]:
    """What every op process imports: Dagster's step worker, the jobs resolved and the
    instance's storage classes (pipelines/forkserver.py), and each connector (the registry
    imports connectors lazily, so they are named here)."""
    return ["dagster._core.executor.multiprocess", "pipelines.forkserver",
            *(d.connector.partition(":")[0] for d in registry.declared().values())]


def _one_process_per_system(config: dict) -> dict:
    """The system ops wait on vendors, not on the CPU, so all of them run at once, and
    they are forked from a warm forkserver instead of each spawning a fresh Python.

    Dagster's default runs one op process per core: on a two-core machine the four
    vendors went two by two and a request took as long as its two slowest systems
    added up. Its default start method, spawn, re-imports Dagster and the hub in every
    op process (about 3 s of CPU each, six times per request); the forkserver imports
    them once per run. An explicit `max_concurrent` (0 = one per core) or
    `start_method` still wins.
    """
    defaults = {"max_concurrent": len(SYSTEMS),
                "start_method": {"forkserver": {"preload_modules": _preloaded_modules()}}}
    return {**defaults, **{key: value for key, value in config.items() if value is not None}}


def warm_forkserver(preload: list[str] | None = None) -> None:
    """Start this process's forkserver now, so that it imports what the op processes need
    while the run is still being set up, instead of after the first op is launched.

    The forkserver is a fresh Python that imports Dagster and the hub (about 3 s of CPU);
    started by the first op, that import stood between the run's start and every op.
    Idempotent: a running forkserver is left as it is (same preload, the executor's).
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        preload if preload is not None else _preloaded_modules())
    forkserver.ensure_running()


@executor(name="multiprocess", config_schema=multiprocess_executor.config_schema,
          requirements=multiple_process_executor_requirements())
def fanout_executor(init_context) -> MultiprocessExecutor:  # noqa: ANN001 - Dagster's
    """Dagster's multiprocess executor with the defaults above; its own settings all
    remain. Created once per run, in the run's process: the forkserver starts here."""
    config = _one_process_per_system(dict(init_context.executor_config))
    start = config.get("start_method") or {}
    if "forkserver" in start:
        warm_forkserver(start["forkserver"].get("preload_modules"))
    return _core_multiprocess_executor_creation(config)
