"""Workbook drop (``shared/platforms/workbook.md``): 柞水's .xlsx and 丹凤's GB18030 .csv
register exports → canonical household, person and (derived) region frames.

Each file is a full snapshot, one row per person with the household's columns repeated on every
row. Several files in one sync: the newest (by upload time) is the snapshot; older ones are
superseded and not parsed.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import fastexcel
import polars as pl

from pipelines.connectors.pages import (
    ORDER,
    RAW_REF,
    source_error,
    with_refs,
)
from pipelines.connectors.parsing import (
    EMPTY_ERRORS,
    Fields,
    birth_date_from_id,
    build,
    finish,
    layout_columns,
    normalise_ids,
    sex_from_id,
    statistical_unit,
    text_of,
)
from pipelines.connectors.workbook.layout import CANONICAL as LAYOUT
from pipelines.connectors.workbook.layout import (
    COLUMNS,
    HEADER_MARK,
    HEADER_SEARCH_ROWS,
    ID_COL,
    SHEET,
)
from pipelines.http import looks_like_html
from pipelines.staged import Staged
from schemas.columns import conform
from seeds import codes

BEIJING = ZoneInfo("Asia/Shanghai")

ID_AS_NUMBER = "__id_as_number"  # the cell held a number: digits lost
ID_SHOWN = "__id_shown"  # how a spreadsheet shows that number ("6.11026E+17")
# A total row (合计/总计) is not a person; it sits in one of the leading columns.
_TOTAL_MARK = r"^\s*(合计|总计)"
# CSV has no cell types: an ID that went through a spreadsheet as a number is written the way
# the spreadsheet showed it, in scientific notation (and without the exporter's apostrophe).
_SCIENTIFIC = r"^[+-]?\d+(\.\d+)?[Ee][+-]?\d+$"


# --------------------------------------------------------------------------- file reading


def _excel_shown(number_text: pl.Expr) -> pl.Expr:
    """A number as a spreadsheet's General format shows it in a standard-width cell: up to
    11 characters, so 18-digit IDs become 6 significant digits in scientific notation."""
    v = number_text.cast(pl.Float64, strict=False)
    exp = v.abs().log10().floor().cast(pl.Int64)
    six = (v.abs() / pl.lit(10.0).pow(exp - 5)).round(0).cast(pl.Int64)
    exp = pl.when(six >= 1_000_000).then(exp + 1).otherwise(exp)
    six = pl.when(six >= 1_000_000).then(six // 10).otherwise(six)
    digits = six.cast(pl.String)
    frac = digits.str.slice(1).str.strip_chars_end("0")
    mantissa = digits.str.slice(0, 1) + pl.when(frac != "").then("." + frac).otherwise(pl.lit(""))
    sign = pl.when(v < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    scientific = sign + mantissa + "E+" + exp.cast(pl.String).str.zfill(2)
    return pl.when(v.abs() < 1e11).then(number_text).otherwise(scientific)


def _header_index(rows: pl.DataFrame) -> int | None:
    marks = rows.select(
        pl.any_horizontal(pl.col(c).str.strip_chars() == HEADER_MARK for c in rows.columns)
    ).to_series()
    hits = marks.arg_true()
    return int(hits[0]) if hits.len() else None


def _read_xlsx(county, name: str, body: bytes) -> tuple[pl.DataFrame, str | None]:
    """The register sheet as text columns plus ``__id_as_number``; and the title's export time.

    Every cell is read as text once; the ID column is read a second time as booleans, which
    the reader can only produce from number (or boolean) cells: that is how a number-typed ID
    cell is told from a text one, whatever its digits look like."""
    try:
        reader = fastexcel.read_excel(body)
        sheets = reader.sheet_names
    except Exception as exc:  # calamine/zip errors: truncated, or not a workbook at all
        raise source_error(
            county, name, "not a readable .xlsx workbook (truncated upload or another file type)"
        ) from exc
    if SHEET not in sheets:
        raise source_error(county, name, f"no sheet {SHEET!r} (the workbook has {sheets})")
    try:
        grid = reader.load_sheet(
            SHEET, header_row=None, skip_rows=0, dtypes="string", whitespace_as_null=True
        ).to_polars()
    except Exception as exc:
        raise source_error(county, name, f"sheet {SHEET!r} cannot be read: {exc}") from exc
    header_at = _header_index(grid.head(HEADER_SEARCH_ROWS))
    if header_at is None:
        raise source_error(county, name, f"no header row containing {HEADER_MARK!r}")
    header = [str(v).strip() if v is not None else "" for v in grid.row(header_at)]
    exported = _export_time(grid.head(header_at))
    named = {old: new for old, new in zip(grid.columns, header, strict=True) if new}
    data = grid.slice(header_at + 1).select(list(named)).rename(named)
    missing = [c for c in COLUMNS if c not in data.columns]
    if missing:
        raise source_error(county, name, f"header lacks columns {missing}")
    id_at = header.index(ID_COL)
    typed = reader.load_sheet(
        SHEET, header_row=None, skip_rows=header_at + 1, use_columns=[id_at], dtypes="boolean"
    )
    is_number, _ = typed.to_arrow_with_errors()  # text cells are "errors" → null
    mask = pl.from_arrow(is_number).to_series().is_not_null()
    # Pad: the typed read stops at the last non-empty ID cell.
    mask = mask.extend_constant(False, max(0, data.height - mask.len())).head(data.height)
    data = data.with_columns(mask.alias(ID_AS_NUMBER)).with_columns(
        pl.when(pl.col(ID_AS_NUMBER)).then(_excel_shown(pl.col(ID_COL))).alias(ID_SHOWN)
    )
    return data, exported


_EXPORT_TIME = re.compile(r"导出时间[:：]\s*(\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?)")


def _export_time(title_rows: pl.DataFrame) -> str | None:
    """ "导出时间：2016-07-01 18:10:22" from the title rows, when present (date, or date and time)."""
    for row in title_rows.iter_rows():  # a couple of title rows, not records
        for cell in row:
            if cell and (m := _EXPORT_TIME.search(str(cell))):
                return m.group(1)
    return None


def _utf8_hint(body: bytes) -> str:
    try:
        return " (the file is UTF-8, not GB18030)" if HEADER_MARK in body.decode("utf-8") else ""
    except UnicodeDecodeError:
        return ""


def _read_csv(county, name: str, body: bytes) -> tuple[pl.DataFrame, str | None]:
    if body.startswith(b"\xef\xbb\xbf"):
        raise source_error(county, name, "the CSV is UTF-8 (with BOM), not GB18030")
    if body and not body.endswith(b"\n"):
        raise source_error(county, name, "the CSV ends mid-line (truncated upload)")
    try:
        text = body.decode("gb18030")
    except UnicodeDecodeError as exc:
        problem = f"not GB18030 text (byte {exc.start}){_utf8_hint(body)}"
        raise source_error(county, name, problem) from exc
    head = text.split("\n", HEADER_SEARCH_ROWS)[:HEADER_SEARCH_ROWS]
    header_at = next((i for i, line in enumerate(head) if HEADER_MARK in line), None)
    if header_at is None:
        problem = f"no header row containing {HEADER_MARK!r}{_utf8_hint(body)}"
        raise source_error(county, name, problem)
    exported = next(
        (m.group(1) for line in head[:header_at] if (m := _EXPORT_TIME.search(line))), None
    )
    try:
        data = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            skip_rows=header_at,
            infer_schema=False,
        )
    except Exception as exc:
        raise source_error(county, name, f"the CSV cannot be parsed: {exc}") from exc
    data = data.rename({c: c.strip() for c in data.columns})
    missing = [c for c in COLUMNS if c not in data.columns]
    if missing:
        raise source_error(county, name, f"header lacks columns {missing}")
    sent = pl.col(ID_COL).str.strip_chars()
    as_number = sent.str.contains(_SCIENTIFIC).fill_null(False)
    return data.with_columns(
        # The exporter's apostrophe keeps the ID text in a spreadsheet; it is not data.
        sent.str.strip_prefix("'").alias(ID_COL),
        as_number.alias(ID_AS_NUMBER),
        pl.when(as_number).then(sent).alias(ID_SHOWN),
    ), exported


def _records(county, page, order: int) -> tuple[pl.DataFrame, str | None]:
    """One register file → its data rows (text), with ``raw_ref`` per data row (0-based,
    counted from the row below the header, before total and empty rows are dropped)."""
    name = page.meta.get("name") or page.url
    body = page.body()
    is_xlsx = name.lower().endswith(".xlsx") or (
        not name.lower().endswith(".csv") and body[:2] == b"PK"
    )
    if looks_like_html(body):  # what a failed upload through a gateway leaves behind
        what = "not a readable .xlsx workbook" if is_xlsx else "not a CSV register"
        raise source_error(county, name, f"{what}: an HTML page (failed upload or gateway error)")
    if is_xlsx:
        data, exported = _read_xlsx(county, name, body)
    else:
        data, exported = _read_csv(county, name, body)
    data = with_refs(data, page.page_id, order)
    cells = [pl.col(c).str.strip_chars() for c in COLUMNS]
    empty = pl.all_horizontal(c.is_null() | (c == "") for c in cells)
    total = pl.any_horizontal(
        pl.col(c).str.contains(_TOTAL_MARK).fill_null(False) for c in COLUMNS[:6]
    )
    return data.filter(~empty & ~total), exported


# --------------------------------------------------------------------------- canonical frames


_COLUMNS = {e: layout_columns(e, layout, codes.from_labels) for e, layout in LAYOUT.items()}


def _person(f: Fields) -> dict[str, pl.Expr]:
    """A person row's columns. An ID typed into a number cell has lost its digits: no ID
    rather than a wrong one, and the row's first parse error says so."""
    as_number = pl.col(ID_AS_NUMBER)
    f.error("id_number_as_number", "id_number", as_number, pl.col(ID_SHOWN))
    columns = _COLUMNS["person"](f)
    return {**columns, "id_number": pl.when(~as_number).then(columns["id_number"])}


