"""The ``hub`` command: ``demo`` (sync the city and show what happened), ``ui``, ``sql``, ``sync``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from base import errors, paths, settings
from pipelines.cli_guard import fail as _fail
from pipelines.cli_guard import prepare_to_write as _prepare_to_write
from pipelines.cli_report import report
from pipelines.modes import Mode
from pipelines.sql_output import TIMEZONE, Format
from pipelines.sql_output import write as write_result
from seeds.registry import counties

app = typer.Typer(
    help="Shangluo city poverty data hub.", no_args_is_help=True, add_completion=False
)
# Wide enough for the summary table when output is piped (rich assumes 80 columns then).
console = Console(width=None if sys.stdout.isatty() else 160)
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


def _dagster_home() -> Path:
    """DAGSTER_HOME with the repo's dagster.yaml (the pool limits live there), unless an
    operator's instance file is there: kept, and checked (pipelines/dagster_instance.py)."""
    from pipelines import dagster_instance

    home = dagster_instance.dagster_home()
    for line in dagster_instance.prepare(home).lines():
        if line.startswith("warning"):
            _say_warning(line)
        else:
            console.print(f"[dim]{line}[/dim]", soft_wrap=True, highlight=False)
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


def _valid_county(value):
    """A county slug or code of the registry; a misspelt one lists the valid ones."""
    if value is None:
        return value
    known = {k for c in counties() for k in (c.slug, c.code)}
    for name in [value] if isinstance(value, str) else value:
        if name not in known:
            valid = ", ".join(f"{c.slug} ({c.code} {c.name})" for c in counties())
            raise typer.BadParameter(f"no county {name!r}. Valid: {valid}")
    return value


def _selected(names: list[str] | None) -> list:
    from seeds.registry import county as find

    wanted = {find(n).code for n in names} if names else None
    return [c for c in counties() if wanted is None or c.code in wanted]


@app.command()
def demo(
    mode: Annotated[Mode, typer.Option(help="incremental or full")] = Mode.incremental,
    county: Annotated[
        list[str] | None,
        typer.Option("--county", callback=_valid_county, help="only this county (repeatable)"),
    ] = None,
) -> None:
    """Sync the counties into the warehouse through Dagster, publish the snapshot, report.

    Runs the demo profile: counties without settings are served by the bundled simulator.
    Exit status: 1 when any county failed or was refused or the city step failed, 130 when
    interrupted (Ctrl-C: counties already merged stay merged, the city step does not run), else
    0 (a county skipped or not configured does not make it 1)."""
    from pipelines import demo as run
    from pipelines import report as run_report

    try:
        settings.use_demo_profile()
    except settings.SettingsError as exc:
        _fail(exc)
    _prepare_to_write()
    if settings.uses_development_key():
        console.print(f"[yellow]warning:[/yellow] {DEV_PII_KEY_NOTE}")
    if settings.is_lake():  # HUB_WAREHOUSE_BACKEND=ducklake: the catalog's PostgreSQL first
        try:
            console.print(run.lake_catalog_ready())
        except (
            errors.HubError,
            RuntimeError,
            OSError,
        ) as exc:  # no server, it would not start, ...
            _fail(exc)
    _dagster_home()
    watch = _free_dead_runs()
    selected = _selected(county)
    blocked = {c.slug: run.not_configured(c) for c in selected if run.not_configured(c)}
    runnable = [c for c in selected if c.slug not in blocked]
    _start_simulator_if_needed()
    started = time.perf_counter()
    with watch:  # dead runs' pool slots freed, long pool waits reported
        result = run.run_counties(console, "sync_all_counties_job", runnable, mode.value)
    county_seconds = time.perf_counter() - started
    by_slug = {o.county.slug: o for o in result.outcomes}
    outcomes = [
        by_slug.get(c.slug) or run_report.CountyOutcome(c, "not configured", cause=blocked[c.slug])
        for c in selected
    ]
    run.record_failures(outcomes, result.run_id, "sync_all_counties")
    title = "同步报告 Sync report (this run 本次运行"
    if result.interrupted:
        run_report.print_report(console, outcomes, f"{title}, interrupted 已中断)")
        console.print(run_report.interrupted_line(outcomes))
        console.print(f"[dim]Dagster's log of this run: {result.log}[/dim]")
        raise typer.Exit(run.EXIT_INTERRUPTED)
    with _free_dead_runs():
        city_ok, city_cause, city_log = run.run_city(console)
    total = time.perf_counter() - started
    run_report.print_report(console, outcomes, f"{title})")
    if not city_ok:
        console.print(f"[red]city step failed 市级汇总失败[/red]: {city_cause} (log: {city_log})")
    _summary_footer(county_seconds, total, result.log)
    raise typer.Exit(run_report.exit_code(outcomes) or (0 if city_ok else 1))


