"""Run county syncs through Dagster from the terminal (``hub demo``) and tell the truth about them.

- The terminal shows one live line per county (``progress.py``) and, at the end, the report of
  THIS run (``report.py``). Dagster's own console output (and anything the step processes
  print: tracebacks, warnings) goes to a log file under ``var/logs/`` that the report names;
  the run's events stay in the Dagster instance as always (``make ui`` shows them).
- Ctrl-C stops the run: each county's merge is one transaction, so a county is either merged
  or unchanged; the command says which, skips the city step and exits 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from base import paths
from pipelines import report
from pipelines.progress import RunProgress
from seeds.registry import County

EXIT_INTERRUPTED = 130


@dataclass
class CountyRun:
    run_id: str | None
    outcomes: list[report.CountyOutcome]
    interrupted: bool
    log: Path


def log_path(name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = paths.hub_home() / "logs" / f"{name}-{stamp}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 of this process (and of the step processes it starts) to ``path``."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


@contextlib.contextmanager
def sigint_seen() -> Iterator[list[bool]]:
    """Notice a Ctrl-C even while Dagster has replaced the SIGINT handler: the interpreter
    writes every signal's number to the wakeup fd before any Python handler runs."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    seen = [False]
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: rely on the run's events
        previous = None
    try:
        yield seen
    finally:
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(previous if previous is not None else -1)
        with contextlib.suppress(BlockingIOError, OSError):
            seen[0] = signal.SIGINT in reader.recv(4096)
        reader.close()
        writer.close()


def run_counties(
    console: Console,
    job_name: str,
    selected: list[County],
    mode: str,
) -> CountyRun:
    """Execute ``job_name`` for ``selected`` counties in ``mode``; the run's per-county outcome."""
    import dagster as dg

    from pipelines import jobs
    from pipelines.defs.keys import entities_of, entity_key, landing_key

    log = log_path(job_name.removesuffix("_job"))
    if not selected:  # nothing to run (every county asked for is not configured)
        return CountyRun(None, [], False, log)
    instance = dg.DagsterInstance.get()
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {f"{c.slug}__landing": {"config": {"mode": mode}} for c in selected},
    }
    keys = [
        k for c in selected for k in (landing_key(c), *[entity_key(c, e) for e in entities_of(c)])
    ]
    run_id = None
    interrupted_by_event = False
    started = time.time()
    with (
        sigint_seen() as seen,
        stderr_to(log),
        RunProgress(console, instance, job_name.removesuffix("_job"), selected),
    ):
        try:
            with dg.execute_job(
                dg.reconstructable(getattr(jobs, job_name)),
                instance=instance,
                run_config=run_config,
                asset_selection=keys,
            ) as result:
                run_id = result.run_id
        except KeyboardInterrupt:  # between Dagster's checkpoints
            interrupted_by_event = True
    if run_id is None:
        run_id = _latest_run(instance, job_name.removesuffix("_job"), since=started)
    outcomes = (
        report.from_dagster_run(instance, run_id, selected, mode)
        if run_id
        else [report.CountyOutcome(c, "skipped", cause=report.INTERRUPTED) for c in selected]
    )
    report.confirm_commits(outcomes, paths.live_db())
    interrupted = seen[0] or interrupted_by_event or _interrupted(outcomes)
    if interrupted and run_id:
        _mark_canceled(instance, run_id)
    return CountyRun(run_id, outcomes, interrupted, log)


def _interrupted(outcomes: list[report.CountyOutcome]) -> bool:
    return any(o.cause == report.INTERRUPTED for o in outcomes)


def _latest_run(instance, job_name: str, since: float) -> str | None:
    """This command's run when Ctrl-C came before ``execute_job`` returned it (never an older
    run of the job: its outcome is not this run's)."""
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name), limit=1)
    if records and records[0].create_timestamp.timestamp() >= since - 1:
        return records[0].dagster_run.run_id
    return None


def _mark_canceled(instance, run_id: str) -> None:
    """An interrupted run is canceled by its user, not a failure of the county platforms (the
    failure sensor skips canceled runs)."""
    import dagster as dg

    run = instance.get_run_by_id(run_id)
    if run is not None and run.status != dg.DagsterRunStatus.CANCELED:
        instance.report_run_canceled(run, message="Interrupted by the user (Ctrl-C) in hub demo")


def run_city(console: Console) -> tuple[bool, str | None, Path]:
    """The city step (marts, snapshot) after the county syncs; (ok, root cause, log)."""
    import dagster as dg

    from pipelines import jobs

    instance = dg.DagsterInstance.get()
    log = log_path("sync_city")
    with (
        stderr_to(log),
        console.status("Rebuilding the marts and the snapshot 重建市级汇总和快照 …"),
        dg.execute_job(
            dg.reconstructable(jobs.sync_city_job),
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        ) as result,
    ):
        failure = next(
            (e for e in result.all_events if e.is_step_failure and e.step_failure_data),
            None,
        )
        cause = None
        if failure is not None:
            cause = report.one_line(report.root_error(failure.step_failure_data.error).message)
        return result.success, cause, log


def lake_catalog_ready() -> str:
    """The DuckLake catalog for the demo (``HUB_WAREHOUSE_BACKEND=ducklake``): the configured
    one, or a local PostgreSQL started under HUB_HOME (pipelines/lake/postgres.py)."""
    import warehouse
    from pipelines.lake import postgres

    done = postgres.catalog_for_demo()
    with warehouse.connect():  # create and migrate the lake once, before seven landings start
        pass
    return done


def snapshot_line() -> str:
    from base import settings

    if settings.is_lake():  # the analyst lake, published by the city step (pipelines.lake.tiers)
        return (
            f"Analyst lake: catalog {settings.redact_dsn(settings.analyst_lake_catalog())}, "
            f"files {settings.analyst_lake_data_path()} (no names, ID numbers, phones or birth "
            "dates; every publish a version)\n"
            "Query it:   make sql            (DuckDB shell on the analyst lake, read-only)\n"
            '            .venv/bin/hub sql "SELECT * FROM mart.county_summary"'
        )
    return (
        f"Analyst snapshot: {paths.snapshot_db()}\n"
        "Query it:   make sql            (DuckDB shell on the snapshot, read-only)\n"
        '            .venv/bin/hub sql "SELECT * FROM mart.county_summary"'
    )


def record_failures(outcomes: list[report.CountyOutcome], run_id: str | None, job: str) -> None:
    """Queue this run's failed counties for ops.sync_run, as the run-failure sensor does when the
    daemon runs (the demo usually runs without it); the city step's connection records them, so
    mart.sync_status shows the failure at once. Same run id and county: recording twice is one row."""
    import warehouse

    for o in outcomes:
        if o.status == "failed" and run_id:
            warehouse.queue_failure(
                run_id=run_id, job=job, county=o.county.slug, error=o.cause or ""
            )


def not_configured(county: County) -> str | None:
    """Why ``county`` cannot sync as configured, or None. A county without ``HUB_<SLUG>_URL``
    uses the simulator in the demo profile and is not configured in production; an API
    platform at a real URL needs its key and secret."""
    from base import settings
    from pipelines.connectors.registry import connector_for

    if not county.setting("URL"):
        if settings.is_demo():
            return None  # the simulator serves it
        return str(settings.NotConfigured(county).problem)
    if not connector_for(county).credentials_required:
        return None
    missing = [county.env_prefix + n for n in ("KEY", "SECRET") if not county.setting(n)]
    if missing:
        return f"HUB_{county.slug.upper()}_URL is set but {' and '.join(missing)} not"
    return None
