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

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb

import warehouse.lock as warehouse_lock
from base import paths
from warehouse.commit_record import (  # noqa: F401  (owners, forget_commit_record: re-exported)
    _file_identity,
    _read_json,
    commit_record_path,
    forget_commit_record,
    owners,
)
from warehouse.connection import connect, has_table, is_live_lake, wal_path
from warehouse.lake.catalog import LakeUnavailable
from warehouse.run_log import watermarks
from warehouse.state import read_state, state_path, write_state


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
    changed = not untouched or wal_path(db_path).exists()
    # Changed since the record: fine while a hub writer is at work (it rewrites the record when
    # it closes; a merge of this county meanwhile is caught by the merge's own check);
    # otherwise someone outside the hub changed the file, or a writer crashed.
    if changed and not warehouse_lock.writer_active(db_path):
        return False
    cache = _read_json(state_path(county)) or {}
    return cache.get("sync_run_id") == (record.get("latest") or {}).get(county.code)


def starting_watermarks(county: Any, db_path: Path | None = None) -> tuple[dict[str, str], str]:
    """The cursors a landing of ``county`` starts from, and where they came from (for the log
    and the landing's metadata): ``cache``, ``warehouse`` or ``none`` (no warehouse yet)."""
    if is_live_lake(db_path):  # DuckLake: read the lake's committed cursors (no commit record)
        marks, owner = _read_from_lake(county)
        write_state(county, marks, sync_run_id=owner)
        return marks, "warehouse"
    db_path = Path(db_path) if db_path is not None else paths.live_db()
    if not db_path.exists():
        return {}, "none"
    if cache_is_current(county, db_path):
        return read_state(county), "cache"
    marks, owner = read_from_warehouse(county, db_path)
    write_state(county, marks, sync_run_id=owner)
    return marks, "warehouse"


def read_from_warehouse(county: Any, db_path: Path) -> tuple[dict[str, str], str | None]:
    """The county's committed cursors and the sync that committed them, read from the file."""
    with warehouse_lock.hold(db_path, shared=True, purpose="read cursors"):
        if not wal_path(db_path).exists():
            con = duckdb.connect(str(db_path), read_only=True)
            try:
                if not has_table(con, "ops", "watermark"):
                    return {}, None
                return watermarks(con, county.code), owners(con).get(county.code)
            finally:
                con.close()
    # a WAL with no writer at work: a crashed writer's; a read-write open replays it
    with connect(db_path) as con:
        return watermarks(con, county.code), owners(con).get(county.code)


def _read_from_lake(county: Any) -> tuple[dict[str, str], str | None]:
    """The county's committed cursors in the lake: read from its latest snapshot, or from a
    read-write open when the lake does not exist yet (which creates and migrates it)."""
    with ExitStack() as stack:
        try:
            con = stack.enter_context(connect(read_only=True))
        except LakeUnavailable:
            con = stack.enter_context(connect())
        if not has_table(con, "ops", "watermark"):
            return {}, None
        return watermarks(con, county.code), owners(con).get(county.code)


def reset_cache() -> list[Path]:
    """Forget every cached cursor and the commit record (after a restore): the next landing of
    each county reads the restored warehouse's own cursors. Returns the files removed."""
    from seeds.registry import counties

    removed = []
    for path in [commit_record_path(), *(state_path(c) for c in counties())]:
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
