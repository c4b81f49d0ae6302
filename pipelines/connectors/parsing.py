"""Parsing shared by the three normalisers: landed page bodies to polars frames, and the
polars expressions that turn source text into canonical values while recording what could not
be parsed (``parse_errors``).

Everything on the record path is a polars expression; Python only runs per page or per column.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import polars as pl

from base.errors import SourceError
from pipelines.http import UnusableJson, describe_json_error, parse_json_body
from schemas import id_number
from schemas.columns import KEYS, PARSE_ERROR, conform
from schemas.sanity import LATEST_REPRESENTABLE, future_limit
from seeds import codes

SHANGHAI = "Asia/Shanghai"
EXCEL_EPOCH = date(1899, 12, 30)
EARLIEST_TIME = datetime(
    1900, 1, 1, tzinfo=UTC
)  # a source update time before this is bad_date  # Excel's day 0 (it counts the non-existent 1900-02-29)
ORDER = "__order"  # global position of a row in the sync (page order, then row order)
RAW_REF = "raw_ref"
EMPTY_ERRORS = pl.lit([], dtype=pl.List(PARSE_ERROR))

# Values the platforms write for yes/no (battle and workbook: 是/否; bigdata: JSON booleans).
_TRUE = ("是", "true", "True", "TRUE", "1", "Y", "y", "有")
_FALSE = ("否", "false", "False", "FALSE", "0", "N", "n", "无")
_BOOLEANS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
# Units clerks type after numbers ("3520.5元", "6个月", "2014年"). 万元 is deliberately absent:
# dropping it would change the magnitude, so such a value is reported as bad_number.
_UNITS = r"(?:元|个月|月|年|户|人|岁)$"
_LIST_SEPARATORS = r"[，,、;；]"


class PageLike(Protocol):
    """What the normalisers use of ``pipelines.landing.LandedPage``."""

    page_id: str
    entity: str
    url: str
    meta: dict

    def body(self) -> bytes: ...


class CountyLike(Protocol):
    label: str
    code: str
    version: str


# --------------------------------------------------------------------------- errors


def source_error(county: CountyLike, where: str, problem: str) -> SourceError:
    """The error for a page or file this sync cannot use: names county, URL or file, problem."""
    return SourceError(county.label, where, problem)


# --------------------------------------------------------------------------- page bodies


def _describe(body: bytes) -> str:
    """Why polars could not read a landed body, in the words of ``pipelines.http``."""
    head = body.lstrip()[:200].lower()
    if not head:
        return "empty body"
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "an HTML page instead of JSON"
    try:
        parse_json_body(body)
    except UnusableJson as exc:
        return str(exc)
    except ValueError as exc:
        return describe_json_error(body, exc)
    return "a JSON body polars cannot read as one object"


def read_json_envelope(county: CountyLike, page: PageLike) -> pl.DataFrame:
    """The page body as a one-row frame (polars parses the JSON; records stay columnar)."""
    body = page.body()
    try:
        df = pl.read_json(io.BytesIO(body), infer_schema_length=None)
    except Exception as exc:  # polars raises ComputeError for anything unparseable
        raise source_error(county, page.url, _describe(body)) from exc
    if df.height != 1:
        raise source_error(county, page.url, "the body is not a single JSON object")
    return df


def field_of(df: pl.DataFrame, path: Iterable[str]) -> pl.Series | None:
    """A nested field of a one-row envelope (``data.items``), or None when absent."""
    expr: pl.Expr | None = None
    fields: dict[str, pl.DataType] = dict(df.schema)
    for name in path:
        if name not in fields:
            return None
        expr = pl.col(name) if expr is None else expr.struct.field(name)
        dtype = fields[name]
        fields = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
    assert expr is not None
    return df.select(expr).to_series()


def records(
    county: CountyLike, page: PageLike, rows: pl.Series | None, what: str, order: int
) -> pl.DataFrame:
    """Explode a page's list of records into a frame, tagged with ``raw_ref`` and sync order.

    ``order`` is the page's position in the sync; rows get ``order * 2**32 + row`` so a later
    page always sorts after an earlier one.
    """
    if rows is None:
        raise source_error(county, page.url, f"the body has no `{what}`")
    if not isinstance(rows.dtype, pl.List):
        raise source_error(county, page.url, f"`{what}` is not a list")
    inner = rows.dtype.inner
    if isinstance(inner, pl.Null) or rows.list.len().sum() == 0:
        return pl.DataFrame()
    if not isinstance(inner, pl.Struct):
        raise source_error(county, page.url, f"`{what}` does not hold JSON objects")
    df = rows.rename("__r").to_frame().explode("__r").unnest("__r")
    return with_refs(df, page.page_id, order)


def with_refs(df: pl.DataFrame, page_id: str, order: int) -> pl.DataFrame:
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    return df.with_columns(
        (pl.lit(f"{page_id}#") + row.cast(pl.String)).alias(RAW_REF),
        (pl.lit(order, dtype=pl.Int64) * (1 << 32) + row).alias(ORDER),
    )


def require_fields(
    county: CountyLike, page: PageLike, df: pl.DataFrame, fields: Iterable[str]
) -> None:
    """A documented field absent from every row of a page means the layout changed (a renamed
    field): fail loudly rather than load nulls."""
    if df.height == 0:
        return
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise source_error(county, page.url, f"records lack documented fields {missing}")


def concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack page frames whose inferred types differ (an all-null column, numbers as text)."""
    frames = [f for f in frames if f.width]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def query_has(url: str, meta: Mapping[str, Any], *names: str) -> bool:
    """Whether a request carried one of ``names`` (in its URL query or the landing meta)."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=False)
    return any(query.get(n) for n in names) or any(meta.get(n) not in (None, "") for n in names)


# --------------------------------------------------------------------------- value parsing


def text_of(expr: pl.Expr) -> pl.Expr:
    """Text as sent, trimmed; empty becomes null."""
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s != "").then(s)


def _number_from_text(s: pl.Expr) -> pl.Expr:
    """ "3,520.50", "3520.5元", " 12 ", "4.35%" (→ 0.0435)."""
    cleaned = s.str.replace_all(r"[,，\s]", "").str.replace(_UNITS, "")
    percent = cleaned.str.ends_with("%")
    value = cleaned.str.strip_suffix("%").cast(pl.Float64, strict=False)
    value = pl.when(percent).then((value / 100).round(10)).otherwise(value)
    return pl.when(value.is_finite()).then(value)


def _date_from_text(s: pl.Expr, excel_serials: bool) -> pl.Expr:
    """ "1980-01-01", "1980/1/1", "19800101", "1980年1月1日", "1980-01-01 00:00:00" and, for
    workbooks, Excel serial day numbers written as text ("29221")."""
    t = s.str.replace(r"[ T].*$", "").str.replace_all(r"[年月/.]", "-").str.replace(r"日$", "")
    t = (
        pl.when(t.str.contains(r"^\d{8}$"))
        .then(t.str.slice(0, 4) + "-" + t.str.slice(4, 2) + "-" + t.str.slice(6, 2))
        .otherwise(t)
    )
    parsed = t.str.to_date("%Y-%m-%d", strict=False)
    if excel_serials:
        serial = s.str.extract(r"^(\d{1,5}(?:\.\d+)?)$").cast(pl.Float64, strict=False)
        parsed = pl.coalesce(parsed, _date_from_serial(serial))
    return parsed


def _date_from_serial(serial: pl.Expr) -> pl.Expr:
    days = serial.floor().cast(pl.Int64, strict=False)
    ok = (days >= 1) & (days <= 2_958_465)  # 1900-01-01 .. 9999-12-31
    return pl.when(ok).then(pl.lit(EXCEL_EPOCH) + pl.duration(days=days))


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


class Fields:
    """Builds canonical columns from the source columns of one frame.

    Each parsing method returns the canonical value expression (aliased) and remembers an
    error expression for ``parse_errors``: a value that was present but could not be parsed
    becomes null and adds ``{rule, column, value-as-sent}``. A source field absent from the
    frame (optional in that layout) yields null.
    """

    def __init__(self, schema: Mapping[str, pl.DataType], *, excel_serials: bool = False):
        self.schema = dict(schema)
        self.excel_serials = excel_serials
        self._errors: list[pl.Expr] = []

    # -- plumbing
    def has(self, field: str) -> bool:
        return field in self.schema and not isinstance(self.schema[field], pl.Null)

    def raw(self, field: str) -> pl.Expr:
        return pl.col(field) if self.has(field) else pl.lit(None, dtype=pl.String)

    def error(self, rule: str, column: str, failed: pl.Expr, value: pl.Expr) -> None:
        """Record an error for the rows where ``failed`` holds (``value`` as text)."""
        entry = pl.struct(
            pl.lit(rule).alias("rule"),
            pl.lit(column).alias("column"),
            value.cast(pl.String).alias("value"),
        )
        self._errors.append(pl.when(failed).then(entry))

    def parse_errors(self) -> pl.Expr:
        if not self._errors:
            return EMPTY_ERRORS.alias("parse_errors")
        return pl.concat_list(self._errors).list.drop_nulls().alias("parse_errors")

    def _checked(self, field: str, column: str, rule: str, value: pl.Expr) -> pl.Expr:
        sent = text_of(self.raw(field))
        self.error(rule, column, sent.is_not_null() & value.is_null(), self.raw(field))
        return value.alias(column)

    # -- value kinds
    def text(self, field: str, column: str | None = None) -> pl.Expr:
        expr = text_of(self.raw(field))
        return expr.alias(column) if column else expr

    def code(self, field: str, table_mapping: Mapping[str, str], column: str) -> pl.Expr:
        """A coded value mapped to the city code; unmapped values stay as sent."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.String).alias(column)
        return codes.map_values(pl.col(field), dict(table_mapping)).alias(column)

    def code_list(self, field: str, table_mapping: Mapping[str, str], column: str) -> pl.Expr:
        """A list of codes: a JSON array, or labels joined by "," / "，". Never null."""
        empty = pl.lit([], dtype=pl.List(pl.String))
        if not self.has(field):
            return empty.alias(column)
        dtype = self.schema[field]
        if isinstance(dtype, pl.List):
            items = pl.col(field).list.eval(pl.element().cast(pl.String))
        else:
            items = (
                pl.col(field).cast(pl.String).str.replace_all(_LIST_SEPARATORS, ",").str.split(",")
            )
        return codes.map_list(items, dict(table_mapping)).fill_null(empty).alias(column)

    def variant_label(self, field: str, table: str, column: str) -> pl.Expr:
        """The label as sent when it is an accepted variant of the standard one (因婚, 因丧 for
        `other`): the code loses it, so keep it beside."""
        standard = set(codes.labels(table).values())
        variants = [k for k in codes.from_labels(table) if k not in standard]
        sent = text_of(self.raw(field))
        return pl.when(sent.is_in(variants)).then(sent).alias(column)

    def _number_value(self, field: str) -> pl.Expr:
        dtype = self.schema[field]
        if _is_numeric(dtype):
            value = pl.col(field).cast(pl.Float64)
            return pl.when(value.is_finite()).then(value)
        if isinstance(dtype, pl.Boolean):
            return pl.lit(None, dtype=pl.Float64)
        return _number_from_text(text_of(pl.col(field)))

    def number(self, field: str, column: str) -> pl.Expr:
        if not self.has(field):
            return pl.lit(None, dtype=pl.Float64).alias(column)
        return self._checked(field, column, "bad_number", self._number_value(field))

    def integer(self, field: str, column: str) -> pl.Expr:
        """A whole number (years, counts, months): "3", 3.0, "2014年"; 3.5 is bad_number."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Int32).alias(column)
        value = self._number_value(field)
        whole = pl.when((value == value.floor()) & (value.abs() < 2**31)).then(value)
        return self._checked(field, column, "bad_number", whole.cast(pl.Int32))

    def year(self, field: str, column: str) -> pl.Expr:
        """A year: 2014, "2014", "2014年"; a date typed into a year column ("2014-01-01", or
        for workbooks an Excel date serial) gives its year."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Int32).alias(column)
        value = self._number_value(field)
        plain = pl.when((value == value.floor()) & (value.abs() < 10_000)).then(value)
        if _is_numeric(self.schema[field]):
            as_date = _date_from_serial(value) if self.excel_serials else pl.lit(None, pl.Date)
        else:
            as_date = _date_from_text(text_of(pl.col(field)), self.excel_serials)
        year = pl.coalesce(plain.cast(pl.Int32), as_date.dt.year().cast(pl.Int32))
        return self._checked(field, column, "bad_number", year)

    def date(self, field: str, column: str) -> pl.Expr:
        if not self.has(field):
            return pl.lit(None, dtype=pl.Date).alias(column)
        dtype = self.schema[field]
        if isinstance(dtype, pl.Date):
            value = pl.col(field)
        elif isinstance(dtype, pl.Datetime):
            value = pl.col(field).dt.date()
        elif _is_numeric(dtype):
            # yyyymmdd as a JSON number, or an Excel serial day number.
            n = pl.col(field).cast(pl.Float64)
            value = pl.when(n >= 10_000_000).then(
                _date_from_text(n.cast(pl.Int64).cast(pl.String), False)
            )
            value = value.otherwise(_date_from_serial(n)) if self.excel_serials else value
        else:
            value = _date_from_text(text_of(pl.col(field)), self.excel_serials)
        return self._checked(field, column, "bad_date", value)

    def boolean(self, field: str, column: str, *, negate: bool = False) -> pl.Expr:
        """是/否 (and true/false, 1/0); ``negate`` for a column of the opposite sense (危房户)."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Boolean).alias(column)
        dtype = self.schema[field]
        if isinstance(dtype, pl.Boolean):
            value = pl.col(field)
        else:
            sent = text_of(pl.col(field))
            value = sent.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Boolean)
        value = ~value if negate else value
        return self._checked(field, column, "bad_boolean", value)

    def iso_timestamp(self, field: str, column: str = "source_updated_at") -> pl.Expr:
        """ISO-8601 with an offset (bigdata ``updatedAt``) as a UTC instant."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias(column)
        sent = text_of(pl.col(field)).str.replace(r"Z$", "+00:00")
        value = sent.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC"
        )
        return self._bounded_time(field, column, value)

    def _bounded_time(self, field: str, column: str, value: pl.Expr) -> pl.Expr:
        """A parsed source time kept only inside the representable range: 9999-12-31T23:59:59-10:00
        is year 10000 in UTC, which no Python datetime holds (it crashed syncs with
        OverflowError). Beyond the range → ``source_time_in_future``; before 1900 →
        ``bad_date``; both recorded as parse errors with the value as sent."""
        late = value > pl.lit(LATEST_REPRESENTABLE, dtype=pl.Datetime("us", "UTC"))
        early = value < pl.lit(EARLIEST_TIME, dtype=pl.Datetime("us", "UTC"))
        self.error("source_time_in_future", column, late.fill_null(False), self.raw(field))
        self.error("bad_date", column, early.fill_null(False), self.raw(field))
        kept = pl.when(~late & ~early).then(value)
        sent = text_of(self.raw(field))
        self.error("bad_date", column, sent.is_not_null() & value.is_null(), self.raw(field))
        return kept.alias(column)

    def local_timestamp(self, field: str, column: str = "source_updated_at") -> pl.Expr:
        """ "yyyy-MM-dd HH:mm:ss" in Beijing time (battle ``updateTime``) as a UTC instant."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias(column)
        value = (
            text_of(pl.col(field))
            .str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
            .dt.replace_time_zone(SHANGHAI, non_existent="null", ambiguous="earliest")
            .dt.convert_time_zone("UTC")
        )
        return self._bounded_time(field, column, value)


# --------------------------------------------------------------------------- frames


def finish(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Keep one row per key (the newest ``source_updated_at``; ties: the later page) and
    conform to the canonical layout. Rows without a key are all kept: validation rejects them
    one by one."""
    if df.height == 0:
        return conform(entity, df)
    keys = list(KEYS[entity])
    keyed = pl.all_horizontal(pl.col(k).is_not_null() for k in keys)
    deduped = (
        df.filter(keyed)
        .sort(["source_updated_at", ORDER], nulls_last=False)
        .unique(subset=keys, keep="last", maintain_order=True)
    )
    out = pl.concat([deduped, df.filter(~keyed)], how="vertical").sort(ORDER)
    return conform(entity, out)


