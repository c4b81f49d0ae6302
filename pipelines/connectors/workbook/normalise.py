"""Workbook drop (``shared/platforms/workbook.md``): 柞水's .xlsx and 丹凤's GB18030 .csv
register exports → canonical household, person and (derived) region frames.

Each file is a full snapshot, one row per person with the household's columns repeated on every
row. Several files in one sync: the newest (by upload time) is the snapshot; older ones are
superseded and not parsed.

The file is read in row chunks (``files``) and each chunk is built and staged like a page group
of the paginated counties (``pipelines.staging``): no step holds the whole register (issue 13).
What needs every row sees it so: a household is its first row in the file (the keys already
seen are carried from chunk to chunk), its head is found over all staged person rows, regions
are collected per chunk (a few hundred villages) and kept in their order of first appearance.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import partial
from zoneinfo import ZoneInfo

import polars as pl

from pipelines import staging
from pipelines.connectors.pages import ORDER, RAW_REF, concat, with_refs
from pipelines.connectors.parsing import (
    EMPTY_ERRORS,
    Fields,
    birth_date_from_id,
    build,
    layout_columns,
    normalise_ids,
    sex_from_id,
    staged_rows,
    statistical_unit,
    text_of,
)
from pipelines.connectors.workbook.files import ID_AS_NUMBER, ID_SHOWN, Chunk, open_register
from pipelines.connectors.workbook.layout import CANONICAL as LAYOUT
from pipelines.connectors.workbook.layout import COLUMNS
from pipelines.staged import Staged
from schemas.columns import conform
from seeds import codes

BEIJING = ZoneInfo("Asia/Shanghai")

# A total row (合计/总计) is not a person; it sits in one of the leading columns.
_TOTAL_MARK = r"^\s*(合计|总计)"


def _register_rows(chunk: Chunk, page_id: str, order: int) -> pl.DataFrame:
    """A chunk of a register file → its data rows (text), with ``raw_ref`` per data row
    (0-based, counted from the row below the header, before total and empty rows are dropped)."""
    data = with_refs(chunk.rows, page_id, order, first=chunk.first)
    cells = [pl.col(c).str.strip_chars() for c in COLUMNS]
    empty = pl.all_horizontal(c.is_null() | (c == "") for c in cells)
    total = pl.any_horizontal(
        pl.col(c).str.contains(_TOTAL_MARK).fill_null(False) for c in COLUMNS[:6]
    )
    return data.filter(~empty & ~total)


# --------------------------------------------------------------------------- canonical frames


_COLUMNS = {e: layout_columns(e, layout, codes.from_labels) for e, layout in LAYOUT.items()}


def _person(f: Fields) -> dict[str, pl.Expr]:
    """A person row's columns. An ID typed into a number cell has lost its digits: no ID
    rather than a wrong one, and the row's first parse error says so."""
    as_number = pl.col(ID_AS_NUMBER)
    f.error("id_number_as_number", "id_number", as_number, pl.col(ID_SHOWN))
    columns = _COLUMNS["person"](f)
    return {**columns, "id_number": pl.when(~as_number).then(columns["id_number"])}


def _heads(persons: pl.LazyFrame) -> pl.DataFrame:
    """household_no → the member with relation 户主, when there is exactly one (over every
    person row of the file, before one row per person is kept)."""
    return (
        persons.filter(pl.col("relation_to_head") == "head")
        .group_by("household_no")
        .agg(pl.col("person_no").first().alias("__head"), pl.len().alias("__n"))
        .filter(pl.col("__n") == 1)
        .drop("__n")
        .collect()
    )


def _with_heads(heads: pl.DataFrame, households: pl.LazyFrame) -> pl.LazyFrame:
    return households.join(
        heads.lazy(), on="household_no", how="left", maintain_order="left"
    ).with_columns(pl.col("__head").alias("head_person_no"))


