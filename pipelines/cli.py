"""The ``hub`` command: ``demo`` (sync the city and show what happened), ``ui``, ``sql``, ``sync``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from pipelines import paths, settings
from pipelines.cli_report import report
from pipelines.registry import counties

app = typer.Typer(
    help="Shangluo city poverty data hub.", no_args_is_help=True, add_completion=False
)
# Wide enough for the summary table when output is piped (rich assumes 80 columns then).
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)

DEV_PII_KEY_NOTE = (
    "HUB_PII_KEY is not set: person_key uses the published development key, so pseudonyms are "
    "NOT secret (allowed in the demo profile only). " + settings.PII_KEY_HELP
)


@app.callback()
def _load_settings() -> None:
    """Runs before every command: environment + .env, profile, owner-only umask."""
    try:
        settings.load()
    except settings.SettingsError as exc:
        _fail(exc)


def _fail(exc: BaseException) -> NoReturn:
    # soft_wrap: one line per message, whole paths and variable names (logs, grep)
    err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _prepare_to_write() -> None:
    """What every command that syncs checks first: the PII key for this profile, that the
    warehouse was created by this profile, and owner-only modes under HUB_HOME."""
    from pipelines import warehouse

    try:
        settings.check_pii_key()
        recorded = warehouse.recorded_profile()
        if recorded is not None and recorded != settings.profile():
            raise warehouse.ProfileMismatch(recorded, settings.profile(), paths.live_db())
    except (settings.SettingsError, warehouse.ProfileMismatch) as exc:
        _fail(exc)
    settings.secure_home()


def _dagster_home() -> Path:
    """DAGSTER_HOME with the repo's dagster.yaml (the DuckDB pool limit lives there)."""
    home = settings.private_dir(
        Path(os.environ.get("DAGSTER_HOME") or paths.hub_home() / "dagster")
    )
    shutil.copyfile(paths.REPO / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _start_simulator_if_needed():
    """Demo profile: start the bundled simulator for the counties without ``HUB_<SLUG>_URL``
    (environment or .env). Step processes find it through its state file under HUB_HOME
    (``pipelines.sources``); its URLs are not exported, so a county's own settings stay the
    only thing that says "configured". Production never simulates: such a county is reported
    as not configured when it syncs."""
    missing = [c for c in counties() if not settings.county_configured(c)]
    if not settings.is_demo():
        if missing:
            console.print(
                "[yellow]not configured[/yellow] (production profile; never simulated): "
                + ", ".join(f"{c.slug} ({c.env_prefix}URL)" for c in missing)
            )
        return None
    if not missing:
        return None
    from pipelines.sources import start_embedded_simulator

    info = start_embedded_simulator()
    console.print(
        f"[dim]Simulator on {info['url']} (scale {os.environ.get('HUB_SIM_SCALE', '1.0')}) "
        f"serving {', '.join(c.slug for c in missing)}[/dim]"
    )
    return info


def _run_job(name: str, ops: dict | None = None):
    import dagster as dg

    from pipelines import jobs, run_health

    instance = dg.DagsterInstance.get()
    # The jobs carry their executor (pipelines/defs/automation.py). Step events go to the
    # Dagster event log (`make ui` shows them); the terminal gets warnings and errors only.
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if ops:
        run_config["ops"] = ops
    with (
        console.status(f"Running {name.removesuffix('_job')} …"),
        run_health.PoolWatch(instance, _say_warning),
        dg.execute_job(
            dg.reconstructable(getattr(jobs, name)), instance=instance, run_config=run_config
        ) as result,
    ):
        failures = [
            (e.step_key, e.event_specific_data.error.message.strip().splitlines()[0])
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
        ]
        return result.success, result.run_id, failures


@app.command()
def demo(
    mode: Annotated[str, typer.Option(help="full or incremental")] = "incremental",
) -> None:
    """Sync every county into the warehouse through Dagster, publish the snapshot, summarise.

    Runs the demo profile: counties without settings are served by the bundled simulator."""
    try:
        settings.use_demo_profile()
    except settings.SettingsError as exc:
        _fail(exc)
    _prepare_to_write()
    if settings.uses_development_key():
        console.print(f"[yellow]warning:[/yellow] {DEV_PII_KEY_NOTE}")
    _dagster_home()
    _free_dead_runs()
    _start_simulator_if_needed()
    started = time.perf_counter()
    ops = {f"{c.slug}__landing": {"config": {"mode": mode}} for c in counties()}
    ok, run_id, failures = _run_job("sync_all_counties_job", ops=ops)
    county_seconds = time.perf_counter() - started
    city_ok, _, city_failures = _run_job("sync_city_job")
    total = time.perf_counter() - started
    _summary(run_id, county_seconds, total, failures + city_failures)
    if not (ok and city_ok):
        raise typer.Exit(1)


def _summary(run_id: str, county_seconds: float, total: float, failures) -> None:
    import duckdb

    snapshot = paths.snapshot_db()
    table = Table(title="Sync summary (this run)", show_lines=False)
    for col in (
        "county",
        "entity",
        "mode",
        "fetched",
        "accepted",
        "rejected",
        "findings",
        "deleted",
        "status",
    ):
        table.add_column(
            col,
            justify="right"
            if col in {"fetched", "accepted", "rejected", "findings", "deleted"}
            else "left",
        )
    if snapshot.exists():
        with duckdb.connect(str(snapshot), read_only=True) as con:
            rows = con.execute(
                """
                WITH latest AS (
                  SELECT *, row_number() OVER (PARTITION BY county_code, entity ORDER BY started_at DESC) AS n
                  FROM ops.sync_run)
                SELECT county_code, entity, mode, fetched, accepted, rejected, findings, deleted, status
                FROM latest WHERE n = 1 ORDER BY county_code, entity
                """
            ).fetchall()
        names = {c.code: c.name for c in counties()}
        for r in rows:
            table.add_row(names.get(r[0], r[0]), *[str(v) for v in r[1:]])
    console.print(table)
    for step, message in failures:
        console.print(f"[red]failed[/red] {step}: {message}")
    console.print(
        f"Counties synced in {county_seconds:.1f} s; with marts and snapshot {total:.1f} s.\n"
        f"Analyst snapshot: {snapshot}\n"
        "Query it:   make sql            (DuckDB shell on the snapshot, read-only)\n"
        '            .venv/bin/hub sql "SELECT * FROM mart.county_summary"\n'
        "Dagster UI: make ui             (then open http://127.0.0.1:3000)"
    )


@app.command()
def ui(port: int = 3000) -> None:
    """The Dagster UI (and daemon: schedules, sensors) on this configuration; the simulator too
    in the demo profile (`make ui` selects it)."""
    _prepare_to_write()
    _dagster_home()
    watch = _free_dead_runs()
    _start_simulator_if_needed()
    with watch:  # while the UI runs: dead runs' slots freed, long pool waits reported
        code = subprocess.call(dagster_dev_command(port), env=dict(os.environ))
    raise typer.Exit(code)


def _free_dead_runs():
    """Free the pool slots of runs whose process died (saying so); a watcher for later ones."""
    import dagster as dg

    from pipelines import run_health

    run_health.report_cleared(_say_warning)
    return run_health.PoolWatch(dg.DagsterInstance.get(), _say_warning)


def _say_warning(line: str) -> None:
    console.print(f"[yellow]{line}[/yellow]", soft_wrap=True, highlight=False)


def dagster_dev_command(port: int) -> list[str]:
    """`dagster dev` on loopback for this code location: the UI plus the daemon."""
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)]


