"""The city code tables (``seeds/codes.csv``) and the mappings connectors use to reach them."""

from __future__ import annotations

import csv
from functools import cache

import polars as pl

from seeds import SEEDS


@cache
def _rows() -> tuple[dict[str, str], ...]:
    with (SEEDS / "codes.csv").open(encoding="utf-8") as f:
        return tuple(csv.DictReader(f))


def tables() -> list[str]:
    return sorted({r["code_table"] for r in _rows()})


def city_codes(table: str) -> list[str]:
    """The valid city codes of a table, in seed order."""
    codes = [r["code"] for r in _rows() if r["code_table"] == table]
    if not codes:
        raise KeyError(f"no code table {table!r}")
    return codes


def labels(table: str) -> dict[str, str]:
    """city code → standard Chinese label."""
    return {r["code"]: r["label"] for r in _rows() if r["code_table"] == table}


def from_labels(table: str) -> dict[str, str]:
    """Chinese label or label variant → city code (battle and workbook platforms)."""
    out: dict[str, str] = {}
    for r in _rows():
        if r["code_table"] != table:
            continue
        out[r["label"]] = r["code"]
        for v in filter(None, r["variants"].split("|")):
            out[v] = r["code"]
    return out


def from_bigdata(table: str) -> dict[str, str]:
    """洛南 platform code → city code."""
    return {r["bigdata_code"]: r["code"] for r in _rows() if r["code_table"] == table}


def map_values(expr: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """Map source values to city codes; a value with no mapping passes through unchanged so that
    validation rejects it by name (never a silent NULL). Empty strings become null."""
    cleaned = expr.cast(pl.String).str.strip_chars()
    return pl.when(cleaned != "").then(cleaned.replace(mapping))


def map_list(expr: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """``map_values`` for a list column (health, other causes)."""
    return expr.list.eval(map_values(pl.element(), mapping).drop_nulls())
