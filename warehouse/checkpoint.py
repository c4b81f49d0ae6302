"""The merge's checkpoint after its transaction, not at its COMMIT (DuckDB file only).

DuckDB checkpoints by itself at a COMMIT whose write-ahead log passes ``checkpoint_threshold``
(16 MiB) or whose write is large (``auto_checkpoint_skip_wal_threshold``: it then skips the WAL
and checkpoints). A merge's COMMIT is such a commit, and its checkpoint (compressing what
changed, and the row-group vacuum that grows with what the warehouse holds) ran while the
transaction's temp tables still filled the merge's buffer pool: the peak of the counties merged after others at scale 10 (bench/profiles/merge.md,
"The checkpoint after the transaction"). Here the COMMIT only writes the WAL (a bulk insert's
row groups were written to the file during the transaction; the WAL points at them), and the
same checkpoint runs once the temp tables are dropped, at a memory limit of its own
(``duckdb_bounds.CHECKPOINT_MEMORY_LIMIT``; a small merge's, which cannot fill it, at
``SMALL_CHECKPOINT_MEMORY_LIMIT``).

Crash semantics are DuckDB's own and unchanged: a committed transaction is in the WAL, which
the next read-write open replays and checkpoints (``warehouse.live_copy``, ``hub backup``); a
merge killed before its COMMIT left nothing. The checkpoint is not part of the merge's
outcome: one that fails (disk full) is logged, the merge stands, and the connection's close
(or the next open) checkpoints the WAL. One that runs out of memory is FATAL in DuckDB (the
database is invalidated in this process, the step fails after its COMMIT, the WAL keeps the
merge for the next open): hence ``CHECKPOINT_MEMORY_LIMIT``'s headroom.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from warehouse.duckdb_bounds import CHECKPOINT_MEMORY_LIMIT
from warehouse.lake.catalog import is_lake
from warehouse.statements import literal

log = logging.getLogger(__name__)

#: The two settings that make DuckDB checkpoint at a COMMIT, and the values that never do.
AUTOMATIC_CHECKPOINT = {
    "checkpoint_threshold": "1TiB",
    "auto_checkpoint_skip_wal_threshold": str(2**62),
}


@dataclass
class Plan:
    """What the block tells the checkpoint after it: the memory limit it runs at (a small
    merge's is larger: ``duckdb_bounds.SMALL_CHECKPOINT_MEMORY_LIMIT``)."""

    memory_limit: str = CHECKPOINT_MEMORY_LIMIT


@contextmanager
def checkpoint_after(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[Plan]:
    """No automatic checkpoint at the COMMITs of the block; one ``CHECKPOINT`` after it when it
    ended normally (the block's temp tables dropped by then) at the yielded plan's memory limit,
    then DuckDB's memory limit ``limit``. DuckLake has no such checkpoint (its ``CHECKPOINT`` is
    the lake's maintenance): there the block runs as it is."""
    plan = Plan()
    if is_lake(con):
        yield plan
        return
    before = {
        name: con.execute("SELECT current_setting(?)", [name]).fetchone()[0]
        for name in AUTOMATIC_CHECKPOINT
    }
    for name, value in AUTOMATIC_CHECKPOINT.items():
        con.execute(f"SET {name} = {literal(value)}")
    try:
        yield plan
    finally:
        for name, value in before.items():
            con.execute(f"SET {name} = {literal(str(value))}")
    checkpoint(con, limit, plan.memory_limit)


def checkpoint(
    con: duckdb.DuckDBPyConnection, limit: str, memory_limit: str = CHECKPOINT_MEMORY_LIMIT
) -> None:
    """``CHECKPOINT`` the file at ``memory_limit``, then set the memory limit to ``limit`` (as
    written: DuckDB shows a limit rounded down, so the one it shows cannot be set back as it
    was). One that fails (out of memory, disk full) is logged: what was committed is in the
    WAL, which the connection's close or the next open checkpoints."""
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        log.warning("the checkpoint after the merge failed (%s); the WAL keeps the merge", exc)
    finally:
        con.execute(f"SET memory_limit = {literal(limit)}")
