"""How much memory and how many threads DuckDB may use in a step that writes the warehouse.

Each bound names its settings (``HUB_<NAME>_MEMORY_LIMIT``, ``HUB_<NAME>_THREADS``, read by
``base.settings``) and its defaults. Beyond the limit, joins, sorts, windows and temp tables
spill to DuckDB's temp directory instead of growing with the county. What cannot spill (a
MERGE that rewrites most rows of a large county, a text of megabytes in the quarantine) raises
``OutOfMemoryException``; a bound with a ``retry_memory_limit`` then runs its work once more at
that limit (``retry_out_of_memory``), so the common run stays small and the rare one still
succeeds, with a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import duckdb

from base import settings
from warehouse.lake.catalog import WRITE_MEMORY_LIMIT, is_lake
from warehouse.statements import literal

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StepBound:
    """One step's DuckDB bound: ``memory_limit`` on the DuckDB file (a lake connection takes
    ``WRITE_MEMORY_LIMIT``, warehouse/lake/catalog.py), ``threads``, and the limit an
    out-of-memory attempt is tried once more with (``None``: the error stands)."""

    name: str
    memory_limit: str
    threads: int
    retry_memory_limit: str | None = None

    def limit_for(self, con: duckdb.DuckDBPyConnection) -> str:
        default = WRITE_MEMORY_LIMIT if is_lake(con) else self.memory_limit
        return settings.duckdb_memory_limit(self.name, default)


#: The merge. 128 MB: the merge step's peak is ~100 MB lower than at 256 MB for little
#: spilling; 64 MB runs out of memory in the stage and the upsert. One thread: the merge's
#: statements are short joins and writes; a second thread saved little wall time and cost CPU
#: seconds and memory (each thread has its own buffers), and in a city sync the other core is
#: busy landing counties anyway (bench/profiles/merge.md). 1 GB once more: the four largest
#: counties' merges at scale 5 (bench/README.md, "DuckLake").
MERGE = StepBound("MERGE", "128MB", 1, retry_memory_limit="1GB")

#: The merge's transaction, after validation (``staged_rows.spilled`` sets it): 96 MB. With the
#: forked step's own ~250 MB (code and Dagster) 96 MB kept the merge steps under 400 MB at scale
#: 1.0, where 128 MB put them at 410-440 MB. 80 MB was tried (13ad: the transaction sat at
#: 385-405 MB at scale 10 with DuckDB's 96 MB full of evictable temp tables) and reverted: in the
#: city run at scale 10 洛南's merge, third, ran out at 80 MB and went once more at 1 GB (a step
#: of 1.2 GB; bench/history.md, "Earlier figures: main 5e0dae2 / b12f723"). The row-hash diff
#: before validation keeps ``MERGE``'s 128 MB (at 96 MB 洛南's unchanged re-read at scale 3 ran
#: out in ``diff person``, which has no second try). Out of memory in the transaction: once more
#: at ``MERGE``'s retry limit (bench/profiles/merge.md, "Issue 13, fourth round").
MERGE_WRITE = StepBound("MERGE_WRITE", "96MB", 1)

#: The least memory the merge's wide statements run with, when an operator sets the transaction's
#: limit lower (``HUB_MERGE_WRITE_MEMORY_LIMIT``): the stage statements (``10_stage.sql``,
#: ``stage``: every column of the changed rows read from the staged Parquet files, cast,
#: hashed) and the pieces of ``shared_person_keys`` (``warehouse/shared_keys.py``: their size
#: was chosen at 96 MB). At 80 MB ``stage person`` of 洛南's first load at scale 10 ran out of
#: memory (at 64 MB too), and a piece of ``shared_person_keys`` of 镇安 merged after five
#: counties.
WIDE_STATEMENT_LIMIT = "96MB"

#: DuckDB's memory limit for the merge's checkpoint after its transaction
#: (``warehouse.checkpoint``): the checkpoint fills whatever limit it has (compressing, and
#: rewriting the row groups its vacuum merges) and grows with the warehouse. 镇安 merged after
#: five counties at scale 10 peaked at 435 MB in it at 96 MB, 391 MB at 64 MB, 388 at 48 and 376
#: at 32 (bench/profiles/merge.md, "The checkpoint after the transaction"). Not lower: a
#: checkpoint that runs out of memory is FATAL in DuckDB (the database is invalidated until the
#: process reopens it; the WAL keeps the commit), and at 32 MB the marts' unit warehouse did.
CHECKPOINT_MEMORY_LIMIT = "64MB"

#: A merge that wrote at most this many rows (inserted, updated, deleted and found the same,
#: ``merge.small_merge``): a one-day incremental of a county (洛南 92 at scale 1.0), far below
#: the loads whose checkpoint fills its limit (13ad: first loads and re-reads of 10^5-10^6
#: rows).
SMALL_MERGE_ROWS = 10_000

#: DuckDB's memory limit for a small merge's checkpoint: the transaction's own 96 MB, not
#: ``CHECKPOINT_MEMORY_LIMIT``. At 64 MB the checkpoint of a few dozen changed rows evicted
#: blocks to the temporary file (ZSTD) to rewrite the columns of the row groups they are in:
#: 洛南 0.21-0.23 and 镇安 0.17-0.18 CPU-s, at 96 MB 0.18-0.20 and 0.14-0.2, the step's peak
#: +0-4 MB (bench/profiles/merge.md, "Small incremental merges, second round").
SMALL_CHECKPOINT_MEMORY_LIMIT = "96MB"

#: Bytes per unit of DuckDB's memory sizes: as written in a setting (``96MB``, 1000^i) and as
#: ``current_setting`` shows them (``91.5 MiB``, 1024^i).
_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def size_bytes(text: str) -> int | None:
    """``96MB``, ``91.5 MiB``, ``1000 bytes`` -> bytes; None for what is not a size."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not match or match[2].upper() not in _UNITS:
        return None
    return int(float(match[1]) * _UNITS[match[2].upper()])


