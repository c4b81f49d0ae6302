"""Failures: one small frame per rule, keyed by row position ``_row``; the column and
within-row rules of the pandera models; failures rendered as ops rows."""

from __future__ import annotations

from datetime import date
from functools import cache

import pandera.errors
import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context

from schemas.columns import CODED, ENTITIES
from schemas.entities import SPECS, models
from schemas.rules import ISSUE_SCHEMA, RULES, render_message, unknown_elements
from schemas.validation_context import LOCAL_TZ

MODELS: dict[str, type[pa.DataFrameModel]] = models()
_DETAILS: dict[str, dict[tuple[str, str], pl.Expr]] = {n: s.details for n, s in SPECS.items()}

FAIL_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.UInt32(),
    "rule": pl.String(),
    "column_name": pl.String(),
    "value": pl.String(),
    "detail": pl.String(),
}


def _empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAIL_SCHEMA)


def _failures(
    df: pl.DataFrame,
    mask: pl.Expr,
    rule: str,
    column: str,
    value: pl.Expr | None = None,
    detail: pl.Expr | None = None,
) -> pl.DataFrame:
    """Rows of ``df`` (which has ``_row``) where ``mask`` is true, as failures of ``rule``."""
    # the mask becomes a column first: a literal predicate (pl.lit(True)) does not broadcast in
    # filter and raises ShapeError from 16,384 rows on (polars 2.1)
    hit = df.with_columns(mask.fill_null(False).alias("__hit")).filter(pl.col("__hit"))
    return hit.select(
        pl.col("_row").cast(pl.UInt32),
        pl.lit(rule).alias("rule"),
        pl.lit(column).alias("column_name"),
        (pl.col(column) if value is None else value).cast(pl.String).alias("value"),
        (pl.lit(None) if detail is None else detail).cast(pl.String).alias("detail"),
    )


