"""Dead Dagster runs must not hold the warehouse pools.

A run whose process was killed (``kill -9``, a stopped ``make ui``, a crashed machine) stays
STARTED in Dagster's storage, and the pool slot its merge had claimed stays claimed: every later
step of that pool waits for it forever. The pools are ``duckdb_warehouse`` (every warehouse step
on the DuckDB file; the city steps on either backend) and, on DuckLake, each county's merge pool
``lake_merge_<slug>`` (:func:`hub_pools`). Dagster's own run monitoring
(``dagster.yaml``) frees the slots of runs that *ended*, but the default run launcher cannot tell
that a STARTED run's process died. This module can, on this machine: each run of the hub's
executor logs the PID of its orchestrating process ("Executing steps using multiprocess
executor: parent process (pid: …)", "Executing steps in process (pid: …)" of the in-process
executor, or "Started process for run (pid: …)"); a run whose process is gone is marked failed
and its pool slots freed.

``hub demo`` and ``hub ui`` call :func:`clear_dead_runs` before they start, the sensor
``free_dead_runs`` calls it every minute while the daemon runs, and :class:`PoolWatch` says so
when a step has waited longer than ``HUB_POOL_WAIT_WARN`` seconds (default 60) for its pool.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from base import processes
from pipelines.defs.keys import POOL, merge_pool
from seeds.registry import counties

log = logging.getLogger(__name__)

DEFAULT_POOL_WAIT_WARN_SECONDS = 60.0
_ACTIVE = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: The engine events that name the process orchestrating a run: the run worker's, the
#: multiprocess executor's parent (the county jobs) and the in-process executor's (sync_city).
_PID_MESSAGES = (
    "Started process for run",
    "Executing steps using multiprocess executor",
    "Executing steps in process",
)


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pid: int
    freed_slots: int
    pools: tuple[str, ...] = ()  # the pools those slots were in


def hub_pools() -> list[str]:
    """The pools the hub's steps claim on this backend: ``duckdb_warehouse``, and on DuckLake
    also each county's merge pool ``lake_merge_<slug>`` (pipelines/defs/keys.py)."""
    return list(dict.fromkeys([POOL, *(merge_pool(c) for c in counties())]))


def _pool_names() -> str:
    pools = hub_pools()
    return pools[0] if len(pools) == 1 else f"{POOL} or lake_merge_<county>"


def pid_alive(pid: int, started_before: float | None = None) -> bool:
    """Is ``pid`` a live process (and, where /proc tells, one started before
    ``started_before``, so a recycled PID does not pass for the run's process)?"""
    if not processes.pid_alive(pid):
        return False
    if started_before is None:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie has finished; its parent just has not reaped it
            return False
        ticks = int(fields[19])
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK") <= started_before + 2
    except (OSError, ValueError, IndexError, StopIteration):
        return True


def run_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The PID of the process orchestrating ``run_id`` and when it said so, from its log."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None or not entry.user_message.startswith(_PID_MESSAGES):
            continue
        data = event.event_specific_data
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if pid is not None:
            return int(getattr(pid, "value", pid)), entry.timestamp
    return None


def dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, int]]:
    """STARTING/STARTED/CANCELING runs whose orchestrating process is no longer alive on this host."""
    out = []
    for run in instance.get_runs(filters=RunsFilter(statuses=_ACTIVE)):
        found = run_pid(instance, run.run_id)
        if found is None:
            continue  # not started by a process we can see (yet): Dagster's timeouts apply
        pid, since = found
        if not pid_alive(pid, since):
            out.append((run, pid))
    return out


def clear_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Mark every run whose process died as failed and free the pool slots it held."""
    cleared = []
    for run, pid in dead_runs(instance):
        storage = instance.event_log_storage
        slots = [
            (pool, s)
            for pool in hub_pools()
            for s in storage.get_concurrency_info(pool).claimed_slots
            if s.run_id == run.run_id
        ]
        pools = tuple(dict.fromkeys(pool for pool, _ in slots))
        instance.report_run_failed(
            run,
            f"The run's process (PID {pid}) is gone (killed or crashed) while the run was "
            f"{run.status.value}; marked failed by the hub so the pool slots it held "
            f"({', '.join(pools) or _pool_names()}) are freed.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        cleared.append(DeadRun(run.run_id, run.job_name, pid, len(slots), pools))
        log.warning(
            "marked dead run %s (%s, PID %s) failed; freed %d slot(s)",
            run.run_id,
            run.job_name,
            pid,
            len(slots),
        )
    return cleared


def describe(cleared: list[DeadRun]) -> list[str]:
    return [
        f"Run {d.run_id} ({d.job_name}) was left STARTED by a process that is gone (PID {d.pid}): "
        f"marked failed, {d.freed_slots} {', '.join(d.pools) or _pool_names()} slot(s) freed."
        for d in cleared
    ]


def long_waits(instance: dg.DagsterInstance, threshold: float) -> list[str]:
    """A sentence for each step that has waited longer than ``threshold`` s for its pool (any of
    :func:`hub_pools`)."""
    now = datetime.now(UTC)
    out = []
    for pool in hub_pools():
        info = instance.event_log_storage.get_concurrency_info(pool)
        holders = ", ".join(f"{s.step_key} of run {s.run_id[:8]}" for s in info.claimed_slots)
        for step in info.pending_steps:
            if step.assigned_timestamp is not None:
                continue
            enqueued = step.enqueued_timestamp
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=UTC)
            waited = (now - enqueued).total_seconds()
            if waited > threshold:
                out.append(
                    f"{step.step_key} (run {step.run_id[:8]}) has waited {waited:.0f} s for the "
                    f"{pool} pool, held by {holders or 'nobody'}."
                )
    return out


def pool_wait_warn_seconds() -> float:
    return float(os.environ.get("HUB_POOL_WAIT_WARN", DEFAULT_POOL_WAIT_WARN_SECONDS))


class PoolWatch:
    """A background thread for ``hub demo`` / ``hub ui``: every ``interval`` s it frees the
    slots of runs that died and reports steps waiting longer than the threshold for the pool
    (each step once), through ``say``."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        say: Callable[[str], None],
        threshold: float | None = None,
        interval: float | None = None,
    ) -> None:
        self.instance, self.say = instance, say
        self.threshold = pool_wait_warn_seconds() if threshold is None else threshold
        self.interval = (
            float(os.environ.get("HUB_POOL_WATCH_INTERVAL", 5.0)) if interval is None else interval
        )
        self._stop = threading.Event()
        self._told: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="hub-pool-watch", daemon=True)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # a watcher must never take the command down
                log.debug("pool watch: %s", exc)

    def check(self) -> None:
        for line in describe(clear_dead_runs(self.instance)):
            self.say(line)
        for line in long_waits(self.instance, self.threshold):
            key = line.split(" has waited", 1)[0]
            if key not in self._told:
                self._told.add(key)
                self.say(line + " Dead holders are freed automatically; see the runbook.")


@dg.sensor(
    name="free_dead_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died as failed and frees their pool slots "
    "(duckdb_warehouse; on DuckLake also lake_merge_<county>).",
)
def free_dead_runs(context: dg.SensorEvaluationContext):
    cleared = clear_dead_runs(context.instance)
    return dg.SkipReason("; ".join(describe(cleared)) or "no dead run holds a pool")


def report_cleared(say: Callable[[str], None]) -> list[DeadRun]:
    """Before ``hub demo`` / ``hub ui`` start: free what dead runs hold, and say so."""
    cleared = clear_dead_runs(dg.DagsterInstance.get())
    for line in describe(cleared):
        say(line)
    return cleared
