"""The executor's forkserver, started early.

The hub's executor forks every step process from a forkserver that
imports the code location once (``pipelines.preload``, ~1.5-2 CPU-s). Dagster starts it when it
launches the run's first step, so the whole preload came before the first landing of every
county run (1.5 s at idle, 4-6 s at load 6; bench/history.md, "The floor of a county run").
:func:`start_forkserver` starts it with the same modules while the run's own process is still
importing the code location and planning the run; Dagster's executor then finds it running.
Only in the process that orchestrates a run of a job that forks its steps: anywhere else
(``sync_city``, in process; the webserver, the daemon, a step process) it would cost its preload
and ~200 MB for nothing.
"""

from __future__ import annotations

import multiprocessing

#: What the forkserver of the hub's executor imports (pipelines/preload.py). Dagster's executor
#: puts its own module first (``MultiprocessExecutor.execute``): the same list, so the forkserver
#: started early is the one it would have started.
PRELOAD = "pipelines.preload"
FORKSERVER_PRELOAD = ["dagster._core.executor.multiprocess", PRELOAD]

#: Jobs that run their steps in the run's own process (the in-process executor): every other
#: ``sync_`` job forks its steps from the forkserver (``tests/unit/test_orchestration_config.py``
#: holds this against the definitions).
IN_PROCESS_JOBS = frozenset({"sync_city"})

#: Dagster's function that a code server's run worker executes (one process spawned per run,
#: for runs the daemon or the UI launch): the process's arguments hold the job.
RUN_WORKER_TARGET = "start_run_in_subprocess"


def forks_steps(job_name: str | None) -> bool:
    """Does a run of ``job_name`` fork its steps from the hub executor's forkserver?"""
    return bool(job_name) and job_name.startswith("sync_") and job_name not in IN_PROCESS_JOBS


def start_forkserver(job_name: str | None) -> bool:
    """Start the forkserver now if this process orchestrates a run of ``job_name`` that forks its
    steps; True if it started (or was running). Never in a process that is itself a child of
    multiprocessing other than a code server's run worker (a step process reconstructs its job
    through the same factories)."""
    if not forks_steps(job_name):
        return False
    if multiprocessing.parent_process() is not None and run_worker_job() is None:
        return False  # a step process (forked from the forkserver) or another child
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    forkserver.ensure_running()  # returns once the server is spawned; it preloads on its own
    return True


def run_worker_job() -> str | None:
    """The job this process runs, when it is a code server's run worker (a process spawned by
    Dagster's gRPC server with the run's reconstructable job as an argument), else None."""
    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    if getattr(target, "__name__", None) != RUN_WORKER_TARGET:
        return None
    args = getattr(process, "_args", ())
    return getattr(args[1], "job_name", None) if len(args) > 1 else None
