"""Shangluo's known administrative divisions: the NBS list in ``seeds/divisions`` plus the
historical codes counties still use (``seeds/divisions/historical.csv``, each with its source).

They seed ``core.region`` (every county, town and village, so every county has its county row
before any platform sends one) and are what village and town codes are checked against:
a household in no known village is flagged (``unknown_village``), and a region row with an
unknown code is never created (``unknown_division``).
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import polars as pl

import seeds

CITY_CODE = "611000"
FILES = ("counties.csv", "towns.csv", "villages.csv", "historical.csv")
HISTORICAL_COLUMNS = ("code", "name", "parent_code", "source", "note")


def divisions_dir() -> Path:
    """``seeds/divisions``, or ``HUB_DIVISIONS`` (tests, a county's own list)."""
    return Path(os.environ.get("HUB_DIVISIONS") or seeds.DIVISIONS)


def short_name(name: str) -> str:
    """Registration data uses short village names: "…社区居委会" → "…社区", "…村委会" → "…村"."""
    suffixes = (
        ("居民委员会", ""), ("村民委员会", "村"), ("居委会", ""), ("村委会", "村"),
        ("委员会", ""), ("居委", ""), ("委会", ""),
    )  # fmt: skip
    for long, short in suffixes:
        if name.endswith(long):
            stem = name[: -len(long)]
            return stem if stem.endswith(("社区", "村")) else stem + short
    return name


def _read(path: Path) -> pl.DataFrame:
    if not path.exists():
        return pl.DataFrame(schema={c: pl.String for c in ("code", "name", "parent_code")})
    return pl.read_csv(path, infer_schema=False).select("code", "name", "parent_code")


@cache
def _load(directory: Path, digest: str) -> pl.DataFrame:
    """Every known division as region rows (code, level, name, parent_code, statistical)."""
    parts = [_read(directory / file) for file in FILES]
    historical = directory / "historical.csv"
    if historical.exists():
        rows = pl.read_csv(historical, infer_schema=False)
        if missing := set(HISTORICAL_COLUMNS) - set(rows.columns):
            raise ValueError(f"{historical}: columns {sorted(missing)} missing")
        unsourced = rows.filter(pl.col("source").str.strip_chars().fill_null("") == "")
        if unsourced.height:
            raise ValueError(
                f"{historical}: codes {unsourced['code'].to_list()[:5]} have no source: every "
                "historical code must name the document that shows it was real"
            )
    rows = pl.concat(parts).unique("code", keep="first", maintain_order=True)
    code = pl.col("code")
    level = (
        pl.when(code.str.len_chars() == 6)
        .then(pl.lit("county"))
        .when(code.str.len_chars() == 9)
        .then(pl.lit("town"))
        .otherwise(pl.lit("village"))
    )
    statistical = code.str.slice(6, 1).is_in(["4", "5"]) | (
        (code.str.len_chars() == 12) & code.str.slice(9, 1).is_in(["4", "5"])
    )
    return rows.with_columns(
        level.alias("level"),
        pl.col("name").map_elements(short_name, return_dtype=pl.String).alias("name"),
        pl.when(code.str.len_chars() == 6)
        .then(pl.lit(CITY_CODE))
        .otherwise(pl.col("parent_code"))
        .alias("parent_code"),
        statistical.alias("is_statistical_unit"),
        code.str.slice(0, 6).alias("county_code"),
    )


def known() -> pl.DataFrame:
    return _load(divisions_dir(), checksum())  # re-read when a file changes


def known_for(county_code: str) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(towns, villages) — frames with a ``code`` column — of a county in the list; ``None``
    for a county the list does not cover (nothing to check against)."""
    rows = known().filter(pl.col("county_code") == county_code)
    if rows.filter(pl.col("level") == "village").is_empty():
        return None
    return (
        rows.filter(pl.col("level") == "town").select("code"),
        rows.filter(pl.col("level") == "village").select("code"),
    )


def checksum() -> str:
    digest = hashlib.sha256()
    for file in FILES:
        path = divisions_dir() / file
        digest.update(file.encode() + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()
