"""Operations commands of ``hub``: ``backup``, ``restore`` and ``replay`` (runbook, "Backup and
restore" and "Replay and backfill"). Registered on the ``hub`` app by ``cli.py``."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from base import paths, settings
from base.errors import HubError

console = Console()
err_console = Console(stderr=True)


def backups_dir() -> Path:
    return paths.hub_home() / "backups"


def _fail(message: str) -> typer.Exit:
    # soft_wrap: one line per message, whole paths (logs, grep)
    err_console.print(f"[red]{message}[/red]", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _latest_syncs(db: Path) -> list[tuple[str, str]]:
    """(county_code, the sync that committed its cursors) of a warehouse file, read-only."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT county_code, max(sync_run_id) FROM ops.watermark GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


def backup(
    dest: Annotated[
        Path | None,
        typer.Argument(
            help="file to write (default: HUB_HOME/backups/hub-<time>.duckdb; on DuckLake a "
            "directory, hub-<time>.lake)"
        ),
    ] = None,
) -> None:
    """Copy the live warehouse consistently (writers wait for the copy; a crashed writer's WAL is
    checkpointed first), then check that the copy opens. On DuckLake: the catalog's pg_dump and
    the data files it references, taken under the lake's write lock (a directory)."""
    import warehouse

    if settings.is_lake():
        return _backup_lake(dest)
    live = paths.live_db()
    if not live.exists():
        raise _fail(f"No warehouse at {live}: nothing to back up.")
    dest = _backup_destination(dest, ".duckdb")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        warehouse.copy_live_consistently(live, tmp)
        latest = _latest_syncs(tmp)  # the copy opens and holds the hub's tables
    except HubError as e:
        tmp.unlink(missing_ok=True)
        raise _fail(str(e)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.chmod(settings.PRIVATE_FILE)
    os.replace(tmp, dest)
    console.print(f"Backed up {live} to {dest} ({dest.stat().st_size / 2**20:.1f} MB).")
    for code, run in latest:
        console.print(f"  {code}: cursors of sync {run}")
    console.print(f"Restore it with: hub restore {dest}")


def restore(
    source: Annotated[Path, typer.Argument(help="a file written by `hub backup`")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="DuckLake: replace a lake that is not empty (the DuckDB file is always replaced)",
        ),
    ] = False,
) -> None:
    """Put a backup in place of the live warehouse (waiting for any writer), and reset the
    cursor cache so every county's next sync resumes from the restored warehouse's cursors."""
    import duckdb

    import warehouse
    from pipelines.cli_guard import prepare_to_write as _prepare_to_write
    from warehouse import cursors
    from warehouse import lock as warehouse_lock

    _prepare_to_write()
    if settings.is_lake():
        return _restore_lake(source, force)
    source = source.resolve()
    live = paths.live_db()
    try:
        latest = _latest_syncs(source)
    except (duckdb.Error, OSError) as e:
        raise _fail(f"{source} is not a usable warehouse backup: {e}") from None
    live.parent.mkdir(parents=True, exist_ok=True)
    tmp = live.with_name(f".{live.name}.restore-{uuid.uuid4().hex}.tmp")
    try:
        with warehouse_lock.hold(live, purpose="restore"):
            import shutil

            shutil.copyfile(source, tmp)
            tmp.chmod(settings.PRIVATE_FILE)
            # a WAL beside the live file belongs to the file being replaced, never to the backup
            warehouse.wal_path(live).unlink(missing_ok=True)
            os.replace(tmp, live)
            removed = cursors.reset_cache()
    except HubError as e:
        raise _fail(str(e)) from None
    finally:
        tmp.unlink(missing_ok=True)
    console.print(f"Restored {live} from {source}.")
    for code, run in latest:
        console.print(f"  {code}: the next sync resumes from the cursors of sync {run}")
    console.print(
        f"Cursor cache reset ({len(removed)} file(s) removed): landings read the restored "
        "warehouse's cursors. The analyst snapshot shows the old state until the next publish "
        "(`hub sync <county>` or the sync_city job)."
    )


def _backup_destination(dest: Path | None, suffix: str) -> Path:
    """``dest``, or ``HUB_HOME/backups/hub-<time><suffix>``, with its folder made. A backup holds
    everything the warehouse holds, PII included: the default folder is owner-only."""
    if dest is None:
        dest = backups_dir() / f"hub-{datetime.now(UTC):%Y%m%dT%H%M%SZ}{suffix}"
    dest = dest.resolve()
    if dest.parent == backups_dir().resolve():
        settings.private_dir(dest.parent)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def _backup_lake(dest: Path | None) -> None:
    from pipelines.lake import backup as lake_backup

    dest = _backup_destination(dest, ".lake")
    try:
        made = lake_backup.backup(dest)
    except HubError as e:
        raise _fail(str(e)) from None
    console.print(
        f"Backed up the lake {settings.redact_dsn(settings.lake_catalog())} at snapshot "
        f"{made.snapshot} to {dest} (catalog dump + {len(made.files)} data file(s), "
        f"{made.size / 2**20:.1f} MB).",
        soft_wrap=True,
    )
    for code, run in made.latest_syncs:
        console.print(f"  {code}: cursors of sync {run}")
    console.print(f"Restore it with: hub restore {dest}")


def _restore_lake(source: Path, force: bool) -> None:
    from pipelines.lake import backup as lake_backup
    from warehouse import cursors
    from warehouse.lake import catalog

    try:
        done = lake_backup.restore(source.resolve(), force=force)
    except HubError as e:
        raise _fail(str(e)) from None
    catalog.forget()  # this process's attach saw the replaced lake
    removed = cursors.reset_cache()
    console.print(
        f"Restored the lake {settings.redact_dsn(settings.lake_catalog())} (data path "
        f"{settings.lake_data_path()}) to snapshot {done.backup.snapshot} from {source}"
        + (f"; it replaced a lake ({done.removed_files} file(s) no longer referenced removed)."
           if done.replaced else "."),
        soft_wrap=True,
    )  # fmt: skip
    for code, run in done.backup.latest_syncs:
        console.print(f"  {code}: the next sync resumes from the cursors of sync {run}")
    console.print(f"Analyst lake: {done.published}.", soft_wrap=True)
    console.print(
        f"Cursor cache reset ({len(removed)} file(s) removed): landings read the restored "
        "lake's cursors."
    )


def replay(
    county: Annotated[str, typer.Argument(help="slug or code, e.g. luonan")],
    sync_id: Annotated[
        str, typer.Argument(help="the landing's directory under var/landing/<slug>/")
    ],
    safety_share: Annotated[
        float, typer.Option(help="largest share of live records one sync may delete")
    ] = 0.2,
) -> None:
    """Merge a landed sync again from its files (pages verified, recorded as a replay)."""
    from pipelines import sync
    from pipelines.cli_guard import prepare_to_write as _prepare_to_write
    from seeds.registry import county as find

    _prepare_to_write()
    c = find(county)
    try:
        landed = sync.replay(c, sync_id)
        merged = sync.merge(c, landed, safety_share=safety_share)
    except HubError as e:
        raise _fail(str(e)) from None
    totals = {
        k: sum(c.get(k, 0) for c in merged.counts.values())
        for k in ("accepted", "rejected", "deleted")
    }
    console.print(
        f"Replayed {sync_id} as run {merged.sync_run_id}: "
        + ", ".join(f"{n} {k}" for k, n in totals.items()),
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
    app.command()(replay)
