"""Streaming write side of a staged sync: a county is normalised page group by page group into
Parquet part files, then each entity's parts are reduced out of core (DuckDB with a memory
limit, spilling to disk) to the staged frame, one row per key. No step holds a whole county's
records, so the landing step's peak memory does not grow with the county (issue 13).

    with staging.open_parts(workdir) as parts:   # a temporary directory when workdir is None
        groups = staging.PageGroups(parts, build_group)
        for page in pages: groups.add(entity, raw_page_frame)
        groups.flush()
        rows = parts.finish(entity)               # -> <workdir>/frame.<entity>.parquet

The reduction keeps ``finish``'s semantics exactly (``pipelines.connectors.parsing.finish``):
per key the newest ``source_updated_at`` wins (nulls oldest), ties go to the later row of the
sync (``__order``); rows without a key are all kept; the result is in sync order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from schemas.columns import KEYS, frame_schema
from warehouse.statements import literal, q

#: Raw records normalised together: enough for polars to work in bulk, small enough that a
#: group's frames stay a few tens of MB whatever the county's size (HUB_STAGING_GROUP_ROWS).
GROUP_ROWS = 20_000


def group_rows() -> int:
    """``HUB_STAGING_GROUP_ROWS`` (fewer: less memory, more per-group overhead), else
    ``GROUP_ROWS``."""
    raw = os.environ.get("HUB_STAGING_GROUP_ROWS", "").strip()
    return max(1, int(raw)) if raw.isdigit() else GROUP_ROWS


#: DuckDB's working memory for the per-key reduction; beyond it DuckDB spills to the parts
#: directory. Bounds the reduction's share of the step's peak RSS.
REDUCE_MEMORY = "32MB"
ORDER = "__order"  # as pipelines.connectors.parsing.ORDER: the row's position in the sync
PARTS = ".parts"
#: A key's winner orders by this: the newest source_updated_at (null oldest), then sync order.
NEWEST = "{'at': coalesce(source_updated_at, '-infinity'::TIMESTAMPTZ), 'o': __order}"
ROW_GROUP = 16_384  # rows per Parquet row group of a staged frame: the sink's buffer
PART_ROW_GROUP = 4_096  # … of a part: the final pass decodes one at a time
#: An entity whose rows are one part of at most this many is reduced in memory: a one-day
#: incremental stages a few dozen rows of each of 8 entities, and the out-of-core passes (a
#: DuckDB connection, a COPY of the winners, a second scan) cost ~10-13 ms an entity for them
#: (bench/profiles/merge.md, "The small counties' incremental steps"). The rows in memory are
#: bounded by this number, not by the county.
SMALL_REDUCE_ROWS = 5_000


class StagedParts:
    """Part files of one staged sync under ``<directory>/.parts/<entity>/`` and the reduced
    frames ``<directory>/frame.<entity>.parquet``."""

    def __init__(self, directory: Path, temporary: bool = False) -> None:
        self.directory = Path(directory)
        self.temporary = temporary
        self.parts = self.directory / PARTS
        shutil.rmtree(self.parts, ignore_errors=True)  # a crashed staging's leftovers
        self.parts.mkdir(parents=True)
        self._count: dict[str, int] = defaultdict(int)
        self._orders: dict[Path, tuple[int, int]] = {}  # a part's first and last __order
        self._heights: dict[Path, int] = {}  # a part's rows
        self._con: duckdb.DuckDBPyConnection | None = None

    def write(self, entity: str, df: pl.DataFrame) -> None:
        """One page group's canonical rows of ``entity`` (its frame columns and ``__order``;
        extra columns are kept for :meth:`finish`'s ``heads``)."""
        if df.height == 0:
            return
        self._count[entity] += 1
        folder = self.parts / entity
        folder.mkdir(exist_ok=True)
        path = folder / f"{self._count[entity]:05d}.parquet"
        df.write_parquet(path, compression="lz4", row_group_size=PART_ROW_GROUP)
        self._orders[path] = (df[ORDER].min(), df[ORDER].max())
        self._heights[path] = df.height

    def frame_path(self, entity: str) -> Path:
        return self.directory / f"frame.{entity}.parquet"

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = duckdb.connect(config={"memory_limit": REDUCE_MEMORY, "threads": 1})
            con.execute(f"SET temp_directory = {literal((self.parts / 'spill').as_posix())}")
            self._con = con
        return self._con

    def scan(self, entity: str) -> pl.LazyFrame:
        """``entity``'s rows as the page groups wrote them (before :meth:`finish`)."""
        files = sorted((self.parts / entity).glob("*.parquet"))
        return pl.scan_parquet(files) if files else pl.LazyFrame(schema=frame_schema(entity))

    def finish(
        self,
        entity: str,
        heads: Path | None = None,
        no_heads: bool = False,
        transform: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
    ) -> int:
        """Reduce ``entity``'s parts to its staged frame (one row per key, latest version
        wins) and return its row count. ``heads``: a finished person frame to resolve battle
        v2 households' heads from (their ``__head_id``: the head's normalised ID number);
        ``no_heads``: such households without members staged (every head unknown);
        ``transform``: applied to the kept rows before they are written (a workbook's heads).

        Two passes, both bounded: DuckDB picks each key's winning row (a hash aggregate under
        ``REDUCE_MEMORY``, spilling beyond it), then polars streams the parts once more,
        keeping the winners and the rows without a key, into the frame. The parts are in sync
        order (written page group by page group), so the frame is too, with no sort. An entity
        whose rows are one part of at most ``SMALL_REDUCE_ROWS`` (a day's incremental) is
        reduced in memory by the same rule (``newest_per_key``) instead."""
        target = self.frame_path(entity)
        schema = frame_schema(entity)
        if not self._count[entity]:
            pl.DataFrame(schema=schema).write_parquet(target, compression="lz4")
            return 0
        files = sorted((self.parts / entity).glob("*.parquet"))
        keys = KEYS[entity]
        keyed = pl.all_horizontal(pl.col(k).is_not_null() for k in keys)
        if heads is None and len(files) == 1 and self._heights[files[0]] <= SMALL_REDUCE_ROWS:
            rows = _reduced_in_memory(pl.read_parquet(files[0]), keys, keyed)
        else:
            winners = self._winners(files, keys).sort()
            # part by part, each with the winners of its own __order range: one is_in of every
            # winner over the whole scan cost ~50 MB more at 商州's scale 10 (profiles/landing.md)
            rows = pl.concat([self._kept(part, winners, keyed) for part in files])
        if heads is not None:
            rows = _with_heads(rows, self._heads(files, heads))
        elif no_heads:
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("head_person_no"))
        if transform is not None:
            rows = transform(rows)
        rows.select(pl.col(c).cast(t) for c, t in schema.items()).sink_parquet(
            target, compression="lz4", row_group_size=ROW_GROUP
        )
        return pl.scan_parquet(target).select(pl.len()).collect().item()

    def _kept(self, part: Path, winners: pl.Series, keyed: pl.Expr) -> pl.LazyFrame:
        """The rows of ``part`` to keep: without a key, or a key's winner (``winners`` sorted)."""
        first, last = self._orders[part]
        start = winners.search_sorted(first, "left")
        mine = winners.slice(start, winners.search_sorted(last, "right") - start)
        return pl.scan_parquet(part).filter(~keyed | pl.col(ORDER).is_in(mine.implode()))

    def _winners(self, files: list[Path], keys: tuple[str, ...]) -> pl.Series:
        """``__order`` of each key's winning row: the newest source_updated_at (null counts
        oldest), then the latest in the sync (as ``parsing.finish``)."""
        listed = ", ".join(literal(f.as_posix()) for f in files)
        sql = f"""
            SELECT max({NEWEST}).o AS o FROM read_parquet([{listed}])
            WHERE {" AND ".join(f"{q(k)} IS NOT NULL" for k in keys)}
            GROUP BY {", ".join(q(k) for k in keys)}"""
        # through a file, not .pl(): no pyarrow import (0.3 s) for one integer column
        path = self.parts / "winners.parquet"
        self._connection().execute(f"COPY ({sql}) TO {literal(path.as_posix())} (FORMAT parquet)")
        return pl.read_parquet(path)["o"]

    def _heads(self, households: list[Path], persons: Path) -> Path:
        """Battle v2 heads, out of core: per household and head ID number (``__head_id``) the
        member with that normalised number, where exactly one member has it. Only the
        households' own (household, head ID) pairs are looked up, so the result has at most a
        row per household (a polars group-by of every member was the step's peak)."""
        listed = ", ".join(literal(f.as_posix()) for f in households)
        sql = f"""
            SELECT p.household_no, p.id_number AS __head_id, min(p.person_no) AS __head
            FROM read_parquet({literal(persons.as_posix())}) p
            SEMI JOIN (SELECT DISTINCT household_no, __head_id FROM read_parquet([{listed}])) h
              ON p.household_no = h.household_no AND p.id_number = h.__head_id
            WHERE p.id_number IS NOT NULL
            GROUP BY p.household_no, p.id_number
            HAVING count(*) = 1"""
        path = self.parts / "heads.parquet"
        self._connection().execute(f"COPY ({sql}) TO {literal(path.as_posix())} (FORMAT parquet)")
        return path

    def frame(self, entity: str) -> pl.LazyFrame:
        """A finished frame, scanned (not read into memory)."""
        return pl.scan_parquet(self.frame_path(entity))

    def result(self, entities) -> tuple[dict[str, pl.DataFrame], dict[str, Path]]:
        """``(frames, files)`` for ``Staged``: the finished frames as files to keep, or, for
        temporary parts (a normaliser called without a directory: tests), read into memory."""
        if not self.temporary:
            return {}, {e: self.frame_path(e) for e in entities}
        return {e: pl.read_parquet(self.frame_path(e)) for e in entities}, {}

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        shutil.rmtree(self.parts, ignore_errors=True)


