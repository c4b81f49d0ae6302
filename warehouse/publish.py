"""Publishing the snapshots (``warehouse.snapshots``) and the consistent copy of the live
file, both under the warehouse lock (shared)."""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import warehouse.lock as warehouse_lock
from base import paths
from base.processes import pid_alive
from warehouse.connection import connect, wal_path
from warehouse.live_copy import copy_live_consistently  # noqa: F401  (public via warehouse)
from warehouse.snapshot_delta import AnalystPublish

log = logging.getLogger(__name__)


def publish_snapshot(
    live_path: str | Path | None = None,
    snapshot_path: str | Path | None = None,
    pii_snapshot_path: str | Path | None = None,
) -> Path:
    """:func:`publish_snapshots`, returning the analyst snapshot's path."""
    publish_snapshots(live_path, snapshot_path, pii_snapshot_path)
    return Path(snapshot_path) if snapshot_path is not None else paths.snapshot_db()


def publish_snapshots(
    live_path: str | Path | None = None,
    snapshot_path: str | Path | None = None,
    pii_snapshot_path: str | Path | None = None,
    delta: bool = True,
) -> AnalystPublish:
    """Publish the two copies of the live file (``warehouse.snapshots``): the analyst snapshot
    (no direct identifiers) and the restricted PII snapshot, each written beside its target and
    renamed into place atomically. The analyst file is a row-level delta of the previous one
    when it can be (``warehouse.snapshot_delta``; ``delta=False`` forces a full rebuild); the
    result says which happened and why.

    Call only from a step in the ``duckdb_warehouse`` pool, so no writer is active while the
    live file is read (a closed DuckDB connection has checkpointed its WAL into the file). A
    reader that has an old snapshot open keeps reading the old file; connections opened after
    the rename see the new one."""
    import warehouse.snapshot_delta as snapshot_delta
    import warehouse.snapshots as snapshots

    live = Path(live_path) if live_path is not None else paths.live_db()
    target = Path(snapshot_path) if snapshot_path is not None else paths.snapshot_db()
    pii = Path(pii_snapshot_path) if pii_snapshot_path is not None else paths.pii_snapshot_db()
    for published in (target, pii):
        remove_publish_leftovers(published)
    if wal_path(live).exists():
        with connect(live):  # replays and checkpoints a WAL left by a crashed writer
            pass
    # Both copies read the live file under the warehouse lock (shared): no writer can change it
    # while they are taken (a copy taken under a writer was unreadable once in 111).
    with warehouse_lock.hold(live, shared=True, purpose="consistent copy"):
        snapshots.publish_pii_snapshot(live, pii)
        return snapshot_delta.publish_analyst(live, target, delta=delta)


#: A leftover of a killed publish whose name carries no PID is removed once it is this old.
_ANONYMOUS_LEFTOVER_SECONDS = 600


def remove_publish_leftovers(target: Path) -> list[Path]:
    """Remove the temporary copies (``.<snapshot>.<pid>-<hex>.tmp`` and their ``.wal``) that
    publishes killed mid-copy left beside ``target``; a live publisher's copy is left alone."""
    removed = []
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        tag = leftover.name[len(target.name) + 2 :].split(".tmp", 1)[0]
        pid = tag.split("-", 1)[0] if "-" in tag else ""
        if pid.isdigit():
            if pid_alive(int(pid)):
                continue
        else:
            try:
                age = datetime.now(UTC).timestamp() - leftover.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < _ANONYMOUS_LEFTOVER_SECONDS:
                continue
        with suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    if removed:
        log.warning("removed %d leftover(s) of killed publishes: %s", len(removed), removed)
    return removed
