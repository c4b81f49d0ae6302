"""Landed page bodies → record frames for the normalisers: the JSON envelope read and checked,
its list of records exploded into a frame, each row tagged with where it came from (``raw_ref``)
and its position in the sync (``__order``).

Python runs per page here; the records stay columnar (polars parses the JSON).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import polars as pl

from base.errors import SourceError
from pipelines.http import UnusableJson, describe_json_error, parse_json_body

ORDER = "__order"  # global position of a row in the sync (page order, then row order)
RAW_REF = "raw_ref"


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


def checked_envelope(
    county: CountyLike, page: PageLike, *, ok_code: str, message: str, called: str
) -> pl.DataFrame:
    """The page body as a one-row frame whose ``code`` is ``ok_code``: the platforms answer
    their errors with HTTP 200 too, so any other code fails with the platform's ``message``.
    ``called`` names what a body without a ``code`` is not ("answer", "envelope")."""
    env = read_json_envelope(county, page)
    code = field_of(env, ["code"])
    if code is None:
        raise source_error(county, page.url, f"the body is not a platform {called} (no `code`)")
    if code.cast(pl.String).item() != ok_code:
        sent = field_of(env, [message])
        detail = sent.cast(pl.String).item() if sent is not None else ""
        raise source_error(county, page.url, f"platform error code {code.item()} {detail}".strip())
    return env


def field_of(df: pl.DataFrame, path: Iterable[str]) -> pl.Series | None:
    """A nested field of a one-row envelope (``data.items``), or None when absent."""
    path = list(path)
    if len(path) == 1:  # a top-level field: the column itself, without a query per page
        return df.get_column(path[0]) if path[0] in df.columns else None
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
    df = page_rows(county, page, rows, what)
    return with_refs(df, page.page_id, order) if df.width else df


def page_rows(
    county: CountyLike, page: PageLike, rows: pl.Series | None, what: str
) -> pl.DataFrame:
    """:func:`records` without ``raw_ref`` and ``__order`` (added for a group of pages at once
    by :func:`group_refs`): a page's list of records exploded into a frame."""
    if rows is None:
        raise source_error(county, page.url, f"the body has no `{what}`")
    dtype = rows.dtype  # read once: a wide struct's dtype costs ~0.1 ms to convert
    if not isinstance(dtype, pl.List):
        raise source_error(county, page.url, f"`{what}` is not a list")
    inner = dtype.inner
    if isinstance(inner, pl.Null) or rows.list.len().sum() == 0:
        return pl.DataFrame()
    if not isinstance(inner, pl.Struct):
        raise source_error(county, page.url, f"`{what}` does not hold JSON objects")
    # Series operations, not a DataFrame's (each of those is a lazy query: ~4x the CPU a page)
    return rows.explode().struct.unnest()


def with_refs(df: pl.DataFrame, page_id: str, order: int, first: int = 0) -> pl.DataFrame:
    """``raw_ref`` and ``__order`` of a page's rows; ``first``: the position of its first row
    in the page (a chunk of a register file)."""
    row = pl.int_range(first, pl.len() + first, dtype=pl.Int64)
    return df.with_columns(
        (pl.lit(f"{page_id}#") + row.cast(pl.String)).alias(RAW_REF),
        (pl.lit(order, dtype=pl.Int64) * (1 << 32) + row).alias(ORDER),
    )


def group_refs(pages: Sequence[tuple[str, int, int]]) -> pl.DataFrame:
    """``raw_ref`` and ``__order`` of the rows of several pages, in page then row order, as
    :func:`with_refs` gives them page by page; ``pages``: (page id, order, rows) of each. One
    query for a page group instead of one per page (issue 13)."""
    meta = pl.DataFrame(
        {"id": [p[0] for p in pages], "order": [p[1] for p in pages], "n": [p[2] for p in pages]},
        schema={"id": pl.String, "order": pl.Int64, "n": pl.Int64},
    )
    row = pl.col("row")
    return (
        meta.lazy()
        .filter(pl.col("n") > 0)
        .select("id", "order", pl.int_ranges(0, "n", dtype=pl.Int64).alias("row"))
        .explode("row")
        .select(
            (pl.col("id") + pl.lit("#") + row.cast(pl.String)).alias(RAW_REF),
            (pl.col("order") * (1 << 32) + row).alias(ORDER),
        )
        .collect()
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
