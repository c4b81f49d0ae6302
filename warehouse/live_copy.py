"""A byte copy of the live warehouse that no writer can tear: used by ``hub backup`` and by the
restricted PII snapshot (:mod:`warehouse.snapshots`), published by :mod:`warehouse.publish`."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

import warehouse.lock as warehouse_lock
from warehouse.connection import connect, wal_path


def copy_live_consistently(live: Path, dest: Path) -> Path:
    """Byte-copy the live file to ``dest`` while no writer can change it.

    A WAL left by a crashed writer is first replayed and checkpointed (a read-write open), so
    the file alone holds every committed transaction. The copy then holds the warehouse lock
    shared (hub writers wait politely) and a read-only DuckDB connection on the file (a writer
    outside the hub, such as a stray shell, is refused by DuckDB instead of changing the bytes
    under the copy)."""
    live, dest = Path(live), Path(dest)
    if wal_path(live).exists():
        with connect(live):  # replays and checkpoints a WAL left by a crashed writer
            pass
    with warehouse_lock.hold(live, shared=True, purpose="consistent copy"):
        guard = duckdb.connect(str(live), read_only=True)
        try:
            shutil.copyfile(live, dest)
        finally:
            guard.close()
    return dest