def _own(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its text copied out of the chunk it was selected from: polars' strings are
    views into their chunk's buffers, so a few kept values would keep every chunk alive."""
    text = [c for c, t in df.schema.items() if t == pl.String]
    return df.with_columns(pl.concat_str(pl.col(c), pl.lit("")).alias(c) for c in text)


class _Regions:
    """Towns and villages named in the file, so households reference known villages. Codes
    come from well-formed 户编号 only: a malformed one is the household's defect, not a region.
    Every town first, then every village, each where it first appears in the file."""

    def __init__(self) -> None:
        self.towns: list[pl.DataFrame] = []
        self.villages: list[pl.DataFrame] = []

    def add(self, rows: pl.DataFrame) -> None:
        hh = text_of(pl.col("户编号"))
        good = rows.filter(hh.str.contains(r"^\d{16}$").fill_null(False))

        def level(name: str, digits: int, name_column: str, parent_digits: int) -> pl.DataFrame:
            return good.select(
                hh.str.slice(0, digits).alias("code"),
                pl.lit(name).alias("level"),
                text_of(pl.col(name_column)).alias("name"),
                hh.str.slice(0, parent_digits).alias("parent_code"),
                pl.col(RAW_REF),
                pl.col(ORDER),
            ).unique("code", keep="first", maintain_order=True)

        self.towns.append(_own(level("town", 9, "乡(镇)", 6)))
        self.villages.append(_own(level("village", 12, "行政村", 9)))

    def frame(self) -> pl.DataFrame:
        regions = (
            pl.concat([*self.towns, *self.villages])
            .unique("code", keep="first", maintain_order=True)
            .with_columns(
                pl.lit(None, dtype=pl.Boolean).alias("is_poor_village"),
                pl.lit(None, dtype=pl.Int32).alias("poor_village_exit_year"),
                statistical_unit(pl.col("code")).alias("is_statistical_unit"),
                pl.col("code").alias("source_key"),
                pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("source_updated_at"),
                EMPTY_ERRORS.alias("parse_errors"),
            )
        )
        return conform("region", regions)


class _FirstRows:
    """The first row of each household (by 户编号 as written) across the chunks of a file."""

    def __init__(self) -> None:
        self.seen = pl.Series("户编号", [], dtype=pl.String)

    def new(self, rows: pl.DataFrame) -> pl.DataFrame:
        first = (
            rows.filter(text_of(pl.col("户编号")).is_not_null())
            .unique("户编号", keep="first", maintain_order=True)
            .filter(~pl.col("户编号").is_in(self.seen.implode()))
        )
        self.seen = self.seen.append(_own(first.select("户编号")).to_series())
        return first


def _built(stamp: pl.Expr, entity: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """A page group of register rows (persons) or of households' first rows → a staging part.
    Every row carries the export time: the register's state at that moment (Contract 1)."""
    rows = concat(frames)
    if entity == "person":
        built = normalise_ids(build(rows, _person, excel_serials=True)).with_columns(
            birth_date_from_id().alias("birth_date"), sex_from_id().alias("sex")
        )
    else:
        built = build(rows, _COLUMNS["household"], excel_serials=True)
    return staged_rows(entity, built.with_columns(stamp))


def _uploaded(page) -> tuple:
    """Sort key of a file page: upload time, then export date, then landing order."""
    meta = page.meta or {}
    try:
        uploaded = datetime.fromisoformat(str(meta.get("uploadedAt"))).timestamp()
    except ValueError:
        uploaded = float("-inf")
    return (uploaded, str(meta.get("exportDate") or ""), page.seq if hasattr(page, "seq") else 0)


def _exported_at(page, exported: str | None) -> datetime | None:
    """When the register was exported, as a UTC instant: the file's own "导出时间" (Beijing
    time), unless the file service index's ``exportDate`` names another day (the index is what
    the county declared), then that date; else the date in the file name. A date alone stands
    for 00:00 Beijing time of that day."""
    declared = str((page.meta or {}).get("exportDate") or "")[:10]
    candidates = [exported if exported and (not declared or exported[:10] == declared) else None]
    candidates.append(declared)
    if m := re.search(r"_(\d{8})(?:_\d+)?\.\w+$", str((page.meta or {}).get("name") or "")):
        candidates.append(f"{m.group(1)[:4]}-{m.group(1)[4:6]}-{m.group(1)[6:]}")
    for value in candidates:
        try:
            local = datetime.fromisoformat(str(value).strip().replace("T", " "))
        except ValueError:
            continue
        return local.replace(tzinfo=BEIJING).astimezone(UTC)
    return None


def _as_of(exported_at: datetime | None) -> date | None:
    """The export date in Beijing time: the reference date for ages (Contract 3)."""
    return exported_at.astimezone(BEIJING).date() if exported_at is not None else None


def normalise(
    county, manifest, previous_watermarks: dict[str, str] | None = None, workdir=None
) -> Staged:
    """The newest register file of the sync → household, person and region frames, chunk by
    chunk: household and person frames are written under ``workdir`` (the staged directory);
    without it they are read back into ``Staged.frames``."""
    previous = dict(previous_watermarks or {})
    files = [(order, p) for order, p in enumerate(manifest.pages) if p.entity == "file"]
    if not files:  # nothing new was uploaded
        return Staged(watermarks=previous)
    order, page = max(files, key=lambda item: _uploaded(item[1]))
    name = page.meta.get("name") or page.url
    register = open_register(county, name, page.verified_path())
    exported_at = _exported_at(page, register.exported)
    stamp = pl.lit(exported_at, dtype=pl.Datetime("us", "UTC")).alias("source_updated_at")

    regions, households = _Regions(), _FirstRows()
    counts = {"household": 0, "person": 0}
    with staging.open_parts(workdir) as parts:
        groups = staging.PageGroups(parts, partial(_built, stamp))
        for chunk in register.chunks:
            rows = _register_rows(chunk, page.page_id, order)
            first = households.new(rows)
            groups.add("person", rows)
            groups.add("household", first)
            if not groups.pending("person"):  # households hold views into the same chunks
                groups.flush("household")
            regions.add(rows)
            counts["person"] += rows.height
            counts["household"] += first.height
        groups.flush()
        heads = _heads(parts.scan("person"))
        parts.finish("person")
        parts.finish("household", transform=partial(_with_heads, heads))
        frames, written = parts.result(("household", "person"))
    return Staged(
        frames={"region": regions.frame().with_columns(stamp), **frames},
        files=written,
        deletions={},
        full_listing={"household", "person"},
        source_counts=counts,
        watermarks={**previous, "file": str(name)},
        as_of=_as_of(exported_at),
    )