def newest_per_key(keyed_rows: pl.DataFrame, keys: tuple[str, ...]) -> pl.DataFrame:
    """Each key's winning row among rows that all have a key: the newest ``source_updated_at``
    (null is oldest), ties to the later row in the sync (``ORDER``). The sync's one rule for
    versions of a record; ``NEWEST`` is its SQL form for the out-of-core pass."""
    return keyed_rows.sort(["source_updated_at", ORDER], nulls_last=False).unique(
        subset=list(keys), keep="last", maintain_order=True
    )


def _reduced_in_memory(part: pl.DataFrame, keys: tuple[str, ...], keyed: pl.Expr) -> pl.LazyFrame:
    """The rows of one small part to keep, as :meth:`StagedParts.finish`'s two passes keep them:
    the rows without a key and each key's winner (``newest_per_key``), in the part's (sync)
    order."""
    candidates = part.filter(keyed).select(*keys, "source_updated_at", ORDER)
    winners = newest_per_key(candidates, keys)[ORDER]
    return part.lazy().filter(~keyed | pl.col(ORDER).is_in(winners.implode()))


def _with_heads(rows: pl.LazyFrame, heads: Path) -> pl.LazyFrame:
    """Battle v2 households name their head by ID number: the member of the household with
    that (normalised) number, when exactly one has it (``StagedParts._heads``); else null."""
    return rows.join(
        pl.scan_parquet(heads), on=["household_no", "__head_id"], how="left", maintain_order="left"
    ).with_columns(pl.col("__head").alias("head_person_no"))


