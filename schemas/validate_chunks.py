"""How validation reads a county's staged rows with bounded memory (issue 13).

Three ways, each bounded by a size that does not grow with the county:

- **Per-row checks** (pandera model, parse errors, text sanity, times in the future) read the
  rows ``CHUNK_ROWS`` at a time, every column, skipping the rows the merge's hash diff found
  unchanged (``row_failures``); a chunk of unchanged rows only is never read.
- **Cross-record rules and findings** of the household-keyed entities (household and its
  members, measures, loans, aid relations) run per **partition of households**
  (``partition_of``: ``hash(household_no) % parts``, about ``PARTITION_HOUSEHOLDS``
  households each), over EVERY staged row of those households (unchanged ones included),
  reading only ``CROSS_COLUMNS``. Each household-keyed file is read once and split into its
  partitions' temporary files (``household_partitions``), ``SPLIT_ROWS`` rows at a time; a
  partition then reads only its own files. Every rule that looks across records looks within
  one household (head count, member facts, parent rejected, orphans of the partition's own
  households, findings), so a partition sees every record its rules need. The registers not
  keyed by household (regions, cadres, projects: hundreds to a few thousand rows) are read
  whole; what crosses partitions is keys only (known villages and cadres, the cadres' ID
  numbers found among accepted persons).
- **ID-number conflicts** look across households: the ID numbers are hashed over the whole
  person set (one 64-bit column), and only the rows whose hash repeats are read
  (``conflict_candidates``).

Frames given in memory (``pl.DataFrame``, the unit tests) are one partition, every column.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import polars as pl

from schemas.columns import STAGING
from schemas.failures import _column_failures, _empty_failures, _with_row
from schemas.sanity import sanity_failures
from schemas.validation_context import CONFLICT_SCHEMA

#: Rows per chunk of the per-row checks (pandera models, parse errors, sanity): the models run
#: on at most this many rows at once, so their copies and failure frames stay bounded. A model
#: run costs ~25 CPU-ms whatever its rows (pandera's Python and ~60 planned queries for
#: persons): 50,000 rather than 20,000 took 3-6 of 62 CPU-s off 洛南's first full merge at
#: scale 10 (+24 MB for the checks alone, below the step's peak, which stayed at 417-420 MB:
#: bench/profiles/merge.md, "A first full merge's CPU, cut").
CHUNK_ROWS = 50_000


#: The polars engine of the per-row checks' queries (``_checked``). pandera's polars backend
#: collects every check, its pass/fail and its failure cases as a query of its own (~60 per
#: chunk of persons), and so do the sanity rules, with polars' default engine: "auto", which in
#: polars 2.1 runs the streaming engine, ~0.09 CPU-ms per small query against ~0.025 in
#: memory. The chunk is in memory already (nothing here reads a file); the same results, ~20 %
#: less CPU in the models (bench/profiles/merge.md, "A first full merge's CPU, cut").
CHECKS_ENGINE = "in-memory"


def chunk_size() -> int:
    """Rows per chunk of the per-row checks: ``HUB_VALIDATION_CHUNK_ROWS`` or ``CHUNK_ROWS``."""
    return max(1, int(os.environ.get("HUB_VALIDATION_CHUNK_ROWS", "") or CHUNK_ROWS))


#: The columns the cross-record rules and the findings read (besides ``STAGING``). A lazily
#: given frame is read with only these over the full staged set; None: every column (regions
#: are a few hundred rows).
CROSS_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "region": None,
    "household": (
        "household_no",
        "town_code",
        "village_code",
        "poverty_attribute",
        "poverty_status",
        "main_cause",
        "other_causes",
        "exit_year",
        "income_per_capita",
        "member_count",
        "housing_safe",
        "water_safe",
    ),
    "person": (
        "person_no",
        "household_no",
        "id_number",
        "sex",
        "birth_date",
        "relation_to_head",
        "school_status",
        "health",
        "labor_skill",
    ),
    "measure": ("measure_id", "household_no"),
    "loan": ("loan_id", "household_no"),
    "project": ("project_id", "village_code"),
    "cadre": ("cadre_id", "id_number"),
    "household_cadre": ("household_no", "cadre_id"),
}


def cross_frame(entity: str, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """What the cross-record rules read of an entity: a frame given in memory as it is, a lazy
    one with only ``CROSS_COLUMNS`` (and the staging columns) over every staged row."""
    if isinstance(frame, pl.DataFrame):
        return frame
    columns = CROSS_COLUMNS.get(entity)
    if columns is None:
        return frame.collect()
    return frame.select(*columns, *STAGING).collect()


def row_failures(
    entity: str,
    frame: pl.DataFrame | pl.LazyFrame,
    unchanged: pl.Series | None,
    now: datetime | None,
    chunk_rows: int,
) -> pl.DataFrame:
    """The per-row checks (model, parse errors, sanity) of every row not ``unchanged``, read
    ``chunk_rows`` at a time; failures keyed by the row's position in the whole frame."""
    lazy = frame.lazy()
    height = (
        frame.height if isinstance(frame, pl.DataFrame) else lazy.select(pl.len()).collect()[0, 0]
    )
    skipped = (
        unchanged.cast(pl.UInt32).unique().sort()
        if unchanged is not None
        else pl.Series("_row", [], pl.UInt32)
    )
    parts = [_empty_failures()]
    # the rows to check of several chunks are checked together, up to ``chunk_rows`` of them:
    # each check has a fixed cost, and a full re-read that is nearly all unchanged (商州 v2)
    # leaves a few rows to check in every chunk (bench/profiles/merge.md, "Incremental merge")
    held: list[tuple[pl.DataFrame, pl.Series]] = []
    for start in range(0, height, chunk_rows):
        end = min(start + chunk_rows, height)
        rows = pl.Series("_row", range(start, end), pl.UInt32)
        skip_here = skipped.filter((skipped >= start) & (skipped < end))
        if skip_here.len() == end - start:
            continue  # every row here is unchanged: the chunk is not even read
        chunk = lazy.slice(start, end - start).collect(engine="streaming")
        if skip_here.len():
            keep = ~rows.is_in(skip_here.implode())
            # compacted: the rows kept of a filtered chunk held the whole chunk's strings, and
            # a re-read holds the few rows to check of many chunks (+124 MB at 洛南 scale 10)
            chunk, rows = compact(chunk.filter(keep)), rows.filter(keep)
        if held and sum(c.height for c, _ in held) + chunk.height > chunk_rows:
            parts.append(compact(_checked(entity, held, now)))
            held = []
        held.append((chunk, rows))
    if held:
        parts.append(compact(_checked(entity, held, now)))
    return pl.concat(parts)