def staged_rows(entity: str, df: pl.DataFrame, *extra: str) -> pl.DataFrame:
    """A page group's built rows as a staging part holds them: the canonical layout plus the
    sync order (``finish`` runs later, over all parts: ``pipelines.staging``) and ``extra``."""
    return conform(entity, df).with_columns(df.select(ORDER, *extra))


# --------------------------------------------------------------------------- ID numbers


def normalise_ids(df: pl.DataFrame, col: str = "id_number") -> pl.DataFrame:
    """GB 11643 normalisation of ``col`` into ``id_number`` and ``id_upgraded``."""
    return id_number.normalise_id_columns(df, col=col)


def birth_date_from_id(col: str = "id_number") -> pl.Expr:
    """Birth date encoded in a normalised ID number; null when malformed or not a date."""
    return id_number.birth_date(pl.col(col))


def sex_from_id(col: str = "id_number") -> pl.Expr:
    """City sex code from the ID's 17th digit (odd male, even female); null when malformed."""
    return id_number.sex(pl.col(col))


# --------------------------------------------------------------------------- watermarks


def latest(values: Iterable[str | None], key) -> str | None:
    """The greatest of several watermark strings, compared by ``key`` (a parser)."""
    best = None
    for v in values:
        if v in (None, ""):
            continue
        try:
            k = key(v)
        except ValueError:
            continue
        if best is None or k > best[0]:
            best = (k, v)
    return best[1] if best else None


