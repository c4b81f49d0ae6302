"""What every part of the world shares: the city's figures, the counter-based random draws, the
time helpers and the per-county state.

Random draws come from a counter-based generator (a seeded hash of a row index, one stream per
column), which keeps each column's draws independent of how many other columns exist and of the
order in which they are computed.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import polars as pl

from schemas.columns import ENTITIES
from seeds import SEEDS
from seeds.registry import County

SHANGHAI = ZoneInfo("Asia/Shanghai")
TS = pl.Datetime("ms", "UTC")
META = ("source_key", "updated_at", "visible_at", "deleted_at")
ENTITY_NAMES = tuple(ENTITIES)

#: The city's reported figures (mid-2016): households / persons by attribute.
CITY_FIGURES = {
    "general": (108000, 371500),
    "dibao": (37800, 102600),
    "tekun": (15400, 16200),
}
PROJECTS_CITY, CADRES_CITY, PAIRS_CITY = 2241, 32100, 72800

#: Household sizes by attribute; the counts are then nudged so persons hit the figure exactly.
SIZE_WEIGHTS = {
    "general": {1: 6, 2: 16, 3: 25, 4: 28, 5: 16, 6: 7, 7: 2},
    "dibao": {1: 18, 2: 25, 3: 25, 4: 20, 5: 9, 6: 3},
    "tekun": {1: 95, 2: 5},
}
CAUSES = (
    "illness", "disability", "schooling", "disaster", "lack_land", "lack_water", "lack_skills",
    "lack_labor", "lack_capital", "poor_transport", "low_motivation", "other",
)  # fmt: skip
CAUSE_WEIGHTS = (42, 12, 6, 3, 2, 1, 10, 8, 12, 2, 1, 1)
TEKUN_CAUSE_WEIGHTS = (35, 25, 0, 1, 1, 1, 2, 32, 1, 1, 0, 1)
GENDERED = {
    "son": "daughter", "son_in_law": "daughter_in_law", "grandson": "granddaughter",
    "grandson_ext": "granddaughter_ext", "father": "mother", "father_in_law": "mother_in_law",
    "husbands_father": "husbands_mother", "grandfather": "grandmother",
    "grandfather_ext": "grandmother_ext",
}  # fmt: skip
GENDERED_SWAP = {**GENDERED, **{f: m for m, f in GENDERED.items()}}

#: Clock: changes per day city-wide at scale 1.0 (about 200 changed households, 30 new, 20 gone).
DAILY = {
    "exited": 60,
    "relapsed": 5,
    "births": 12,
    "deaths": 10,
    "left": 8,
    "corrected": 105,
    "registered": 30,
    "deleted": 20,
}
BULK_SHARE = 0.2  # share of changes written by township clerks' bulk imports


def seed64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class Rng:
    """Counter-based uniform draws: ``u(name, index)`` is a pure function of the stream parts,
    the column name and the row index (polars' seeded 64-bit hash of the index; polars is
    pinned, so the draws are stable). One node per draw keeps the query plans small."""

    def __init__(self, *parts: object) -> None:
        self.parts = parts

    def u(self, name: str, index: pl.Expr | str = "_i") -> pl.Expr:
        idx = pl.col(index) if isinstance(index, str) else index
        h = idx.cast(pl.UInt64).hash(seed=seed64(*self.parts, name))
        return (h // 2048).cast(pl.Float64) / float(1 << 53)

    def int(self, name: str, lo: int, hi: int, index: pl.Expr | str = "_i") -> pl.Expr:
        """Uniform integer in [lo, hi]."""
        return (lo + (self.u(name, index) * (hi - lo + 1)).floor()).cast(pl.Int64)

    def py(self, *name: object) -> float:
        return seed64(*self.parts, *name) / float(1 << 64)


def poverty_lines() -> dict[int, float]:
    with (SEEDS / "poverty_lines.csv").open(encoding="utf-8") as f:
        return {int(r["year"]): float(r["line_yuan"]) for r in csv.DictReader(f)}


def poverty_line(year: pl.Expr, lines: dict[int, float]) -> pl.Expr:
    top = max(lines)
    return year.clip(min(lines), top).replace_strict(lines, return_dtype=pl.Float64)


def exact_sizes(n: int, persons: int, weights: dict[int, float]) -> dict[int, int]:
    """Household counts per size: ``n`` households holding exactly ``persons`` people."""
    if n == 0:
        return {}
    persons = max(persons, n)
    sizes = sorted(weights)
    total = sum(weights.values())
    quotas = {k: n * weights[k] / total for k in sizes}
    counts = {k: int(quotas[k]) for k in sizes}
    for k in sorted(sizes, key=lambda k: -(quotas[k] - counts[k]))[: n - sum(counts.values())]:
        counts[k] += 1
    delta = persons - sum(k * c for k, c in counts.items())
    # Move households one size up (or down) until the persons add up; a handful of bulk moves.
    while delta:
        step = 1 if delta > 0 else -1
        movable = [k for k, c in counts.items() if c and 1 <= k + step <= 12]
        k = max(movable, key=lambda k: (counts[k], -abs(k - 3)))
        m = min(abs(delta), counts[k])
        counts[k] -= m
        counts[k + step] = counts.get(k + step, 0) + m
        delta -= step * m
    return {k: c for k, c in sorted(counts.items()) if c}


def age_years(birth: pl.Expr, at: pl.Expr) -> pl.Expr:
    """Whole years between a birth date and a UTC timestamp (taken as a Beijing date)."""
    d = at.dt.convert_time_zone("Asia/Shanghai").dt.date()
    before = (d.dt.month() * 100 + d.dt.day()) < (birth.dt.month() * 100 + birth.dt.day())
    return d.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32) - before.cast(pl.Int32)


def ts_lit(dt: datetime) -> pl.Expr:
    return pl.lit(dt.astimezone(UTC)).cast(TS)


def phone_number(rng: Rng, name: str, index: str = "_i") -> pl.Expr:
    second = rng.int(name + ".2", 3, 9, index).cast(pl.String)
    rest = (rng.u(name + ".r", index) * 1e9).floor().cast(pl.Int64).cast(pl.String).str.zfill(9)
    return pl.lit("1") + second + rest


@dataclass
class Plan:
    """One simulated day's changes for one county, prepared when the clock enters the day and
    applied as the clock passes each change's timestamp."""

    day: int
    upserts: dict[str, pl.DataFrame]
    deletes: dict[str, pl.DataFrame]  # entity -> {source_key, ts}
    events: pl.DataFrame  # kind, ts