@contextmanager
def open_parts(directory: Path | None) -> Iterator[StagedParts]:
    """Parts under ``directory`` (kept: the staged frames are its ``frame.*.parquet``), or
    under a temporary directory removed on exit (the caller reads the frames back first)."""
    if directory is not None:
        parts = StagedParts(directory)
        try:
            yield parts
        finally:
            parts.close()
        return
    with tempfile.TemporaryDirectory(prefix="hub-staging-") as tmp:
        parts = StagedParts(Path(tmp), temporary=True)
        try:
            yield parts
        finally:
            parts.close()


class PageGroups:
    """Raw page frames per entity, normalised and written as a part once a group holds
    ``group_rows()`` records: ``build(entity, frames) -> canonical frame with __order``."""

    def __init__(
        self, parts: StagedParts, build: Callable[[str, list[pl.DataFrame]], pl.DataFrame]
    ) -> None:
        self.parts = parts
        self.build = build
        self._pending: dict[str, list[pl.DataFrame]] = defaultdict(list)
        self._rows: dict[str, int] = defaultdict(int)
        self.limit = group_rows()

    def add(self, entity: str, df: pl.DataFrame) -> None:
        self._pending[entity].append(df)
        self._rows[entity] += df.height
        if self._rows[entity] >= self.limit:
            self._flush(entity)

    def _flush(self, entity: str) -> None:
        frames, self._pending[entity], self._rows[entity] = self._pending[entity], [], 0
        if any(f.height for f in frames):
            self.parts.write(entity, self.build(entity, frames))

    def pending(self, entity: str) -> int:
        """Records of ``entity`` added and not yet written."""
        return self._rows[entity]

    def flush(self, entity: str | None = None) -> None:
        """Write what is pending, of ``entity`` or of every entity."""
        for name in [entity] if entity is not None else list(self._pending):
            self._flush(name)
