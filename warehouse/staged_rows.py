"""The staged rows as the merge reads them, and the row-hash diff against core (issue 13).

The merge never holds a county's frames in Python: each entity's staged rows are a DuckDB view
``_src_<entity>`` with the row position ``_row`` — the staged Parquet files through
``read_parquet`` (``Staged.parts``), or an Arrow view of a frame given in memory (tests, and a
``Validated`` that carries its accepted frame) — and every statement of the merge reads them
set-based. DuckDB itself spills to ``temp_directory`` beyond ``MEMORY_LIMIT``.

The diff (``10_stage.sql``, ``diff``) runs first, before validation: each staged row's
``row_hash`` (the one definition, ``warehouse.entities``) against this county's live core row.
Rows found the same skip validation's per-row checks (``schemas.validate``) and, in the merge,
cost the record of their keys and, after the COMMIT, a set-based UPDATE in bounded pieces
(``warehouse.touch``) instead of staging, history and upsert; every other row takes the full path, exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from schemas.sanity import future_limit
from warehouse.batch import Batch, frame_of
from warehouse.duckdb_bounds import MERGE, bound, merge_write_limit
from warehouse.entities import MergeEntity
from warehouse.statements import literal


@dataclass
class StagedDiff:
    """The diff of one sync: per entity the temp table ``_diff_<entity>`` (in ``batch``) and the
    positions of the rows found the same as core (``unchanged``, for validation)."""

    batch: Batch
    unchanged: dict[str, pl.Series] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def release(self) -> None:
        self.batch.release()


def limit_memory(con: duckdb.DuckDBPyConnection) -> None:
    """The merge's DuckDB bound (``duckdb_bounds.MERGE``: ``HUB_MERGE_MEMORY_LIMIT``,
    ``HUB_MERGE_THREADS``); what does not fit spills to DuckDB's temp directory."""
    bound(con, MERGE)
    # the staged Parquet files are read by a few statements each; caching them in the buffer
    # pool would only fill it (the limit is RSS: the rows are in the temp tables already)
    con.execute("SET enable_external_file_cache = false")


#: DuckDB's memory limit while validation runs (``spilled``): what the diff left in DuckDB's
#: buffer pool is written out to its temp directory first. 8 MB: 洛南's unchanged re-read at
#: scale 10 peaks in validation, ~8 MB lower than at 16 MB (bench/profiles/merge.md, "The
#: checkpoint after the transaction"); DuckDB runs no statement while validation works.
SPILLED_LIMIT = "8MB"


@contextmanager
def spilled(con: duckdb.DuckDBPyConnection) -> Iterator[Path | None]:
    """Validation (polars) runs between the diff and the merge on the same connection. DuckDB
    keeps the diff's temp tables in its buffer pool up to the merge's limit and frees nothing
    by itself, so validation's frames came on top of them (the merge step's peak from 洛南
    scale ~2 on: bench/profiles/merge.md, "Issue 13, fourth round"). Lowering the limit makes
    DuckDB evict them to its temp directory now; the merge's limit is back afterwards, and the
    merge reads them back as it needs them. A pool that cannot shrink (what DuckDB cannot
    evict) keeps its limit: only the memory saving is lost. Afterwards the merge's transaction
    runs at ``duckdb_bounds.merge_write_limit`` (the diff ran at ``MERGE``'s).

    Yields DuckDB's temp directory (the warehouse file's ``<file>.tmp``, a lake instance's own
    folder; None when spilling is off): validation's temporary files go there too
    (``validate_county``'s ``workdir``)."""
    with suppress(duckdb.OutOfMemoryException):  # DuckDB then keeps the limit it had
        con.execute(f"SET memory_limit = {literal(SPILLED_LIMIT)}")
    try:
        temp = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        yield Path(temp) if temp else None
    finally:
        con.execute(f"SET memory_limit = {literal(merge_write_limit(con))}")


def source_view(batch: Batch, staged: Any, entity: str, frame: pl.DataFrame | None = None) -> str:
    """``_src_<entity>``: the rows to merge with their position ``_row``; ``frame`` when given
    (a ``Validated.accepted`` in memory), else the staged files, else the staged frame."""
    name = f"_src_{entity}"
    files = getattr(staged, "parts", {}).get(entity) if frame is None else None
    if files:
        parts, offset = [], 0
        for path in files:
            parts.append(
                f"SELECT * EXCLUDE (file_row_number), file_row_number + {offset} AS _row "
                f"FROM read_parquet({literal(path)}, file_row_number = true)"
            )
            offset += parquet_rows(path)
        body = " UNION ALL ".join(parts)
    else:
        frame = staged.frames[entity] if frame is None else frame
        arrow = batch.register(f"_arrow_{entity}", frame.with_row_index("_row"))
        body = f"SELECT * REPLACE (CAST(_row AS BIGINT) AS _row) FROM {arrow}"
    batch.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
    batch.temp_view(name)
    return name


def diff_staged(
    batch: Batch,
    staged: Any,
    entities: dict[str, MergeEntity],
    frames: dict[str, pl.DataFrame] | None = None,
    now: datetime | None = None,
) -> StagedDiff:
    """Hash-diff every staged entity against core (``10_stage.sql``, ``diff``); ``frames``
    overrides the staged rows of an entity (an accepted frame given in memory)."""
    diff = StagedDiff(batch)
    batch.params["future_limit"] = future_limit(now)
    frames = frames or {}
    present = staged.entities() if hasattr(staged, "entities") else list(staged.frames)
    for entity, spec in entities.items():
        if entity not in present and entity not in frames:
            continue
        ids = spec.identifiers()
        diff.sources[entity] = source_view(batch, staged, entity, frames.get(entity))
        batch.temp(ids["diff"])
        has_live = batch.run("10_stage.sql", "county_has_live", **ids).fetchone()[0]
        batch.run("10_stage.sql", "diff" if has_live else "new_keys", **ids)
        same = batch.con.sql(f"SELECT _row FROM {ids['diff']} WHERE same ORDER BY _row")
        diff.unchanged[entity] = frame_of(same)["_row"].cast(pl.UInt32)
    return diff


def parquet_rows(path: Path | str) -> int:
    """Rows of a Parquet file, from its footer (no data read; no pyarrow import)."""
    return pl.scan_parquet(path).select(pl.len()).collect().item()
