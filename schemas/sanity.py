"""Rules against values no clerk types: what a hostile or broken platform sends.

- ``text_too_long``: a free-text column (or a key no format rule checks) longer than its limit in
  ``schemas.rules.TEXT_MAX_LENGTHS`` (a 3.5-million-character name would otherwise land in
  ``core.person_history`` and every snapshot);
- ``text_control_character``: the same columns holding a C0 control character or a
  bidirectional override/isolate (``schemas.rules.CONTROL_CHARACTERS``);
- ``source_time_in_future``: ``source_updated_at`` later than the hub's clock plus the allowed
  skew (``HUB_CLOCK_SKEW_SECONDS``). The same limit keeps such a time out of every watermark
  (``pipelines.connectors.parsing.max_timestamp``), so one bad record cannot stall incremental syncs.

Failures come back in ``schemas.validate``'s shape (``_row``, rule, column_name, value, detail);
the offending values are shown cut to ``SHOWN_CHARACTERS`` with control characters spelled out
as ``<U+XXXX>``, so a reject row never carries the hostile value itself.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import polars as pl

from schemas.failures import FAIL_SCHEMA
from schemas.rules import CONTROL_CHARACTERS, TEXT_MAX_LENGTHS

BEIJING = timezone(timedelta(hours=8))
CLOCK_SKEW_ENV = "HUB_CLOCK_SKEW_SECONDS"
DEFAULT_CLOCK_SKEW = timedelta(minutes=10)
#: How much of an offending value a reject row shows.
SHOWN_CHARACTERS = 60
#: The latest instant a source time may carry at all: later ones (``9999-12-31T23:59:59-10:00``
#: is year 10000 in UTC) do not fit a Python datetime, so parsing turns them into this rule.
LATEST_REPRESENTABLE = datetime(9999, 12, 30, tzinfo=UTC)

_CONTROL_CODEPOINTS = [*range(0x00, 0x20), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]


def clock_skew() -> timedelta:
    """How far a source time may run ahead of the hub's clock (``HUB_CLOCK_SKEW_SECONDS``)."""
    raw = os.environ.get(CLOCK_SKEW_ENV, "").strip()
    if not raw:
        return DEFAULT_CLOCK_SKEW
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{CLOCK_SKEW_ENV} must be a number of seconds, not {raw!r}") from None
    return timedelta(seconds=max(0.0, seconds))


def future_limit(now: datetime | None = None) -> datetime:
    """The latest acceptable source time: the hub's clock plus the allowed skew (UTC)."""
    return min((now or datetime.now(UTC)) + clock_skew(), LATEST_REPRESENTABLE)


def watermark_in_future(value: str, now: datetime | None = None) -> bool:
    """Whether a watermark value is a time beyond ``future_limit`` (or beyond year 9999 in
    UTC): ISO-8601 (bigdata) or "yyyy-MM-dd HH:mm:ss" in Beijing time (battle). A value that is
    no time at all (the workbook's file name) is never in the future."""
    text = str(value).strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return False
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BEIJING)
    try:
        return dt.astimezone(UTC) > future_limit(now)
    except OverflowError:  # 9999-12-31T23:59:59-10:00: after any limit
        return True


def shown(value: pl.Expr) -> pl.Expr:
    """``value`` safe to store in a reject row: control characters spelled out, cut short."""
    text = value.cast(pl.String)
    for cp in _CONTROL_CODEPOINTS:
        text = text.str.replace_all(chr(cp), f"<U+{cp:04X}>", literal=True)
    cut = text.str.slice(0, SHOWN_CHARACTERS)
    return pl.when(text.str.len_chars() > SHOWN_CHARACTERS).then(cut + pl.lit("…")).otherwise(text)


def _text_failures(entity: str, df: pl.DataFrame) -> list[pl.DataFrame]:
    out = []
    for column, limit in TEXT_MAX_LENGTHS.get(entity, {}).items():
        if column not in df.columns:
            continue
        value = pl.col(column).cast(pl.String)
        length = value.str.len_chars()
        out.append(
            _select(
                df,
                length > limit,
                "text_too_long",
                column,
                shown(value),
                pl.format("{} characters ({} characters)", pl.lit(limit), length),
            )
        )
        out.append(
            _select(
                df,
                value.str.contains(CONTROL_CHARACTERS),
                "text_control_character",
                column,
                shown(value),
                pl.lit("a control or bidirectional-override character"),
            )
        )
    return out


def _future_failures(df: pl.DataFrame, limit: datetime) -> pl.DataFrame:
    at = pl.col("source_updated_at")
    return _select(
        df,
        at > pl.lit(limit, dtype=pl.Datetime("us", "UTC")),
        "source_time_in_future",
        "source_updated_at",
        at.dt.convert_time_zone("Asia/Shanghai").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f%:z"),
        pl.lit(f"latest accepted {limit.isoformat(timespec='seconds')}"),
    )


def _select(
    df: pl.DataFrame, mask: pl.Expr, rule: str, column: str, value: pl.Expr, detail: pl.Expr
) -> pl.DataFrame:
    # mask as a column first: a literal predicate would not broadcast in filter (polars 2.1)
    return (
        df.lazy()
        .with_columns(mask.fill_null(False).alias("__hit"))
        .filter(pl.col("__hit"))
        .select(
            pl.col("_row").cast(pl.UInt32),
            pl.lit(rule).alias("rule"),
            pl.lit(column).alias("column_name"),
            value.cast(pl.String).alias("value"),
            detail.cast(pl.String).alias("detail"),
        )
        .collect()
    )


def sanity_failures(entity: str, df: pl.DataFrame, now: datetime | None = None) -> pl.DataFrame:
    """Every ``text_too_long``, ``text_control_character`` and ``source_time_in_future``
    failure of ``df`` (a canonical frame with ``_row``)."""
    parts = _text_failures(entity, df)
    if "source_updated_at" in df.columns:
        parts.append(_future_failures(df, future_limit(now)))
    parts = [p for p in parts if p.height]
    return pl.concat(parts) if parts else pl.DataFrame(schema=FAIL_SCHEMA)