def _checked(
    entity: str, held: list[tuple[pl.DataFrame, pl.Series]], now: datetime | None
) -> pl.DataFrame:
    """The per-row failures of the ``held`` rows (frames read by ``row_failures`` with their
    positions), checked at once; failures keyed by the positions."""
    chunk = pl.concat([c for c, _ in held]) if len(held) > 1 else held[0][0]
    rows = pl.concat([r for _, r in held]) if len(held) > 1 else held[0][1]
    with pl.Config(engine_affinity=CHECKS_ENGINE):
        local = pl.concat(
            [_column_failures(entity, chunk), sanity_failures(entity, _with_row(chunk), now)]
        )
    return local.with_columns(rows.gather(local["_row"]).alias("_row"))


#: Households per partition of the cross-record rules (``HUB_VALIDATION_PARTITION_HOUSEHOLDS``
#: overrides it: the memory test makes it small to see partitions at a small scale).
PARTITION_HOUSEHOLDS = 10_000
#: Entities validated per partition of households: each row names its household.
HOUSEHOLD_KEYED = ("household", "person", "measure", "loan", "household_cadre")


def partitions(frames: dict, households: int | None = None) -> int:
    """How many partitions of households the cross-record rules run in: one for frames in
    memory, else enough for about ``PARTITION_HOUSEHOLDS`` households each."""
    if all(isinstance(f, pl.DataFrame) for f in frames.values()) or "household" not in frames:
        return 1
    per = households or int(
        os.environ.get("HUB_VALIDATION_PARTITION_HOUSEHOLDS", "") or PARTITION_HOUSEHOLDS
    )
    height = frames["household"].lazy().select(pl.len()).collect()[0, 0]
    return max(1, math.ceil(height / max(1, per)))


def partition_of(parts: int) -> pl.Expr:
    """The partition (of ``parts``) a row's household falls in: every row naming one
    household_no (a household and its members, measures, loans, aid relations) falls in one."""
    return pl.col("household_no").hash(seed=7) % parts