@contextmanager
def at_least(con: duckdb.DuckDBPyConnection, limit: str, base: str) -> Iterator[None]:
    """Run the block with DuckDB's memory limit at ``limit`` where the connection runs at
    ``base`` (the setting as written: DuckDB shows it rounded down, ``80MB`` as 76.2 MiB) and
    ``limit`` is the larger; ``base`` again afterwards. A connection above ``base`` (a retry's
    1 GB) and a ``base`` above ``limit`` (an operator's, the lake's) stay as they are."""
    current = size_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    wanted, usual = size_bytes(limit), size_bytes(base)
    if None in (current, wanted, usual) or current > usual or wanted <= usual:
        yield
        return
    con.execute(f"SET memory_limit = {literal(limit)}")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = {literal(base)}")


def wide_statements(con: duckdb.DuckDBPyConnection):
    """The block (the merge's stage statements, ``shared_person_keys``' pieces) at no less than
    ``WIDE_STATEMENT_LIMIT``, whatever the merge transaction's own limit."""
    return at_least(con, WIDE_STATEMENT_LIMIT, merge_write_limit(con))


def merge_write_limit(con: duckdb.DuckDBPyConnection) -> str:
    """The merge transaction's limit: ``HUB_MERGE_WRITE_MEMORY_LIMIT`` when set; else the
    merge's own (``MERGE``) when ``HUB_MERGE_MEMORY_LIMIT`` is set or on the lake (whose
    default is ``WRITE_MEMORY_LIMIT`` for both); else ``MERGE_WRITE``'s 96 MB."""
    if settings.duckdb_memory_limit(MERGE_WRITE.name, "") or not (
        settings.duckdb_memory_limit(MERGE.name, "") or is_lake(con)
    ):
        return MERGE_WRITE.limit_for(con)
    return MERGE.limit_for(con)


#: The city step's connections (marts, the analyst and PII snapshots). The city step runs in
#: the run worker (in-process executor), on top of Dagster and the code location (~220 MB); the
#: marts and the publish each take the worker to about that plus the limit plus 30 MB. 96 MB:
#: every mart and both snapshots fit at scale 10 once no mart statement holds a
#: count(DISTINCT …) under GROUPING SETS (it cannot spill) or a CSV reader's default 30.5 MiB
#: buffer (bench/history.md, "The city step at 96 MB"); at 128 MB the worker peaked at 422 MB
#: at scale 10. The marts run once more at 512 MB when they run out (on the lake 512 MB is the
#: limit already, and the error stands). One thread used 30-50 % fewer CPU seconds and less
#: memory than two for the marts and the snapshots on this 2-core machine (bench/history.md,
#: "The city step").
CITY = StepBound("CITY", "96MB", 1, retry_memory_limit="512MB")


def bound(con: duckdb.DuckDBPyConnection, step: StepBound) -> None:
    """Set ``step``'s memory limit and threads on ``con``."""
    con.execute(f"SET memory_limit = {literal(step.limit_for(con))}")
    con.execute(f"SET threads = {settings.duckdb_threads(step.name, step.threads)}")


def raise_memory_limit(con: duckdb.DuckDBPyConnection, step: StepBound) -> bool:
    """Raise DuckDB's memory limit to ``step.retry_memory_limit`` after an out-of-memory error;
    False when there is none or it is the limit already (the error stands)."""
    if step.retry_memory_limit is None:
        return False

    def current() -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    before = current()
    con.execute(f"SET memory_limit = {literal(step.retry_memory_limit)}")
    if current() == before:
        return False
    log.warning(
        "the %s ran out of DuckDB memory at %s; once more at %s",
        step.name.lower(),
        before,
        current(),
    )
    return True


def retry_out_of_memory(
    con: duckdb.DuckDBPyConnection, step: StepBound, attempt: Callable[[], T]
) -> T:
    """Run ``attempt`` (which must roll its writes back when it fails); one that ran out of
    DuckDB memory runs once more at the step's retry limit."""
    try:
        return attempt()
    except duckdb.OutOfMemoryException:
        if not raise_memory_limit(con, step):
            raise
        return attempt()
