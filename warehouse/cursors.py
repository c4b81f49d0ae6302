"""Watermarks the warehouse owns: which cursors a landing may start from.

The committed cursors live in ``ops.watermark`` (with the ``sync_run_id`` of the merge that
committed them). Landing steps must not wait for the single DuckDB writer, so they read a cache,
``state/<slug>.json`` (``warehouse.write_state``), written after each merge. A cache can lie: a
restored backup, or ``HUB_WAREHOUSE`` pointed at another file, leaves it ahead of (or beside)
the warehouse, and a landing from it would silently skip a day. So the cache is used only when
it provably belongs to the warehouse's latest committed sync of the county:

- every read-write connection on the live file, when it closes, writes the *commit record*
  ``state/warehouse.json``: the file it wrote (path, size, mtime) and, per county, the sync
  that owns the committed cursors;
- a landing uses the cache when the live file is still the one the record describes (same path
  and inode; same size and mtime with no WAL, unless a hub writer holds the warehouse lock right
  now) and the cache's sync is the record's sync of its county;
- otherwise it reads the cursors from the warehouse itself (shared lock, read-only) and
  refreshes the cache; a county the warehouse has never synced (or no warehouse at all) starts
  with no cursors, i.e. a full sync.

The merge double-checks (``sync.merge``): a landing whose starting cursors are not the
warehouse's is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb

import warehouse  # the package is initialised before this module (it never imports it)
from base import paths
from warehouse import lock as warehouse_lock

log = logging.getLogger(__name__)


def commit_record_path() -> Path:
    return paths.hub_home() / "state" / "warehouse.json"


def _file_identity(db_path: Path) -> dict[str, Any] | None:
    try:
        st = db_path.stat()
    except FileNotFoundError:
        return None
    return {
        "warehouse": str(db_path.resolve()),
        "inode": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def owners(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """county_code -> the sync_run_id of the merge that committed the county's cursors."""
    return dict(
        con.execute(
            "SELECT county_code, max(sync_run_id) FROM ops.watermark GROUP BY county_code"
        ).fetchall()
    )


def write_commit_record(db_path: Path, latest: dict[str, str]) -> None:
    """Record what the live file holds, right after a writer closed it (under its lock)."""
    identity = _file_identity(db_path)
    if identity is None:
        return
    target = commit_record_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({**identity, "latest": latest}, indent=1), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:  # without a record landings read the warehouse: slower, still right
        log.warning("could not write the commit record %s: %s", target, exc)
        forget_commit_record()


def forget_commit_record() -> None:
    commit_record_path().unlink(missing_ok=True)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cache_is_current(county: Any, db_path: Path | None = None) -> bool:
    """Does ``state/<slug>.json`` belong to the live warehouse's latest committed sync?"""
    db_path = Path(db_path) if db_path is not None else paths.live_db()
    record = _read_json(commit_record_path())
    identity = _file_identity(db_path)
    if record is None or identity is None:
        return False
    if any(record.get(k) != identity[k] for k in ("warehouse", "inode")):
        return False  # another file: restored (a new inode), or HUB_WAREHOUSE elsewhere
    untouched = all(record.get(k) == identity[k] for k in ("size", "mtime_ns"))
    changed = not untouched or warehouse.wal_path(db_path).exists()
    # Changed since the record: fine while a hub writer is at work (it rewrites the record when
    # it closes; a merge of this county meanwhile is caught by the merge's own check);
    # otherwise someone outside the hub changed the file, or a writer crashed.
    if changed and not warehouse_lock.writer_active(db_path):
        return False
    cache = _read_json(warehouse.state_path(county)) or {}
    return cache.get("sync_run_id") == (record.get("latest") or {}).get(county.code)


def starting_watermarks(county: Any, db_path: Path | None = None) -> tuple[dict[str, str], str]:
    """The cursors a landing of ``county`` starts from, and where they came from (for the log
    and the landing's metadata): ``cache``, ``warehouse`` or ``none`` (no warehouse yet)."""
    db_path = Path(db_path) if db_path is not None else paths.live_db()
    if not db_path.exists():
        return {}, "none"
    if cache_is_current(county, db_path):
        return warehouse.read_state(county), "cache"
    marks, owner = read_from_warehouse(county, db_path)
    warehouse.write_state(county, marks, sync_run_id=owner)
    return marks, "warehouse"


def read_from_warehouse(county: Any, db_path: Path) -> tuple[dict[str, str], str | None]:
    """The county's committed cursors and the sync that committed them, read from the file."""
    with warehouse_lock.hold(db_path, shared=True, purpose="read cursors"):
        if not warehouse.wal_path(db_path).exists():
            con = duckdb.connect(str(db_path), read_only=True)
            try:
                if not warehouse.has_table(con, "ops", "watermark"):
                    return {}, None
                return warehouse.watermarks(con, county.code), owners(con).get(county.code)
            finally:
                con.close()
    # a WAL with no writer at work: a crashed writer's; a read-write open replays it
    with warehouse.connect(db_path) as con:
        return warehouse.watermarks(con, county.code), owners(con).get(county.code)


def reset_cache() -> list[Path]:
    """Forget every cached cursor and the commit record (after a restore): the next landing of
    each county reads the restored warehouse's own cursors. Returns the files removed."""
    from seeds.registry import counties

    removed = []
    for path in [commit_record_path(), *(warehouse.state_path(c) for c in counties())]:
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