def partition_frame(
    entity: str, frame: pl.DataFrame | pl.LazyFrame, part: int, parts: int
) -> pl.DataFrame:
    """The rows of ``entity`` whose household falls in partition ``part`` of ``parts``, with
    their position ``_row`` in the whole frame: every column of a frame in memory, only the
    cross-record columns of a lazy one."""
    if isinstance(frame, pl.DataFrame) and parts == 1:
        return _with_row(frame)
    lazy = frame.lazy().with_row_index("_row")
    if parts > 1:
        lazy = lazy.filter(partition_of(parts) == part)
    if isinstance(frame, pl.DataFrame):
        return lazy.collect()
    columns = CROSS_COLUMNS.get(entity)
    if columns:
        lazy = lazy.select("_row", *columns, *STAGING)
    # the streaming engine filters as it reads: only the partition's rows are ever held
    return lazy.collect(engine="streaming")


#: Rows of a household-keyed file read at once when it is split into its partitions
#: (``household_partitions``): only ``CROSS_COLUMNS``, in a bounded batch (the streaming read of
#: 200,000 rows at once put validation's peak at 468 MB at 洛南 scale 10, 50,000 at 374-379, with
#: main's partitions at 382-389).
SPLIT_ROWS = 50_000
#: Rows held (the partitions' pieces of several batches, ~35 MB of persons) before each
#: partition's pieces are written to a file of its own: a file costs ~1 CPU-ms to read back
#: whatever its rows; 1,240 files at 洛南 scale 10 with a file per batch, 372 with these.
SPLIT_HELD_ROWS = 200_000
#: The split files' compression: lz4 Parquet, as cheap to write and read as uncompressed
#: Parquet or Arrow IPC and ~3x smaller (89 MB in all at 洛南 scale 10; Arrow IPC 470 MB: a piece
#: of a batch wrote its batch's whole string buffers, polars' string views).
SPLIT_COMPRESSION = "lz4"


@contextmanager
def household_partitions(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame], parts: int, workdir: Path | None = None
) -> Iterator[Callable[[str, int], pl.DataFrame]]:
    """``read(entity, part)``: what ``partition_frame`` gives for partition ``part`` of
    ``parts`` (the same rows in the same order, the same columns), each lazily given frame
    read ONCE (``_split``) into temporary Parquet files per partition, in a folder of
    ``workdir`` (the merge's DuckDB temp directory; the system's temporary directory when
    None) removed afterwards; each partition's files are deleted once read. ``partition_frame``
    scanned every file once per partition with the hash filter: at 洛南 scale 10, 31 partitions,
    15.6 CPU-s of the merge's ~60 (bench/profiles/merge.md, "Validation's partitions in one
    pass"). Frames given in memory, and a single partition, are not split."""
    split = [e for e, f in frames.items() if isinstance(f, pl.LazyFrame)] if parts > 1 else []
    if not split:
        yield lambda entity, part: partition_frame(entity, frames[entity], part, parts)
        return
    made = workdir is not None and not workdir.exists()
    if made:  # DuckDB makes its temp directory when it first spills; none did yet
        workdir.mkdir(parents=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix="validation-", dir=workdir))  # owner-only
    try:
        files = {e: _split(e, frames[e], parts, folder) for e in split}

        def read(entity: str, part: int) -> pl.DataFrame:
            if entity not in files:
                return partition_frame(entity, frames[entity], part, parts)
            empty, paths = files[entity]
            pieces = [pl.read_parquet(path) for path in paths[part]]
            for path in paths[part]:  # each partition is read once: its disk space back now
                path.unlink()
            return pl.concat(pieces) if pieces else empty

        yield read
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if made:  # as DuckDB found it: no directory (it runs no statement meanwhile)
            with suppress(OSError):
                workdir.rmdir()


def _split(
    entity: str, frame: pl.LazyFrame, parts: int, folder: Path
) -> tuple[pl.DataFrame, list[list[Path]]]:
    """Split ``entity``'s rows (``CROSS_COLUMNS``, with their position ``_row``) into files per
    partition: read ``SPLIT_ROWS`` at a time, held per partition until ``SPLIT_HELD_ROWS`` are
    held, then one file per partition. Returns the frame's empty shape and each partition's
    files, in the rows' order."""
    columns = CROSS_COLUMNS.get(entity)
    lazy = frame.select(*columns, *STAGING) if columns else frame
    height = lazy.select(pl.len()).collect()[0, 0]
    files: list[list[Path]] = [[] for _ in range(parts)]
    held: dict[int, list[pl.DataFrame]] = {}

    def write(end: int) -> None:
        for part, pieces in held.items():
            path = folder / f"{entity}-{part}-{end}.parquet"
            piece = pl.concat(pieces) if len(pieces) > 1 else pieces[0]
            piece.write_parquet(path, compression=SPLIT_COMPRESSION, statistics=False)
            files[part].append(path)
        held.clear()

    start = 0
    for start in range(0, height, SPLIT_ROWS):
        batch = lazy.slice(start, SPLIT_ROWS).collect(engine="streaming")
        batch = batch.with_row_index("_row", offset=start).with_columns(
            partition_of(parts).alias("_part")
        )
        # a null household_no hashes too (as in partition_frame's filter): every row has a part
        for (part,), piece in batch.partition_by("_part", as_dict=True, include_key=False).items():
            held.setdefault(part, []).append(piece)
        if sum(p.height for pieces in held.values() for p in pieces) >= SPLIT_HELD_ROWS:
            write(start)
    write(start)
    empty = lazy.head(0).collect().with_row_index("_row")
    return empty, files


