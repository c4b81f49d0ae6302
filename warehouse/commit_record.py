"""The commit record ``state/warehouse.json``: which file the last read-write connection left
and, per county, the sync that owns its committed cursors (see :mod:`warehouse.cursors`).

Written by :func:`warehouse.connection.connect` when a read-write connection closes; it sits
below ``connection`` so that the connection never imports the cursor logic that uses it.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb

from base import paths

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