def advance(previous: str | None, seen: str | None, *, full: bool, key) -> str | None:
    """An entity's next watermark. A full listing sets it from what it saw, never
    ``max(previous, seen)``: a poisoned watermark (a time in the future committed before it was
    caught) heals on the next full sync. An incremental listing only moves it forward."""
    if full:
        return seen
    return latest([previous, seen], key)


# --------------------------------------------------------------------------- shared builders


def build(df: pl.DataFrame, columns, *, excel_serials: bool = False) -> pl.DataFrame:
    """Evaluate ``columns(fields) -> {canonical column: expr}`` over a source frame in one
    lazy pass (common subexpressions between values and their error checks are shared), keeping
    ``raw_ref`` and the sync order, and adding ``parse_errors``."""
    fields = Fields(df.schema, excel_serials=excel_serials)
    exprs = columns(fields)
    return (
        df.lazy()
        .select(
            *(e.alias(name) for name, e in exprs.items()),
            pl.col(RAW_REF),
            pl.col(ORDER),
            fields.parse_errors(),
        )
        .collect()
    )


def statistical_unit(code: pl.Expr) -> pl.Expr:
    """Towns numbered 4xx/5xx (digits 7-9 of the code) are reservoirs, forest farms and parks,
    not real townships; their villages inherit that. A county code is never one."""
    return (
        pl.when(code.str.len_chars() >= 9)
        .then(code.str.slice(6, 1).is_in(["4", "5"]))
        .otherwise(pl.when(code.is_not_null()).then(pl.lit(False)))
    )


def max_timestamp(df: pl.DataFrame | pl.LazyFrame, fmt: str) -> str | None:
    """The newest ``source_updated_at`` of a frame, in Beijing time, formatted for the platform.

    Times later than the hub's clock plus the allowed skew are ignored: validation rejects
    those records (``source_time_in_future``) and a watermark in the future would make every
    later incremental sync ask for changes after it and get nothing."""
    at = pl.col("source_updated_at")
    limit = pl.lit(future_limit(), dtype=pl.Datetime("us", "UTC"))
    newest = df.lazy().select(at.filter(at <= limit).max()).collect().item()
    if newest is None:
        return None
    return pl.Series([newest]).dt.convert_time_zone(SHANGHAI).dt.strftime(fmt).item()