def partitioned_households(households: pl.DataFrame | None, parts: int) -> pl.DataFrame | None:
    """The warehouse's households of the county (``ValidationContext.existing_households``) with
    their partition ``_part``, computed once: a partition's children can only name a household
    of their own partition, so each partition's orphan check needs only those
    (``households_of``), not every household of the county (at 洛南 scale 10 the county's
    305k keys, made unique and hashed again per child entity and partition, were the unchanged
    re-read's peak: bench/profiles/merge.md, "The checkpoint after the transaction")."""
    if households is None or parts == 1:
        return households
    keys = households.select(pl.col("household_no").cast(pl.String))
    return keys.with_columns(partition_of(parts).alias("_part"))


def households_of(households: pl.DataFrame | None, part: int, parts: int) -> pl.DataFrame | None:
    """The households of ``partitioned_households`` in partition ``part``."""
    if households is None or parts == 1:
        return households
    return households.filter(pl.col("_part") == part).drop("_part")


def accepted_keys(entity: str, accepted: pl.DataFrame, lazy: bool) -> pl.DataFrame:
    """What a ``Validated`` keeps of the accepted rows: every column of a frame given in
    memory; of a lazily read one only their number, as a column of nulls (which holds no
    data): the merge reads the rows from the files by ``rejected_rows`` and counts them
    (``ops.sync_run``). Their keys were ~20 MB of the merge step at 商南 scale 10 (1.1M
    records), held through the merge (bench/profiles/merge.md, "商南 and 柞水 at scale 10")."""
    if not lazy:
        return accepted.drop("_row")
    return pl.DataFrame({"accepted": pl.repeat(None, accepted.height, dtype=pl.Null, eager=True)})


def conflict_candidates(persons: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The person rows whose ID number may repeat (their 64-bit hash repeats), read lazily:
    the only rows ``cross_rules._conflicts`` can pair."""
    if isinstance(persons, pl.DataFrame):
        return persons
    lazy = persons.lazy()
    hashes = lazy.select(
        pl.col("id_number").hash().alias("_h"), pl.col("id_number").is_not_null().alias("_n")
    ).collect(engine="streaming")
    # the hashes seen twice, by sorting one column: ``is_duplicated`` built a hash table of the
    # county's persons (+76 MB at 洛南 scale 10, 931k persons; sorted: +15 MB, same hashes)
    ordered = hashes["_h"].sort()
    twice = ordered.filter(ordered == ordered.shift(1)).unique().implode()
    repeated = hashes.filter(pl.col("_h").is_in(twice) & pl.col("_n"))["_h"].unique()
    columns = ["id_number", "person_no", "source_key", "parse_errors"]
    if repeated.is_empty():
        return lazy.select(columns).head(0).collect()
    # streaming: the filter is applied as the files are read, so only the candidates are held
    # (the in-memory engine read the four columns of every person first: the merge step's
    # peak at 洛南 scale 10, bench/profiles/merge.md "The largest merge steps at scale 10")
    candidates = lazy.filter(pl.col("id_number").hash().is_in(repeated.implode()))
    return candidates.select(columns).collect(engine="streaming")


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its string columns copied. A string column taken from a larger one
    (filter, join, slice) still holds the larger one's whole string buffers in polars (string
    views): the accepted keys (kept then) and the issues of each partition kept every string
    of their partition's frames alive until the merge ended, about 11 MB at 洛南 scale 1.0 and
    37 MB at scale 3.0 while DuckDB works (bench/profiles/merge.md, "Issue 13, fourth round")."""
    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(pl.col(strings) + "") if strings else frame


def empty_conflicts() -> pl.DataFrame:
    return pl.DataFrame(schema=CONFLICT_SCHEMA)