@dataclass
class CountyState:
    county: County
    frames: dict[str, pl.DataFrame]
    truth: pl.DataFrame
    clock: datetime
    plan: Plan | None = None


TRUTH_SCHEMA = {
    "county_code": pl.String(),
    "entity": pl.String(),
    "source_key": pl.String(),
    "rule": pl.String(),
    "level": pl.String(),
}


def epoch_ms(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp() * 1000)


def from_ms(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int64).cast(TS)


def rand_ms(
    rng: Rng, name: str, lo: int | pl.Expr, hi: int | pl.Expr, index: str = "_i"
) -> pl.Expr:
    lo_e = pl.lit(lo) if isinstance(lo, int) else lo
    hi_e = pl.lit(hi) if isinstance(hi, int) else hi
    return lo_e + (rng.u(name, index) * (hi_e - lo_e)).floor().cast(pl.Int64)


def after_day(day: pl.Expr, t0: int, t1: int) -> pl.Expr:
    """Epoch ms of the later of ``t0`` and the day after ``day``, capped below ``t1``."""
    ms = (day.cast(pl.Date).cast(pl.Int64) + 1) * 86_400_000
    return pl.min_horizontal(pl.max_horizontal(pl.lit(t0), ms), pl.lit(t1 - 1))


def beijing_date(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone("Asia/Shanghai").dt.date()


def date_days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def finish_frame(df: pl.DataFrame, entity: str, extra: Sequence[str] = ()) -> pl.DataFrame:
    """Order and type the columns of a stored frame: canonical, metadata, internal extras."""
    cols = {**ENTITIES[entity]}
    out = [pl.col(c).cast(t) for c, t in cols.items()]
    out += [
        pl.col("source_key").cast(pl.String),
        pl.col("updated_at").cast(TS),
        pl.col("visible_at").cast(TS),
        pl.col("deleted_at").cast(TS),
    ]
    out += [pl.col(c) for c in extra]
    return df.select(out)


def with_meta(df: pl.DataFrame, key: str, entity: str) -> pl.DataFrame:
    """A freshly generated record's metadata: keyed by ``key``, visible as soon as written."""
    df = df.with_columns(
        source_key=pl.col(key),
        visible_at=pl.col("updated_at"),
        deleted_at=pl.lit(None, TS),
        _first_visible=pl.col("updated_at"),
    )
    return finish_frame(df, entity, ["_first_visible"])