@app.command()
def sql(
    query: Annotated[
        str | None, typer.Argument(help="SQL to run; omit for the DuckDB shell")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV instead of a table")] = False,
) -> None:
    """Query the analyst snapshot: read-only, in DuckDB's safe mode (no other files, no shell)."""
    from pipelines import analyst_sql

    snapshot = paths.snapshot_db()
    if not snapshot.exists():
        # stderr, so `hub sql --csv ... > out.csv` never writes the message into the CSV
        err_console.print(
            f"No snapshot at {snapshot} yet: run `make demo` (or the sync_city job) first, "
            "or set HUB_HOME / HUB_SNAPSHOT to where the hub keeps it."
        )
        raise typer.Exit(1)
    if query is None:
        # The DuckDB shell on the snapshot only (the live file is never opened here, so a
        # running sync and the shell do not block each other), read-only and in safe mode.
        try:
            command = analyst_sql.shell_command(snapshot)
        except analyst_sql.NotAnAnalystSnapshot as exc:
            _fail(exc)
        os.execv(command[0], command)
    import duckdb

    try:
        with analyst_sql.connect(snapshot) as con:
            result = con.sql(query)
            if result is None:  # a statement without a result (SET, PRAGMA, ...)
                return
            df = result.pl()
    except analyst_sql.NotAnAnalystSnapshot as exc:
        _fail(exc)
    except duckdb.Error as e:
        err_console.print(f"[red]query failed:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    if csv:
        sys.stdout.write(df.write_csv())
        return
    table = Table(show_lines=False)
    for col in df.columns:
        table.add_column(col)
    for row in df.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@app.command(name="stop-simulator")
def stop_simulator() -> None:
    """Stop the embedded simulator that `make demo` / `make ui` left running for reuse."""
    import json

    import requests

    state = paths.hub_home() / "simulator" / "simulator.json"
    if not state.exists():
        console.print("No embedded simulator recorded.")
        return
    url = json.loads(state.read_text())["url"]
    try:
        requests.post(f"{url}/_sim/shutdown", timeout=5)
        console.print(f"Stopped the simulator at {url}.")
    except requests.RequestException:
        console.print(f"The simulator at {url} was not running.")
    state.unlink(missing_ok=True)


@app.command(name="sync")
def sync_one(
    county: Annotated[str, typer.Argument(help="slug or code, e.g. luonan")],
    mode: Annotated[str, typer.Option(help="full or incremental")] = "incremental",
    safety_share: Annotated[
        float, typer.Option(help="largest share of live records one sync may delete")
    ] = 0.2,
) -> None:
    """Land and merge one county without Dagster (debugging); the UI and schedules use Dagster."""
    from pipelines import sync, warehouse
    from pipelines.errors import HubError
    from pipelines.registry import county as find

    c = find(county)
    _prepare_to_write()
    if settings.is_demo() and not settings.county_configured(c):
        _start_simulator_if_needed()
    try:
        landed = sync.land(c, mode)
        merged = sync.merge(c, landed, safety_share=safety_share)
        with warehouse.connect() as con:
            warehouse.rebuild_marts(con)
        warehouse.publish_snapshot(paths.live_db(), paths.snapshot_db())
    except (settings.NotConfigured, HubError) as exc:  # county, place and problem: no traceback
        _fail(exc)
    console.print(merged.counts)


app.command(name="report")(report)

from pipelines import cli_ops  # noqa: E402  (hub backup / restore / replay)

cli_ops.register(app)

if __name__ == "__main__":
    app()