def _summary_footer(county_seconds: float, total: float, log: Path) -> None:
    from pipelines.demo import snapshot_line

    console.print(
        f"Counties synced in {county_seconds:.1f} s; with marts"
        f"{' and the analyst lake' if settings.is_lake() else ' and snapshot'} {total:.1f} s.\n"
        f"Dagster's log of this run (warnings, errors): {log}\n"
        f"{snapshot_line()}\n"
        "Status:     .venv/bin/hub status   Rejects as CSV: .venv/bin/hub rejects <county>\n"
        "Dagster UI: make ui             (then open http://127.0.0.1:3000)"
    )


@app.command()
def ui(
    port: int = 3000,
    host: Annotated[
        str,
        typer.Option(
            help="interface to listen on: 127.0.0.1 (this machine only) or e.g. 0.0.0.0 behind "
            "the city's reverse proxy with a login (docs/county-admins.md, section 9)"
        ),
    ] = "127.0.0.1",
) -> None:
    """The Dagster UI (and daemon: schedules, sensors) on this configuration; the simulator too
    in the demo profile (`make ui` selects it)."""
    _prepare_to_write()
    _dagster_home()
    watch = _free_dead_runs()
    _start_simulator_if_needed()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]warning:[/yellow] the UI has no login of its own; on {host} anyone who "
            "reaches the port can run syncs. Put it behind the reverse proxy with a login."
        )
    with watch:  # while the UI runs: dead runs' slots freed, long pool waits reported
        code = subprocess.call(dagster_dev_command(port, host), env=dict(os.environ))
    raise typer.Exit(code)


def _free_dead_runs():
    """Free the pool slots of runs whose process died (saying so); a watcher for later ones."""
    import dagster as dg

    from pipelines import run_health

    run_health.report_cleared(_say_warning)
    return run_health.PoolWatch(dg.DagsterInstance.get(), _say_warning)


def _say_warning(line: str) -> None:
    console.print(f"[yellow]{line}[/yellow]", soft_wrap=True, highlight=False)


def dagster_dev_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """`dagster dev` for this code location: the UI plus the daemon (loopback by default)."""
    dagster = Path(sys.executable).with_name("dagster")
    return [str(dagster), "dev", "-m", "pipelines.definitions", "-h", host, "-p", str(port)]