def _with_row(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_row_index("_row")


@cache
def _builtin_rules(entity: str) -> dict[str, str]:
    """column → rule of its built-in pandera check (from the field's metadata)."""
    columns = MODELS[entity].to_schema().columns
    return {name: col.metadata["rule"] for name, col in columns.items() if col.metadata}


def _model_failures(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Run the entity's pandera model; map its failure cases to (row, rule, column, value)."""
    try:
        # data checks regardless of PANDERA_VALIDATION_ENABLED / _DEPTH in the environment:
        # skipping them would accept every record silently
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            MODELS[entity].validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return _empty_failures()
    structural = cases.filter(pl.col("index").is_null())
    if structural.height:
        # a dtype or missing-column error or a crashing check: the frame broke Contract 1 (or
        # the model has a bug) -- not something to blame on the county's data
        problems = structural.select("column", "check").unique().rows()
        raise ValueError(f"{entity} frame does not fit the canonical layout: {problems}")
    check = pl.col("check")
    rule = (
        pl.when(check == "not_nullable")
        .then(pl.lit("missing_value"))
        .when(check.is_in(list(RULES)))
        .then(check)
        .otherwise(pl.col("column").replace_strict(_builtin_rules(entity), default=None))
    )
    mapped = cases.select(
        pl.col("index").cast(pl.UInt32).alias("_row"),
        rule.alias("rule"),
        pl.col("column").alias("column_name"),
        pl.when(rule != "missing_value").then(pl.col("failure_case")).alias("value"),
        pl.lit(None, pl.String).alias("detail"),
    )
    unmapped = mapped.filter(pl.col("rule").is_null())
    if unmapped.height:
        raise ValueError(f"{entity}: checks without a rule: {unmapped['column_name'].unique()}")
    return _add_details(entity, df, mapped)


def _add_details(entity: str, df: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """Fill message details (and list values) from the failing rows only."""
    if failures.is_empty():
        return failures
    rows = df[failures["_row"]]
    # the failure's own fields under names no frame column has
    own = failures.select(
        pl.col("_row"),
        pl.col("rule").alias("_f_rule"),
        pl.col("column_name").alias("_f_column"),
        pl.col("value").alias("_f_value"),
    )
    col, rule = pl.col("_f_column"), pl.col("_f_rule")
    detail: pl.Expr = pl.lit(None, pl.String)
    value: pl.Expr = pl.col("_f_value")
    code_tables = {
        **CODED.get(entity, {}),
        **{
            name: c.metadata["code_table"]
            for name, c in MODELS[entity].to_schema().columns.items()
            if c.metadata and "code_table" in c.metadata
        },
    }
    for column, table in code_tables.items():
        is_it = (col == column) & (rule == "unknown_code")
        detail = pl.when(is_it).then(pl.lit(table)).otherwise(detail)
        if isinstance(ENTITIES[entity][column], pl.List):
            # name the offending elements, not the whole list
            value = pl.when(is_it).then(unknown_elements(column, table)).otherwise(value)
    for (column, rule_name), expr in _DETAILS[entity].items():
        detail = (
            pl.when((col == column) & (rule == rule_name))
            .then(expr.cast(pl.String))
            .otherwise(detail)
        )
    return pl.concat([own, rows.drop("_row", strict=False)], how="horizontal").select(
        "_row",
        rule.alias("rule"),
        col.alias("column_name"),
        value.cast(pl.String).alias("value"),
        detail.alias("detail"),
    )


def _parse_failures(df: pl.DataFrame) -> pl.DataFrame:
    """The connector's ``parse_errors`` entries, one failure each."""
    errs = _with_row(df.select("parse_errors")).filter(pl.col("parse_errors").list.len() > 0)
    if errs.is_empty():
        return _empty_failures()
    return (
        errs.explode("parse_errors")
        .unnest("parse_errors")
        .select(
            pl.col("_row").cast(pl.UInt32),
            pl.col("rule"),
            pl.col("column").alias("column_name"),
            pl.col("value"),
            pl.lit(None, pl.String).alias("detail"),
        )
    )


def _column_failures(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Model failures plus parse errors; a column that failed to parse has no other failure."""
    parse = _parse_failures(df)
    model = _model_failures(entity, df)
    if not parse.is_empty():
        model = model.join(
            parse.select("_row", "column_name"), on=["_row", "column_name"], how="anti"
        )
    return pl.concat([parse, model])


# ----------------------------------------------------------------------------------------------
# Dates and ages.


def _reference_date(as_of: date | None) -> pl.Expr:
    """The date a record describes: its source_updated_at in Beijing time, or the export date."""
    local = pl.col("source_updated_at").dt.convert_time_zone(LOCAL_TZ).dt.date()
    return local.fill_null(pl.lit(as_of, pl.Date))


def _age(birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    """Whole years between ``birth`` and ``on``."""

    def month_day(d: pl.Expr) -> pl.Expr:
        return d.dt.month().cast(pl.Int32) * 100 + d.dt.day().cast(pl.Int32)

    before_birthday = (month_day(on) < month_day(birth)).cast(pl.Int32)
    return on.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32) - before_birthday


def _key_set(df: pl.DataFrame | None, column: str) -> pl.Series | None:
    if df is None:
        return None
    return df.get_column(column).cast(pl.String).drop_nulls().unique()


def _union(*parts: pl.Series | None) -> pl.Series | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return pl.concat([p.cast(pl.String) for p in present]).unique()


def _issues(entity: str, df: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """Failures → ops rows: one per (record, rule), messages rendered, source key and raw ref."""
    if failures.is_empty():
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    col, value, detail = pl.col("column_name"), pl.col("value"), pl.col("detail")
    message: pl.Expr = pl.lit(None, pl.String)
    for rule in failures["rule"].unique().sort():
        message = (
            pl.when(pl.col("rule") == rule)
            .then(render_message(rule, col, value, detail))
            .otherwise(message)
        )
    per_rule = (
        failures.with_columns(message.alias("message"))
        .group_by("_row", "rule", maintain_order=True)
        .agg(
            pl.col("column_name").first(),
            pl.col("value").first(),
            pl.col("message").str.join("; "),
        )
        .sort("_row", maintain_order=True)
    )
    # by ``_row`` (the row's position in the whole frame), not by position in ``df``: a
    # partition of households holds rows from all over the frame
    refs = df.select(pl.col("_row").cast(pl.UInt32), "source_key", "raw_ref")
    joined = per_rule.with_columns(pl.col("_row").cast(pl.UInt32)).join(
        refs, on="_row", how="left", maintain_order="left"
    )
    return joined.select(
        pl.lit(entity).alias("entity"),
        "source_key",
        "rule",
        "column_name",
        "value",
        "message",
        "raw_ref",
    )


def _rejected_rows(failures: pl.DataFrame) -> pl.Series:
    return failures["_row"].unique()