def _heads(persons: pl.DataFrame) -> pl.DataFrame:
    """household_no → the member with relation 户主, when there is exactly one."""
    return (
        persons.filter(pl.col("relation_to_head") == "head")
        .group_by("household_no")
        .agg(pl.col("person_no").first().alias("__head"), pl.len().alias("__n"))
        .filter(pl.col("__n") == 1)
        .drop("__n")
    )


def _regions(rows: pl.DataFrame) -> pl.DataFrame:
    """Towns and villages named in the file, so households reference known villages. Codes
    come from well-formed 户编号 only: a malformed one is the household's defect, not a region."""
    hh = text_of(pl.col("户编号"))
    good = rows.filter(hh.str.contains(r"^\d{16}$").fill_null(False))

    def level(name: str, code_digits: int, name_column: str, parent_digits: int) -> pl.DataFrame:
        return good.select(
            hh.str.slice(0, code_digits).alias("code"),
            pl.lit(name).alias("level"),
            text_of(pl.col(name_column)).alias("name"),
            hh.str.slice(0, parent_digits).alias("parent_code"),
            pl.col(RAW_REF),
            pl.col(ORDER),
        )

    towns, villages = level("town", 9, "乡(镇)", 6), level("village", 12, "行政村", 9)
    regions = (
        pl.concat([towns, villages])
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


def normalise(county, manifest, previous_watermarks: dict[str, str] | None = None) -> Staged:
    """The newest register file of the sync → household, person and region frames."""
    previous = dict(previous_watermarks or {})
    files = [(order, p) for order, p in enumerate(manifest.pages) if p.entity == "file"]
    if not files:  # nothing new was uploaded
        return Staged(watermarks=previous)
    order, page = max(files, key=lambda item: _uploaded(item[1]))
    name = page.meta.get("name") or page.url
    rows, exported = _records(county, page, order)

    people = build(rows, _person, excel_serials=True)
    people = normalise_ids(people).with_columns(
        birth_date_from_id().alias("birth_date"), sex_from_id().alias("sex")
    )
    first_rows = rows.filter(text_of(pl.col("户编号")).is_not_null()).unique(
        "户编号", keep="first", maintain_order=True
    )
    households = build(first_rows, _COLUMNS["household"], excel_serials=True)
    households = (
        households.join(_heads(people), on="household_no", how="left")
        .with_columns(pl.col("__head").alias("head_person_no"))
        .drop("__head")
    )
    # Every row carries the export time: the register's state at that moment (Contract 1).
    exported_at = _exported_at(page, exported)
    stamp = pl.lit(exported_at, dtype=pl.Datetime("us", "UTC")).alias("source_updated_at")
    frames = {
        "region": _regions(rows).with_columns(stamp),
        "household": finish("household", households).with_columns(stamp),
        "person": finish("person", people).with_columns(stamp),
    }
    return Staged(
        frames=frames,
        deletions={},
        full_listing={"household", "person"},
        source_counts={"household": first_rows.height, "person": rows.height},
        watermarks={**previous, "file": str(name)},
        as_of=_as_of(exported_at),
    )
