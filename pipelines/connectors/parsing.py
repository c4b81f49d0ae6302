"""Parsing shared by the three normalisers: the polars expressions that turn source text into
canonical values while recording what could not be parsed (``parse_errors``), and the one
builder that reads a platform's layout table (``<kind>/layout.py``) into canonical columns.
Landed page bodies become record frames in ``pipelines.connectors.pages``.

Everything on the record path is a polars expression; Python only runs per page or per column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from pipelines.connectors.pages import ORDER, RAW_REF, concat
from pipelines.staging import newest_per_key
from schemas import id_number
from schemas.columns import CODED, ENTITIES, KEYS, PARSE_ERROR, conform, frame_schema
from schemas.sanity import LATEST_REPRESENTABLE, future_limit
from seeds import codes

SHANGHAI = "Asia/Shanghai"
EXCEL_EPOCH = date(1899, 12, 30)  # Excel's day 0 (it counts the non-existent 1900-02-29)
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)  # a source update time before this is bad_date
EMPTY_ERRORS = pl.lit([], dtype=pl.List(PARSE_ERROR))

# Values the platforms write for yes/no (battle and workbook: 是/否; bigdata: JSON booleans).
_TRUE = ("是", "true", "True", "TRUE", "1", "Y", "y", "有")
_FALSE = ("否", "false", "False", "FALSE", "0", "N", "n", "无")
_BOOLEANS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
# Units clerks type after numbers ("3520.5元", "6个月", "2014年"). 万元 is deliberately absent:
# dropping it would change the magnitude, so such a value is reported as bad_number.
_UNITS = r"(?:元|个月|月|年|户|人|岁)$"
_LIST_SEPARATORS = r"[，,、;；]"


# --------------------------------------------------------------------------- value parsing


def text_of(expr: pl.Expr) -> pl.Expr:
    """Text as sent, trimmed; empty becomes null."""
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s != "").then(s)


def _same(value: pl.Expr) -> pl.Expr:
    """``once`` outside ``build``: the expression itself."""
    return value


def _number_from_text(s: pl.Expr, once: Callable[[pl.Expr], pl.Expr] = _same) -> pl.Expr:
    """ "3,520.50", "3520.5元", " 12 ", "4.35%" (→ 0.0435). ``once``: ``Fields._once``."""
    cleaned = once(s.str.replace_all(r"[,，\s]", "").str.replace(_UNITS, ""))
    percent = cleaned.str.ends_with("%")
    value = once(cleaned.str.strip_suffix("%").cast(pl.Float64, strict=False))
    value = once(pl.when(percent).then((value / 100).round(10)).otherwise(value))
    return pl.when(value.is_finite()).then(value)


def _date_from_text(
    s: pl.Expr, excel_serials: bool, once: Callable[[pl.Expr], pl.Expr] = _same
) -> pl.Expr:
    """ "1980-01-01", "1980/1/1", "19800101", "1980年1月1日", "1980-01-01 00:00:00" and, for
    workbooks, Excel serial day numbers written as text ("29221"). ``once``: ``Fields._once``."""
    t = s.str.replace(r"[ T].*$", "").str.replace_all(r"[年月/.]", "-").str.replace(r"日$", "")
    t = once(t)
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


class Fields:
    """Builds canonical columns from the source columns of one frame.

    Each parsing method returns the canonical value expression (aliased) and remembers an
    error expression for ``parse_errors``: a value that was present but could not be parsed
    becomes null and adds ``{rule, column, value-as-sent}``. A source field absent from the
    frame (optional in that layout) yields null.
    """

    def __init__(
        self,
        schema: Mapping[str, pl.DataType],
        *,
        excel_serials: bool = False,
        computed: dict[str, pl.Expr] | None = None,
    ):
        self.schema = dict(schema)
        self.excel_serials = excel_serials
        #: ``build``'s: each checked value as a column computed once, before the select that
        #: both the canonical column and its check read it from (None: plain expressions)
        self.computed = computed
        self._errors: list[tuple[pl.Expr, pl.Expr]] = []  # (failed, entry)

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
        self._errors.append((failed, entry))

    def parse_errors(self) -> pl.Expr:
        if not self._errors:
            return EMPTY_ERRORS.alias("parse_errors")
        entries = [pl.when(failed).then(entry) for failed, entry in self._errors]
        return pl.concat_list(entries).list.drop_nulls().alias("parse_errors")

    def any_error(self) -> pl.Expr:
        """True where :meth:`parse_errors` is not empty (a null condition records nothing)."""
        if not self._errors:
            return pl.lit(False)
        return pl.any_horizontal(failed.fill_null(False) for failed, _ in self._errors)

    def _once(self, value: pl.Expr) -> pl.Expr:
        """``value``, or in ``build`` a column that holds it, computed once: polars evaluated a
        value again for its check (a number's regexes twice per row), ~40 % of a build. Used
        inside the parsers too: polars does not share a subexpression that a ``when``/``then``
        reads several times (``integer`` read its number 4 times, each with the cleaning
        regexes: 52 of a person group's 94 CPU-ms; bench/profiles/landing.md, third round)."""
        if self.computed is None:
            return value
        name = f"__value{len(self.computed)}"
        self.computed[name] = value
        return pl.col(name)

    def _checked(self, field: str, column: str, rule: str, value: pl.Expr) -> pl.Expr:
        value = self._once(value)
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
        if dtype.is_numeric():
            value = pl.col(field).cast(pl.Float64)
            return pl.when(value.is_finite()).then(value)
        if isinstance(dtype, pl.Boolean):
            return pl.lit(None, dtype=pl.Float64)
        return _number_from_text(text_of(pl.col(field)), self._once)

    def number(self, field: str, column: str) -> pl.Expr:
        if not self.has(field):
            return pl.lit(None, dtype=pl.Float64).alias(column)
        return self._checked(field, column, "bad_number", self._number_value(field))

    def integer(self, field: str, column: str) -> pl.Expr:
        """A whole number (years, counts, months): "3", 3.0, "2014年"; 3.5 is bad_number."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Int32).alias(column)
        value = self._once(self._number_value(field))
        whole = pl.when((value == value.floor()) & (value.abs() < 2**31)).then(value)
        return self._checked(field, column, "bad_number", whole.cast(pl.Int32))

    def year(self, field: str, column: str) -> pl.Expr:
        """A year: 2014, "2014", "2014年"; a date typed into a year column ("2014-01-01", or
        for workbooks an Excel date serial) gives its year."""
        if not self.has(field):
            return pl.lit(None, dtype=pl.Int32).alias(column)
        value = self._once(self._number_value(field))
        plain = pl.when((value == value.floor()) & (value.abs() < 10_000)).then(value)
        if self.schema[field].is_numeric():
            as_date = _date_from_serial(value) if self.excel_serials else pl.lit(None, pl.Date)
        else:
            as_date = _date_from_text(text_of(pl.col(field)), self.excel_serials, self._once)
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
        elif dtype.is_numeric():
            # yyyymmdd as a JSON number, or an Excel serial day number.
            n = pl.col(field).cast(pl.Float64)
            value = pl.when(n >= 10_000_000).then(
                _date_from_text(n.cast(pl.Int64).cast(pl.String), False)
            )
            value = value.otherwise(_date_from_serial(n)) if self.excel_serials else value
        else:
            value = _date_from_text(text_of(pl.col(field)), self.excel_serials, self._once)
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
        value = self._once(value)
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
    deduped = newest_per_key(df.filter(keyed), tuple(keys))
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


def move_watermark(
    watermarks: dict[str, str], name: str, seen: str | None, *, full: bool, key
) -> None:
    """Set ``watermarks[name]`` to its next value after a listing that saw ``seen`` (the newest
    valid time). A full listing sets it from what it saw, never ``max(previous, seen)``: a
    poisoned watermark (a time in the future committed before it was caught) heals on the next
    full sync, and one that saw no valid time drops it (the next sync starts from scratch). An
    incremental listing only moves it forward."""
    best = seen if full else latest([watermarks.get(name), seen], key)
    if best:
        watermarks[name] = best
    else:
        watermarks.pop(name, None)


# --------------------------------------------------------------------------- layouts


#: The parsers a ``Read`` may name: methods of ``Fields``.
_KINDS = (
    "text", "number", "integer", "year", "date", "boolean", "code", "code_list", "variant_label",
    "iso_timestamp", "local_timestamp",
)  # fmt: skip


@dataclass(frozen=True)
class Read:
    """A canonical column read from one field of a platform's records (``<kind>/layout.py``).

    ``kind`` names the ``Fields`` parser. A coded column (``code``, ``code_list``) maps through
    the code table ``schemas.columns.CODED`` names for it; ``variant_label`` keeps the accepted
    variants of ``table``'s labels. ``values`` renames text values (unknown ones stay as sent);
    ``negate`` reads a yes/no field of the opposite sense (危房户 "是": the house is unsafe)."""

    field: str
    kind: str = "text"
    table: str | None = None
    values: Mapping[str, str] | None = None
    negate: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"no parser {self.kind!r} for {self.field!r} (known: {_KINDS})")


#: canonical column -> how it is read: a ``Read``, None (the platform does not send it: null),
#: or a function of the ``Fields`` for a value the platform builds in its own way.
Layout = Mapping[str, "Read | Callable[[Fields], pl.Expr] | None"]
Columns = Callable[[Fields], dict[str, pl.Expr]]

#: The column each entity derives the same way on every platform (``_derive``).
_DERIVED = {"region": "is_statistical_unit", "household": "town_code", "person": "id_upgraded"}


def layout_columns(entity: str, layout: Layout, code_table: Callable[[str], dict]) -> Columns:
    """``build``'s columns of ``entity`` from a platform's layout table, read in table order
    (the order of a row's ``parse_errors``); ``code_table(name)`` maps the platform's coded
    values to city codes. A layout that misses a canonical column fails here, at import."""
    needed = (*ENTITIES[entity], "source_updated_at")
    missing = [c for c in needed if c not in layout and c != _DERIVED.get(entity)]
    if missing:
        raise ValueError(f"the {entity} layout reads no {missing}")

    def columns(f: Fields) -> dict[str, pl.Expr]:
        cols = {c: _read(f, entity, c, source, code_table) for c, source in layout.items()}
        return _derive(entity, cols)

    return columns


def _derive(entity: str, cols: dict[str, pl.Expr]) -> dict[str, pl.Expr]:
    """The canonical rules every platform shares, over the columns read."""
    if entity == "region":
        cols["is_statistical_unit"] = statistical_unit(cols["code"])
    elif entity == "household":
        cols["town_code"] = cols["village_code"].str.slice(0, 9)
    elif entity == "person":
        cols["id_upgraded"] = pl.lit(False)  # set by ``normalise_ids``
        # codes.md: work status "无 (or empty)" is not_working.
        cols["work_status"] = cols["work_status"].fill_null("not_working")
    if "source_key" not in cols:  # the platform's key: the entity's key ("<hh>:<cadre>" a pair)
        cols["source_key"] = pl.concat_str([cols[k] for k in KEYS[entity]], separator=":")
    return cols


def _read(f: Fields, entity: str, column: str, source, code_table) -> pl.Expr:
    if source is None:
        return pl.lit(None, dtype=frame_schema(entity)[column])
    if not isinstance(source, Read):
        return source(f)
    if source.kind in ("code", "code_list"):
        mapping = code_table(CODED[entity][column])
        return getattr(f, source.kind)(source.field, mapping, column)
    if source.kind == "variant_label":
        return f.variant_label(source.field, source.table, column)
    if source.kind == "boolean":
        return f.boolean(source.field, column, negate=source.negate)
    value = getattr(f, source.kind)(source.field, column)
    return value.replace(source.values) if source.values else value


# --------------------------------------------------------------------------- shared builders


def build(df: pl.DataFrame, columns: Columns, *, excel_serials: bool = False) -> pl.DataFrame:
    """Evaluate ``columns(fields) -> {canonical column: expr}`` over a source frame in one
    lazy pass (common subexpressions between values and their error checks are shared), keeping
    ``raw_ref`` and the sync order, and adding ``parse_errors``.

    The pass computes whether each row has a parse error, not the errors: building a
    ``{rule, column, value}`` entry of every check for every row, to drop the nulls, was ~40 %
    of the build's CPU (issue 13). The few rows that have one get their ``parse_errors`` from
    a second pass over them alone (the same expressions, row by row alike); the others an empty
    list, as before."""
    computed: dict[str, pl.Expr] = {}
    fields = Fields(df.schema, excel_serials=excel_serials, computed=computed)
    exprs = columns(fields)
    rows = df.lazy().with_row_index(_ROW)
    for name, value in computed.items():  # in order: a value may read an earlier one
        rows = rows.with_columns(value.alias(name))
    out = rows.select(
        *(e.alias(name) for name, e in exprs.items()),
        pl.col(RAW_REF),
        pl.col(ORDER),
        pl.col(_ROW),
        fields.any_error().alias(_FAILED),
    ).collect()
    failed = out.get_column(_ROW).filter(out.get_column(_FAILED))
    if failed.is_empty():
        return out.drop(_ROW, _FAILED).with_columns(EMPTY_ERRORS.alias("parse_errors"))
    errors = (
        rows.filter(pl.col(_ROW).is_in(failed.implode()))
        .select(pl.col(_ROW), fields.parse_errors())
        .collect()
    )
    return (
        out.drop(_FAILED)
        .join(errors, on=_ROW, how="left", maintain_order="left")
        .with_columns(pl.col("parse_errors").fill_null(EMPTY_ERRORS))
        .drop(_ROW)
    )


_ROW, _FAILED = "__build_row", "__build_failed"  # build's own columns, dropped before it returns


def canonical_rows(entity: str, frames: list[pl.DataFrame], columns: Columns) -> pl.DataFrame:
    """A page group's records of ``entity`` built into canonical columns; the ID numbers of
    persons and cadres normalised (GB 11643)."""
    df = build(concat(frames), columns)
    return normalise_ids(df) if entity in ("person", "cadre") else df


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