@app.command()
def sql(
    query: Annotated[
        str | None, typer.Argument(help="SQL to run; omit for the DuckDB shell")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="same as --format csv")] = False,
    fmt: Annotated[
        Format, typer.Option("--format", help="table, csv, json or markdown")
    ] = Format.table,
) -> None:
    """Query the analyst snapshot: read-only, in DuckDB's safe mode (no other files, no shell)."""
    from pipelines import analyst_sql

    snapshot = paths.snapshot_db()
    refused: tuple[type[Exception], ...] = (
        analyst_sql.NotAnAnalystSnapshot,
        settings.SettingsError,
    )
    if settings.is_lake():  # the analyst lake, attached read-only (pipelines.lake.tiers)
        from pipelines.lake import postgres, tiers

        local = postgres.use_local_catalog()  # after `make demo` with no catalog configured
        if local:
            print(local, file=sys.stderr)

        refused = (*refused, tiers.LakeNotReady)

        def open_analyst():
            return tiers.analyst_connection(timezone=TIMEZONE)

        shell_command = tiers.analyst_shell_command
    else:

        def open_analyst():
            return analyst_sql.connect(snapshot, timezone=TIMEZONE)

        def shell_command():
            return analyst_sql.shell_command(snapshot)

    if not settings.is_lake() and not snapshot.exists():
        # stderr, so `hub sql --csv ... > out.csv` never writes the message into the CSV
        err_console.print(
            f"No snapshot at {snapshot} yet: run `make demo` (or the sync_city job) first, "
            "or set HUB_HOME / HUB_SNAPSHOT to where the hub keeps it."
        )
        raise typer.Exit(1)
    if query is None:
        # The DuckDB shell on the snapshot only (the live file is never opened here, so a
        # running sync and the shell do not block each other), read-only and in safe mode, on
        # Beijing time (its locked configuration takes the time zone from TZ).
        try:
            command = shell_command()
        except refused as exc:
            _fail(exc)
        os.environ["TZ"] = TIMEZONE
        os.execv(command[0], command)
    import duckdb

    try:
        with open_analyst() as con:
            result = con.sql(query)
            if result is None:  # a statement without a result (SET, PRAGMA, ...)
                return
            df = result.pl()
    except refused as exc:
        _fail(exc)
    except duckdb.Error as e:
        err_console.print(f"[red]query failed:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    write_result(df, Format.csv if csv else fmt, console)


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
    county: Annotated[
        str, typer.Argument(callback=_valid_county, help="slug or code, e.g. luonan")
    ],
    mode: Annotated[Mode, typer.Option(help="incremental or full")] = Mode.incremental,
    safety_share: Annotated[
        float, typer.Option(help="largest share of live records one sync may delete")
    ] = 0.2,
) -> None:
    """Land and merge one county without Dagster (debugging); the UI and schedules use Dagster.

    Prints the run report; exit status 1 when the county failed or was refused."""
    import warehouse
    from base.errors import HubError, RejectThresholdExceeded
    from pipelines import demo as run
    from pipelines import report as run_report
    from pipelines import sync
    from seeds.registry import county as find

    c = find(county)
    _prepare_to_write()
    blocked = run.not_configured(c)
    if blocked:  # asked for by name: an error (hub demo lists such counties in its report)
        _fail(f"{c.label}: not configured: {blocked}")
    if settings.is_demo() and not settings.county_configured(c):
        _start_simulator_if_needed()
    outcome = run_report.CountyOutcome(c, "failed", mode=mode.value)
    try:
        with console.status(f"{c.name}: landing 取回中 …"):
            landed = sync.land(c, mode.value)
        outcome.mode = landed.mode
        with console.status(f"{c.name}: merging 合并中 …"):
            merged = sync.merge(c, landed, safety_share=safety_share)
            with warehouse.connect() as con:
                warehouse.rebuild_marts(con)
            if settings.is_lake():  # the analyst lake (pipelines.lake.tiers); no file
                from pipelines.lake import tiers

                tiers.publish()
            else:
                warehouse.publish_snapshot(paths.live_db(), paths.snapshot_db())
        outcome.status, outcome.seconds = "succeeded", landed.seconds + merged.seconds
        outcome.counts = run_report.sum_counts(merged.counts.values())
    except RejectThresholdExceeded as refused:
        outcome.status, outcome.cause = "refused", run_report.one_line(str(refused))
        outcome.counts = {"fetched": refused.total or 0, "rejected": refused.rejected or 0}
    except HubError as failed:
        outcome.cause = run_report.one_line(str(failed))
    run_report.print_report(console, [outcome], "同步报告 Sync report (this run 本次运行)")
    raise typer.Exit(run_report.exit_code([outcome]))


@app.command()
def status() -> None:
    """Per county: last success, last failure and why, lag, next scheduled run, reject rate."""
    from pipelines import rejects
    from pipelines import status as county_status

    try:
        with rejects.readable() as (con, source):
            statuses = county_status.read(con)
    except FileNotFoundError as missing:
        err_console.print(str(missing))
        raise typer.Exit(1) from None
    console.print(county_status.table(statuses, source))
    for line in county_status.failure_lines(statuses):
        console.print(line, highlight=False, soft_wrap=True)


@app.command(name="rejects")
def rejects_csv(
    county: Annotated[
        str, typer.Argument(callback=_valid_county, help="slug or code, e.g. luonan")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="file to write (default under var/rejects/)"),
    ] = None,
) -> None:
    """The county's latest rejects (merged or refused sync) as CSV for Excel (UTF-8 with BOM)."""
    from pipelines import rejects
    from seeds.registry import county as find

    c = find(county)
    try:
        with rejects.readable() as (con, source):
            sync_id = rejects.latest_sync(con, c)
            if sync_id is None:
                err_console.print(f"{c.label}: no merged or refused sync yet in {source}")
                raise typer.Exit(1)
            path, rows = rejects.export(con, c, sync_id, output)
    except FileNotFoundError as missing:
        err_console.print(str(missing))
        raise typer.Exit(1) from None
    console.print(f"{c.name}: {rows:,} rejects of sync {sync_id} → {path}", highlight=False)


app.command(name="report")(report)

from pipelines import cli_ops  # noqa: E402  (hub backup / restore / replay)

cli_ops.register(app)

if __name__ == "__main__":
    app()
