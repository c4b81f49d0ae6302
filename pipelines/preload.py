"""What the forkserver of the hub's executor imports once, before it forks a step process.

Every step process of a run is forked from one forkserver (``hub_executor``), so a module the
forkserver imported costs nothing in the steps. The definitions alone left each step importing
Dagster's instance machinery on its own (SQLite storages, SQLAlchemy, Alembic, the schedule and
run storages, the child-process executor): about 0.9 CPU-s per step process, 14 steps a city
sync (bench/history.md, "Where the time goes"). Only modules are imported here, never an instance
or a connection: nothing that must not cross a fork.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os

from pipelines import RETURN_AT_ONCE

# DuckDB's own jemalloc keeps freed pages for 1 s (its default): in a merge step the statements
# free buffers that validation's and the quarantine's polars frames (another allocator) cannot
# reuse, ~20 MB of the step's peak RSS at scale 1.0, for ~0.5-0.8 CPU-s more per merge (the
# pages are returned and faulted again; bench/profiles/merge.md, "Issue 13, fourth round").
# Read when DuckDB is first imported, so set here, before the code location imports it: only
# the step processes forked from this forkserver carry it, not the run worker (the city step's
# marts and snapshot, which run in it) nor the CLI. An operator's value in the environment wins.
os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", RETURN_AT_ONCE)

import pipelines.definitions  # noqa: F401  (the code location: assets, jobs, settings)

#: Dagster's instance and step machinery a step process loads (private module paths: one that
#: moves in a later Dagster is skipped, which costs its import time in each step, nothing else).
STEP_MODULES = (
    "sqlalchemy",
    "upath",
    "upath.implementations.local",
    "fsspec.implementations.local",
    "alembic",
    "alembic.config",
    "alembic.runtime.migration",
    "dagster._core.instance.factory",
    "dagster._core.storage.sql",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.root",
    "dagster._core.executor.child_process_executor",
    "dagster._core.execution.plan.resume_retry",
    "dagster._core.execution.stats",
    "dagster._core.snap",
    "dagster._core.scheduler",
    "dagster._core.secrets.env_file",
    "dagster._core.workspace.context",
    "dagster._daemon.freshness",
)

for _name in STEP_MODULES:
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)

# Every step process forked from here starts with the objects imported above (~220,000 that the
# collector tracks: Dagster, the code location and their libraries). A full collection in a
# step walks all of them (~0.1 CPU-s) and writes into each one's header, which copies every
# page of that heap into the step (copy-on-write). Frozen, the collector leaves them alone:
# they live as long as the process anyway.
gc.collect()
gc.freeze()
