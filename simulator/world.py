"""The simulator's synthetic world: every county's records, the defects injected into them (with
the truth list), and a clock that changes the records day by day.

Everything is generated with polars expressions from a seed, so the same ``seed`` and ``scale``
give identical frames. Random draws come from a counter-based generator (a seeded hash of a row
index, one stream per column), which keeps each column's draws independent of how many other
columns exist and of the order in which they are computed.

A county is generated on first access and cached; the clock is replayed for it up to ``now``
at that moment, so a county touched late looks exactly as if it had been there all along.
"""

from __future__ import annotations

import csv
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from schemas.columns import ENTITIES
from seeds import SEEDS, registry
from seeds.registry import County
from simulator import divisions, idcards
from simulator.divisions import round_half_up, share_of
from simulator.names import given_name, surname
from simulator.names import weighted_choice as choice

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

#: Defect kinds by the entity they are injected into; levels per rule.
HOUSEHOLD_KINDS = (
    "unknown_code", "head_count", "exit_before_identified", "exited_without_exit_year",
    "other_causes_invalid", "negative_income", "member_count_mismatch",
    "exit_below_poverty_line", "exit_unsafe_housing", "exit_unsafe_water",
    "illness_cause_nobody_ill", "tekun_able_bodied_member",
)  # fmt: skip
PERSON_KINDS = (
    "id_number_checksum", "id_number_birth_date", "id_number_sex", "id_number_format",
    "id_number_as_number", "id_number_outside_shangluo", "unknown_code", "work_months_range",
    "health_exclusive", "orphan_household", "school_age_implausible",
    "relation_sex_inconsistent", "duplicate_id_number",
)  # fmt: skip
FINDINGS = {
    "id_number_outside_shangluo", "member_count_mismatch", "school_age_implausible",
    "relation_sex_inconsistent", "exit_below_poverty_line", "exit_unsafe_housing",
    "exit_unsafe_water", "illness_cause_nobody_ill", "tekun_able_bodied_member",
    "cadre_registered_poor",
}  # fmt: skip
CONFLICTS = {"duplicate_id_number"}

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


def _seed64(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class Rng:
    """Counter-based uniform draws: ``u(name, index)`` is a pure function of the stream parts,
    the column name and the row index (polars' seeded 64-bit hash of the index; polars is
    pinned, so the draws are stable). One node per draw keeps the query plans small."""

    def __init__(self, *parts: object) -> None:
        self.parts = parts

    def u(self, name: str, index: pl.Expr | str = "_i") -> pl.Expr:
        idx = pl.col(index) if isinstance(index, str) else index
        h = idx.cast(pl.UInt64).hash(seed=_seed64(*self.parts, name))
        return (h // 2048).cast(pl.Float64) / float(1 << 53)

    def int(self, name: str, lo: int, hi: int, index: pl.Expr | str = "_i") -> pl.Expr:
        """Uniform integer in [lo, hi]."""
        return (lo + (self.u(name, index) * (hi - lo + 1)).floor()).cast(pl.Int64)

    def py(self, *name: object) -> float:
        return _seed64(*self.parts, *name) / float(1 << 64)


def _poverty_lines() -> dict[int, float]:
    with (SEEDS / "poverty_lines.csv").open(encoding="utf-8") as f:
        return {int(r["year"]): float(r["line_yuan"]) for r in csv.DictReader(f)}


def _line(year: pl.Expr, lines: dict[int, float]) -> pl.Expr:
    top = max(lines)
    return year.clip(min(lines), top).replace_strict(lines, return_dtype=pl.Float64)


def _exact_sizes(n: int, persons: int, weights: dict[int, float]) -> dict[int, int]:
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


def _age_years(birth: pl.Expr, at: pl.Expr) -> pl.Expr:
    """Whole years between a birth date and a UTC timestamp (taken as a Beijing date)."""
    d = at.dt.convert_time_zone("Asia/Shanghai").dt.date()
    before = (d.dt.month() * 100 + d.dt.day()) < (birth.dt.month() * 100 + birth.dt.day())
    return d.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32) - before.cast(pl.Int32)


def _ts(dt: datetime) -> pl.Expr:
    return pl.lit(dt.astimezone(UTC)).cast(TS)


def _phone(rng: Rng, name: str, index: str = "_i") -> pl.Expr:
    second = rng.int(name + ".2", 3, 9, index).cast(pl.String)
    rest = (rng.u(name + ".r", index) * 1e9).floor().cast(pl.Int64).cast(pl.String).str.zfill(9)
    return pl.lit("1") + second + rest


@dataclass
class _Plan:
    """One simulated day's changes for one county, prepared when the clock enters the day and
    applied as the clock passes each change's timestamp."""

    day: int
    upserts: dict[str, pl.DataFrame]
    deletes: dict[str, pl.DataFrame]  # entity -> {source_key, ts}
    events: pl.DataFrame  # kind, ts


@dataclass
class _CountyState:
    county: County
    frames: dict[str, pl.DataFrame]
    truth: pl.DataFrame
    clock: datetime
    plan: _Plan | None = None


TRUTH_SCHEMA = {
    "county_code": pl.String(),
    "entity": pl.String(),
    "source_key": pl.String(),
    "rule": pl.String(),
    "level": pl.String(),
}


def _ms(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp() * 1000)


def _from_ms(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int64).cast(TS)


def _rand_ms(
    rng: Rng, name: str, lo: int | pl.Expr, hi: int | pl.Expr, index: str = "_i"
) -> pl.Expr:
    lo_e = pl.lit(lo) if isinstance(lo, int) else lo
    hi_e = pl.lit(hi) if isinstance(hi, int) else hi
    return lo_e + (rng.u(name, index) * (hi_e - lo_e)).floor().cast(pl.Int64)


def _after(day: pl.Expr, t0: int, t1: int) -> pl.Expr:
    """Epoch ms of the later of ``t0`` and the day after ``day``, capped below ``t1``."""
    ms = (day.cast(pl.Date).cast(pl.Int64) + 1) * 86_400_000
    return pl.min_horizontal(pl.max_horizontal(pl.lit(t0), ms), pl.lit(t1 - 1))


def _beijing_date(ts: pl.Expr) -> pl.Expr:
    return ts.dt.convert_time_zone("Asia/Shanghai").dt.date()


def _date_days(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _finish(df: pl.DataFrame, entity: str, extra: Sequence[str] = ()) -> pl.DataFrame:
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


class World:
    """The simulated county platforms' data: records, defects with their truth, and a clock."""

    def __init__(
        self,
        seed: int = 7,
        scale: float = 1.0,
        defect_rate: float = 0.01,
        defect_rates: dict[str, float] | None = None,
        divisions_dir: str | Path | None = divisions.DIVISIONS,  # None: synthetic divisions
        counties: Sequence[County] | None = None,
        start: datetime = datetime(2016, 7, 1, 8, 0, tzinfo=SHANGHAI),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.seed = seed
        self.scale = scale
        self.defect_rate = defect_rate
        self.defect_rates = dict(defect_rates or {})
        self.counties: tuple[County, ...] = tuple(counties or registry.counties())
        self.start = start
        self.now: datetime = start
        self.lock = threading.RLock()
        self._lines = _poverty_lines()
        codes = [c.code for c in self.counties]
        self._regions = divisions.build(
            seed, [(c.code, c.name) for c in self.counties], divisions_dir
        )
        # Household and person counts per county and attribute: round(figure * scale) city-wide,
        # split over the counties with exact largest remainders.
        self._households: dict[str, dict[str, int]] = {c: {} for c in codes}
        self._persons: dict[str, dict[str, int]] = {c: {} for c in codes}
        for attr, (hh, pp) in CITY_FIGURES.items():
            hh_split = divisions.split(round_half_up(hh * scale), codes)
            pp_split = divisions.split(round_half_up(pp * scale), codes)
            for c in codes:
                self._households[c][attr] = hh_split[c]
                self._persons[c][attr] = max(pp_split[c], hh_split[c])
        self._projects = divisions.split(round_half_up(PROJECTS_CITY * scale), codes)
        self._cadres = divisions.split(round_half_up(CADRES_CITY * scale), codes)
        self._pairs = divisions.split(round_half_up(PAIRS_CITY * scale), codes)
        self._known_share = sum(divisions.COUNTY_SHARES.get(c, 0.0) for c in codes) or 1.0
        self._states: dict[str, _CountyState] = {}

    # ------------------------------------------------------------------ public interface
    def records(self, county_code: str, entity: str, include_deleted: bool = False) -> pl.DataFrame:
        if entity not in ENTITIES:
            raise KeyError(f"unknown entity {entity!r}")
        with self.lock:
            df = self._state(county_code).frames[entity]
        if not include_deleted:
            df = df.filter(pl.col("deleted_at").is_null())
        cols = [*ENTITIES[entity], *META]
        if entity == "person":
            cols.append("render_hint")
        # When the record's first version committed: an update in flight must not make a
        # record vanish from listings (the platform keeps serving it meanwhile).
        first = (
            pl.col("_first_visible").cast(TS)
            if "_first_visible" in df.columns
            else pl.col("visible_at")
        )
        return df.select(*cols, first.alias("first_visible_at"))

    def truth(self, county_code: str) -> pl.DataFrame:
        with self.lock:
            return self._state(county_code).truth

    def advance(self, days: int = 0, minutes: int = 0) -> dict[str, int]:
        """Move the clock and apply the changes of the elapsed period to every county generated
        so far (others replay the same changes when first touched). Returns the counts of
        changes applied, by kind."""
        if days < 0 or minutes < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self.now = self.now + timedelta(days=days, minutes=minutes)
            total: dict[str, int] = dict.fromkeys(DAILY, 0)
            for st in self._states.values():
                for k, v in self._catch_up(st).items():
                    total[k] = total.get(k, 0) + v
            return total

    def stats(self, county_code: str) -> dict:
        """Counts of live (committed, not deleted) records by entity, and households/persons
        by poverty attribute."""
        with self.lock:
            st = self._state(county_code)
            now = _ts(self.now)
            live = {
                e: df.filter(pl.col("deleted_at").is_null() & (pl.col("_first_visible") <= now))
                for e, df in st.frames.items()
            }
        by_attr = {a: {"households": 0, "persons": 0} for a in CITY_FIGURES}
        for row in live["household"].group_by("poverty_attribute").len().iter_rows():
            by_attr.setdefault(row[0], {"households": 0, "persons": 0})["households"] = row[1]
        for row in live["person"].group_by("_attr").len().iter_rows():
            by_attr.setdefault(row[0], {"households": 0, "persons": 0})["persons"] = row[1]
        return {
            "as_of": self.now.isoformat(),
            "counts": {e: df.height for e, df in live.items()},
            "by_attribute": by_attr,
        }

    # ------------------------------------------------------------------ county state
    def county(self, code: str) -> County:
        for c in self.counties:
            if c.code == code:
                return c
        raise KeyError(f"no county {code!r} in this world")

    def _state(self, code: str) -> _CountyState:
        with self.lock:
            st = self._states.get(code)
            if st is None:
                st = self._generate(self.county(code))
                self._states[code] = st
            if st.clock < self.now:
                self._catch_up(st)
            return st

    # ------------------------------------------------------------------ generation
    def _generate(self, county: County) -> _CountyState:
        code = county.code
        rng = Rng(self.seed, code, "init")
        t1 = _ms(self.start) - 3_600_000  # initial records were last written before the start
        t0 = t1 - 300 * 86_400_000
        region = self._regions[code].with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))
        region = region.with_columns(
            source_key=pl.col("code"),
            updated_at=_from_ms(_rand_ms(rng, "region.ts", t0, t1)),
            deleted_at=pl.lit(None, TS),
        ).with_columns(visible_at=pl.col("updated_at"), _first_visible=pl.col("updated_at"))
        frames = {"region": _finish(region, "region", ["_first_visible"])}

        sk = self._skeleton(county, rng)
        sk = sk.with_columns(updated_at=_from_ms(_rand_ms(rng, "hh.ts", t0, t1)))
        households, persons = self._make_households(county, rng, sk, initial=True)
        frames["household"], frames["person"] = households, persons
        frames["measure"] = self._measures(county, rng, households, t0, t1)
        frames["loan"] = self._loans(county, rng, households, t0, t1)
        frames["project"] = self._projects_frame(county, rng, t0, t1)
        frames["cadre"] = self._cadres_frame(county, rng, t0, t1)
        frames["household_cadre"] = self._pairs_frame(
            county, rng, households, frames["cadre"], t0, t1
        )
        truth = self._inject(county, frames)
        return _CountyState(county=county, frames=frames, truth=truth, clock=self.start)

    def _skeleton(self, county: County, rng: Rng) -> pl.DataFrame:
        """Households of the county: attribute, size, village and household number."""
        code = county.code
        parts = []
        for attr in CITY_FIGURES:
            counts = _exact_sizes(
                self._households[code][attr], self._persons[code][attr], SIZE_WEIGHTS[attr]
            )
            if counts:
                parts.append(
                    pl.DataFrame(
                        {
                            "poverty_attribute": [attr] * len(counts),
                            "size": list(counts),
                            "n": list(counts.values()),
                        }
                    )
                )
        if not parts:
            sk = pl.DataFrame(schema={"poverty_attribute": pl.String, "size": pl.Int32})
        else:
            sk = (
                pl.concat(parts)
                .select(pl.col("poverty_attribute", "size").repeat_by("n"))
                .explode("poverty_attribute", "size")
            )
        sk = sk.with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))
        sk = sk.with_columns(village_code=self._village_choice(county, rng.u("hh.village")))
        # Number households within their village in a random order: "<village><0001…>".
        sk = sk.sort(rng.u("hh.order"))
        seq = pl.int_range(1, pl.len() + 1).over("village_code")
        sk = sk.with_columns(
            household_no=pl.col("village_code") + seq.cast(pl.String).str.zfill(4),
            town_code=pl.col("village_code").str.slice(0, 9),
            size=pl.col("size").cast(pl.Int32),
        ).sort("household_no")
        return sk.with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))

    def _village_weights(self, county: County) -> tuple[list[str], list[float]]:
        """Villages that hold households and their weights: ~70% of households in poor villages."""
        region = self._regions[county.code].filter(
            (pl.col("level") == "village") & ~pl.col("is_statistical_unit")
        )
        poor = region.filter(pl.col("is_poor_village"))["code"].to_list()
        other = region.filter(~pl.col("is_poor_village"))["code"].to_list()
        rnd = Rng(self.seed, county.code, "villages")
        codes, weights = [], []
        for group, share in ((poor, 0.7), (other, 0.3)):
            if not group:
                continue
            raw = [0.4 + rnd.py(c) for c in group]  # villages differ in size
            total = sum(raw)
            codes += group
            weights += [share * w / total for w in raw]
        return codes, weights

    def _village_choice(self, county: County, u: pl.Expr) -> pl.Expr:
        codes, weights = self._village_weights(county)
        return choice(u, codes, weights, pl.String())

    def _make_households(
        self, county: County, rng: Rng, sk: pl.DataFrame, *, initial: bool
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Households and their members from a skeleton (``_i``, household_no, village_code,
        town_code, poverty_attribute, size, updated_at). ``initial``: the mid-2016 register with
        its mix of statuses; otherwise new registrations (not exited, identified this year).

        Every rule of the catalogue holds for what this returns."""
        lines = self._lines
        attr = pl.col("poverty_attribute")
        tekun = attr == "tekun"
        status = pl.col("poverty_status")

        def u(name: str, index: str = "_i") -> pl.Expr:
            return rng.u("hh." + name, index)

        event_year = pl.col("updated_at").dt.convert_time_zone("Asia/Shanghai").dt.year()
        hh = sk
        if initial:
            hh = hh.with_columns(
                poverty_status=choice(
                    u("status"), ["exited", "pre_exit", "relapsed", "not_exited"], [25, 8, 2, 65]
                ),
                identified_year=choice(u("ident"), [2014, 2015], [88, 12], pl.Int32()),
            )
            exited_like = status.is_in(["exited", "relapsed"])
            exit_year = (
                pl.when(pl.col("identified_year") == 2015)
                .then(pl.lit(2015, pl.Int32))
                .otherwise(choice(u("exit"), [2014, 2015], [55, 45], pl.Int32()))
            )
            hh = hh.with_columns(exit_year=pl.when(exited_like).then(exit_year))
            hh = hh.with_columns(
                relapse_year=pl.when(status == "relapsed").then(
                    pl.when(pl.col("exit_year") == 2015)
                    .then(pl.lit(2016, pl.Int32))
                    .otherwise(choice(u("relapse"), [2015, 2016], [50, 50], pl.Int32()))
                )
            )
        else:
            hh = hh.with_columns(
                poverty_status=pl.lit("not_exited"),
                identified_year=event_year.cast(pl.Int32),
                exit_year=pl.lit(None, pl.Int32),
                relapse_year=pl.lit(None, pl.Int32),
            )
        hh = hh.with_columns(
            main_cause=pl.when(tekun)
            .then(choice(u("cause_t"), CAUSES, TEKUN_CAUSE_WEIGHTS, pl.String()))
            .otherwise(choice(u("cause"), CAUSES, CAUSE_WEIGHTS, pl.String())),
            _n_other=choice(u("n_other"), [0, 1, 2], [30, 45, 25], pl.Int32()),
            _c1=choice(u("c1"), CAUSES[:-1], [1] * 11, pl.String()),
            _c2=choice(u("c2"), CAUSES[:-1], [1] * 11, pl.String()),
        )
        main = pl.col("main_cause")
        line_now = _line(event_year.cast(pl.Int32), lines)
        line_exit = _line(pl.col("exit_year"), lines)
        income = (
            pl.when(status == "exited")
            .then(line_exit * (1.05 + 0.6 * u("inc")))
            .when(status == "pre_exit")
            .then(line_now * (0.85 + 0.25 * u("inc")))
            .when(status == "relapsed")
            .then(line_now * (0.5 + 0.4 * u("inc")))
            .otherwise(line_now * (0.45 + 0.5 * u("inc")))
        )
        hh = hh.with_columns(
            other_causes=pl.concat_list(
                pl.when((pl.col("_n_other") >= 1) & (pl.col("_c1") != main)).then(pl.col("_c1")),
                pl.when(
                    (pl.col("_n_other") >= 2)
                    & (pl.col("_c2") != main)
                    & (pl.col("_c2") != pl.col("_c1"))
                ).then(pl.col("_c2")),
            ).list.drop_nulls(),
            main_cause_label=pl.when((main == "other") & (u("label") < 0.5)).then(
                choice(u("label2"), ["因婚", "因丧"], [1, 1], pl.String())
            ),
            income_per_capita=income.round(2),
            member_count=pl.col("size").cast(pl.Int32),
            housing_safe=(status == "exited") | (u("house") < 0.8),
            water_safe=(status == "exited") | (u("water") < 0.85),
            phone=_phone(rng, "hh.phone"),
            head_person_no=pl.col("household_no") + "01",
        )
        persons = self._make_persons(county, rng, hh, initial=initial)
        # 因病 (main or other cause) needs someone ill: make the head chronically ill if nobody is.
        ill_cause = (main == "illness") | pl.col("other_causes").list.contains("illness")
        hh_ill = persons.group_by("household_no").agg(
            _any_ill=(
                pl.col("health").list.contains("chronic")
                | pl.col("health").list.contains("serious_illness")
            ).any()
        )
        need = hh.filter(ill_cause).join(hh_ill, on="household_no").filter(~pl.col("_any_ill"))
        fix = pl.col("household_no").is_in(need["household_no"].implode()) & (
            pl.col("relation_to_head") == "head"
        )
        persons = persons.with_columns(
            health=pl.when(fix & pl.col("health").list.contains("healthy"))
            .then(pl.concat_list(pl.lit("chronic")))
            .when(fix)
            .then(pl.col("health").list.concat(pl.concat_list(pl.lit("chronic"))))
            .otherwise(pl.col("health"))
        )
        hh = hh.with_columns(
            source_key=pl.col("household_no"),
            visible_at=pl.col("updated_at"),
            deleted_at=pl.lit(None, TS),
            _first_visible=pl.col("updated_at"),
            _flag=pl.lit(0, pl.Int8),
        )
        return (
            _finish(hh, "household", ["_first_visible", "_flag"]),
            _finish(persons, "person", ["render_hint", "_attr", "_first_visible"]),
        )

    def _make_persons(
        self, county: County, rng: Rng, hh: pl.DataFrame, *, initial: bool
    ) -> pl.DataFrame:
        """Members of the households ``hh``: one head, a spouse, children, sometimes parents or
        grandchildren; ages, health, labour and schooling that fit each other and every rule."""
        attr = pl.col("poverty_attribute")
        tekun = attr == "tekun"

        def u(name: str, index: str = "_i") -> pl.Expr:
            return rng.u("p." + name, index)

        p = (
            hh.select("_i", "household_no", "poverty_attribute", "size", "updated_at")
            .with_columns(seq=pl.int_ranges(1, pl.col("size") + 1, dtype=pl.UInt64))
            .explode("seq")
            .with_columns(_hi=pl.col("_i"), _i=pl.col("_i") * 32 + pl.col("seq"))
        )
        tri = (u("ha1", "_hi") + u("ha2", "_hi")) / 2
        p = p.with_columns(
            _ha=pl.when(tekun)
            .then(
                pl.when(u("ht", "_hi") < 0.7)
                .then(60 + 32 * tri)
                .otherwise(20 + 39 * u("ha3", "_hi"))
            )
            .otherwise(26 + 56 * tri),
            _head_male=u("hs", "_hi") < pl.when(tekun).then(0.65).otherwise(0.85),
        )
        pos, size, ha = pl.col("seq"), pl.col("size"), pl.col("_ha")
        p = p.with_columns(
            _role=pl.when(pos == 1)
            .then(pl.lit("head"))
            .when(
                (pos == 2)
                & (ha >= 22)
                & (u("sp", "_hi") < pl.when(tekun).then(0.6).otherwise(0.82))
            )
            .then(pl.lit("spouse"))
            .when((ha >= 58) & (size >= 5) & (pos == 4))
            .then(pl.lit("dil"))
            .when((ha >= 58) & (size >= 5) & (pos >= 5))
            .then(pl.lit("grandchild"))
            .when((ha < 48) & (pos == size) & (size >= 4) & (u("par", "_hi") < 0.35))
            .then(pl.lit("parent"))
            .otherwise(pl.lit("child"))
        )
        role = pl.col("_role")
        male = (
            pl.when(role == "head")
            .then(pl.col("_head_male"))
            .when(role == "spouse")
            .then(~pl.col("_head_male"))
            .when(role == "dil")
            .then(pl.lit(False))
            .otherwise(u("sex") < 0.52)
        )
        p = p.with_columns(_male=male)
        male = pl.col("_male")
        ext = u("ext") < 0.15
        relation = (
            pl.when(role == "head")
            .then(pl.lit("head"))
            .when(role == "spouse")
            .then(pl.lit("spouse"))
            .when(role == "dil")
            .then(pl.lit("daughter_in_law"))
            .when(role == "child")
            .then(pl.when(male).then(pl.lit("son")).otherwise(pl.lit("daughter")))
            .when(role == "grandchild")
            .then(
                pl.when(male)
                .then(pl.when(ext).then(pl.lit("grandson_ext")).otherwise(pl.lit("grandson")))
                .otherwise(
                    pl.when(ext)
                    .then(pl.lit("granddaughter_ext"))
                    .otherwise(pl.lit("granddaughter"))
                )
            )
            .otherwise(pl.when(male).then(pl.lit("father")).otherwise(pl.lit("mother")))
        )
        ua = u("age")
        age = (
            pl.when(role == "head")
            .then(ha)
            .when(role == "spouse")
            .then((ha + (ua - 0.6) * 10).clip(19, 99))
            .when(role == "child")
            .then(
                pl.when(ha >= 40)
                .then(ha - 21 - 16 * ua)
                .otherwise((ha - 19).clip(lower_bound=1) * (0.05 + 0.9 * ua))
            )
            .when(role == "dil")
            .then((ha - 24 - 8 * ua).clip(lower_bound=18))
            .when(role == "grandchild")
            .then(pl.max_horizontal(ha - 45 - 15 * ua, 0.3 + 3 * u("age2")))
            .otherwise((ha + 22 + 10 * ua).clip(upper_bound=99))
        ).clip(lower_bound=0.3)
        ref_days = _beijing_date(pl.col("updated_at")).cast(pl.Int32)
        if initial:
            ref_days = pl.lit(_date_days(self.start.astimezone(SHANGHAI).date()))
        p = p.with_columns(
            relation_to_head=relation,
            sex=pl.when(male).then(pl.lit("male")).otherwise(pl.lit("female")),
            birth_date=(ref_days - (age * 365.25).floor().cast(pl.Int32))
            .cast(pl.Int32)
            .cast(pl.Date),
        )
        if initial:
            # A member's record was written after the household's, and after they were born.
            t1 = _ms(self.start) - 3_600_000
            t0 = t1 - 300 * 86_400_000
            birth_ms = pl.col("birth_date").cast(pl.Int64) * 86_400_000
            lo = pl.max_horizontal(pl.lit(t0), birth_ms + 60 * 86_400_000)
            p = p.with_columns(updated_at=_from_ms(_rand_ms(rng, "p.ts", lo, pl.lit(t1))))
        a = _age_years(pl.col("birth_date"), pl.col("updated_at"))
        us = u("school")
        grade = (a - 14).cast(pl.String)
        p = p.with_columns(_age=a)
        a = pl.col("_age")
        school = (
            pl.when(a.is_between(3, 5) & (us < 0.7))
            .then(pl.lit("preschool"))
            .when(a.is_between(6, 11))
            .then(pl.lit("primary"))
            .when(a == 12)
            .then(pl.lit("grade7"))
            .when(a == 13)
            .then(pl.lit("grade8"))
            .when(a == 14)
            .then(pl.lit("grade9"))
            .when(a.is_between(15, 17) & (us < 0.55))
            .then(pl.lit("senior") + grade)
            .when(a.is_between(15, 17) & (us < 0.8))
            .then(pl.lit("vocational") + grade)
            .when(a.is_between(18, 20) & (us < 0.12))
            .then(pl.lit("higher_voc") + (a - 17).cast(pl.String))
            .when(a.is_between(18, 21) & (us < 0.2))
            .then(pl.lit("college"))
            .otherwise(pl.lit("not_in_school"))
        )
        ue = u("edu")
        education = (
            pl.when(a < 6)
            .then(pl.lit("preschool"))
            .when(a <= 11)
            .then(pl.lit("primary"))
            .when(a <= 14)
            .then(pl.lit("junior"))
            .when(a <= 17)
            .then(choice(ue, ["junior", "senior"], [60, 40], pl.String()))
            .when(a >= 60)
            .then(
                choice(
                    ue, ["illiterate", "primary", "junior", "senior"], [35, 40, 20, 5], pl.String()
                )
            )
            .otherwise(
                choice(
                    ue,
                    ["illiterate", "primary", "junior", "senior", "college"],
                    [5, 25, 50, 15, 5],
                    pl.String(),
                )
            )
        )
        old = a >= 60
        health = pl.concat_list(
            pl.when(
                u("h_chr") < pl.when(old).then(0.3).when(a >= 40).then(0.12).otherwise(0.03)
            ).then(pl.lit("chronic")),
            pl.when(u("h_ser") < pl.when(old).then(0.05).otherwise(0.02)).then(
                pl.lit("serious_illness")
            ),
            pl.when(u("h_dis") < pl.when(old).then(0.10).otherwise(0.05)).then(pl.lit("disabled")),
        ).list.drop_nulls()
        p = p.with_columns(
            school_status=school,
            education=education,
            health=pl.when(health.list.len() == 0)
            .then(pl.concat_list(pl.lit("healthy")))
            .otherwise(health),
        )
        h = pl.col("health")
        ul = u("labor")
        labor = (
            pl.when(a < 16)
            .then(pl.lit("none"))
            .when(a >= 65)
            .then(choice(ul, ["weak", "lost", "none"], [45, 25, 30], pl.String()))
            .when(h.list.contains("healthy"))
            .then(choice(ul, ["ordinary", "skilled", "weak"], [72, 15, 13], pl.String()))
            .when(h.list.contains("disabled"))
            .then(choice(ul, ["weak", "lost"], [50, 50], pl.String()))
            .otherwise(choice(ul, ["weak", "lost", "ordinary"], [60, 20, 20], pl.String()))
        )
        # 特困 (五保) households have no able-bodied, healthy member of working age: nobody there
        # is an ordinary or skilled worker.
        labor = (
            pl.when(tekun & labor.is_in(["ordinary", "skilled"]))
            .then(pl.lit("weak"))
            .otherwise(labor)
        )
        p = p.with_columns(labor_skill=labor)
        lab = pl.col("labor_skill")
        working = (
            lab.is_in(["ordinary", "skilled", "weak"])
            & a.is_between(16, 64)
            & (pl.col("school_status") == "not_in_school")
            & (u("work") < pl.when(lab == "weak").then(0.25).otherwise(0.65))
        )
        same_surname = role.is_in(["head", "child", "grandchild"]) | ((role == "parent") & male)
        p = p.with_columns(
            work_status=pl.when(working)
            .then(
                choice(
                    u("work2"),
                    ["in_town", "in_county", "in_province", "out_of_province", "other"],
                    [15, 25, 30, 25, 5],
                    pl.String(),
                )
            )
            .otherwise(pl.lit("not_working")),
            work_months=pl.when(working)
            .then(rng.int("p.months", 3, 12))
            .otherwise(0)
            .cast(pl.Int32),
            serious_illness_insured=u("insured") < 0.93,
            ethnicity=choice(u("eth"), ["01", "03", "15", "06"], [995, 3, 1, 1], pl.String()),
            name=pl.when(same_surname).then(surname(u("sur", "_hi"))).otherwise(surname(u("own")))
            + given_name(male, u("g1"), u("g2"), u("g3")),
            person_no=pl.col("household_no") + pl.col("seq").cast(pl.String).str.zfill(2),
            id_upgraded=pl.lit(False),
            _addr=idcards.address_code(
                county.code, pl.col("birth_date") < date(2001, 1, 1), u("addr")
            ),
        )
        base = idcards.SEQ_INITIAL if initial else idcards.SEQ_CLOCK
        existing = None
        if not initial:
            existing = self._states[county.code].frames["person"]["id_number"]
        p = idcards.assign_ids(p, base, existing)
        return p.with_columns(
            source_key=pl.col("person_no"),
            visible_at=pl.col("updated_at"),
            deleted_at=pl.lit(None, TS),
            render_hint=pl.lit(None, pl.String),
            _attr=pl.col("poverty_attribute"),
            _first_visible=pl.col("updated_at"),
        )

    def _measures(
        self, county: County, rng: Rng, households: pl.DataFrame, t0: int, t1: int
    ) -> pl.DataFrame:
        """About 1.5 assistance measures per household, from its identification year on."""
        cats = [
            "industry", "employment", "relocation", "education", "health", "social_security",
            "microcredit", "ecology", "asset_income", "housing", "ecommerce", "tourism", "other",
        ]  # fmt: skip
        labels = {
            "industry": "产业扶持", "employment": "转移就业", "relocation": "易地扶贫搬迁",
            "education": "教育扶贫", "health": "健康扶贫", "social_security": "社会保障兜底",
            "microcredit": "扶贫小额信贷", "ecology": "生态补偿", "asset_income": "资产收益",
            "housing": "危房改造", "ecommerce": "电商扶贫", "tourism": "乡村旅游", "other": "其他",
        }  # fmt: skip
        base_amount = {
            "industry": 3000, "employment": 1500, "relocation": 25000, "education": 2000,
            "health": 2500, "social_security": 1800, "microcredit": 20000, "ecology": 800,
            "asset_income": 1200, "housing": 15000, "ecommerce": 1000, "tourism": 2000,
            "other": 500,
        }  # fmt: skip
        h = households.select(
            "household_no", "identified_year", _i=pl.int_range(pl.len(), dtype=pl.UInt64)
        ).with_columns(n=choice(rng.u("m.n"), [0, 1, 2, 3, 4], [20, 30, 30, 15, 5], pl.Int32()))
        m = (
            h.filter(pl.col("n") > 0)
            .with_columns(k=pl.int_ranges(0, pl.col("n"), dtype=pl.UInt64))
            .explode("k")
            .with_columns(_i=pl.col("_i") * 8 + pl.col("k"))
        )
        cat = pl.col("category")
        year = pl.col("identified_year") + (
            rng.u("m.year") * (2017 - pl.col("identified_year"))
        ).floor().cast(pl.Int32)
        m = m.with_columns(
            category=choice(
                rng.u("m.cat"), cats, [22, 14, 6, 10, 10, 8, 6, 6, 6, 5, 3, 2, 2], pl.String()
            ),
            year=year.cast(pl.Int32),
        )
        amount = cat.replace_strict(base_amount, return_dtype=pl.Float64) * (0.5 + rng.u("m.amt"))
        m = m.with_columns(
            measure_id=pl.lit(f"CS{county.code}")
            + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(7),
            amount=pl.when(rng.u("m.null") < 0.08)
            .then(None)
            .otherwise((amount / 10).round(0) * 10),
            description=pl.format(
                "{}年{}", pl.col("year"), cat.replace_strict(labels, return_dtype=pl.String)
            ),
            # written in or after the measure's year (and after the register was set up)
            updated_at=_from_ms(
                _rand_ms(rng, "m.ts", _after(pl.date(pl.col("year"), 1, 1), t0, t1), t1)
            ),
        )
        return self._meta(m, "measure_id", "measure")

    def _meta(self, df: pl.DataFrame, key: str, entity: str) -> pl.DataFrame:
        df = df.with_columns(
            source_key=pl.col(key),
            visible_at=pl.col("updated_at"),
            deleted_at=pl.lit(None, TS),
            _first_visible=pl.col("updated_at"),
        )
        return _finish(df, entity, ["_first_visible"])

    def _loans(
        self, county: County, rng: Rng, households: pl.DataFrame, t0: int, t1: int
    ) -> pl.DataFrame:
        """Subsidised poverty loans (扶贫小额信贷) for about 15% of households."""
        start_days = _date_days(self.start.astimezone(SHANGHAI).date())
        h = households.select(
            "household_no", "poverty_attribute", _i=pl.int_range(pl.len(), dtype=pl.UInt64)
        )
        p_loan = pl.when(pl.col("poverty_attribute") == "tekun").then(0.02).otherwise(0.168)
        loans = h.filter(rng.u("l.has") < p_loan)
        term = choice(rng.u("l.term"), [12, 24, 36], [50, 30, 20], pl.Int32())
        loans = loans.with_columns(
            term_months=term,
            principal=choice(
                rng.u("l.amt"),
                [5000.0, 10000.0, 20000.0, 30000.0, 50000.0],
                [10, 40, 30, 12, 8],
                pl.Float64(),
            ),
            issued_on=(start_days - 30 - rng.int("l.issued", 0, 730)).cast(pl.Int32).cast(pl.Date),
            lender=choice(
                rng.u("l.lender"),
                ["农村信用合作联社", "中国邮政储蓄银行", "中国农业银行", "农村商业银行"],
                [55, 20, 15, 10],
                pl.String(),
            ),
        )
        loans = loans.with_columns(
            annual_rate=pl.when(pl.col("term_months") <= 12).then(0.0435).otherwise(0.0475),
        )
        matured = pl.col("issued_on").cast(pl.Int32) + pl.col("term_months") * 30 < start_days
        loans = loans.with_columns(
            interest_subsidy=(
                pl.col("principal")
                * pl.col("annual_rate")
                * pl.col("term_months").clip(upper_bound=12)
                / 12
            ).round(2),
            status=pl.when(matured)
            .then(
                choice(
                    rng.u("l.st"), ["repaid", "overdue", "written_off"], [80, 15, 5], pl.String()
                )
            )
            .otherwise(choice(rng.u("l.st2"), ["active", "overdue"], [93, 7], pl.String())),
            loan_id=pl.lit(f"XD{county.code}")
            + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(7),
            updated_at=_from_ms(_rand_ms(rng, "l.ts", _after(pl.col("issued_on"), t0, t1), t1)),
        )
        return self._meta(loans, "loan_id", "loan")

    def _projects_frame(self, county: County, rng: Rng, t0: int, t1: int) -> pl.DataFrame:
        """Aid projects: mostly in poor villages, some county-wide (no village)."""
        n = self._projects[county.code]
        region = self._regions[county.code]
        villages = region.filter(pl.col("level") == "village")
        poor = villages.filter(pl.col("is_poor_village"))["code"].to_list()
        other = villages.filter(~pl.col("is_poor_village") & ~pl.col("is_statistical_unit"))[
            "code"
        ].to_list()
        names = dict(zip(region["code"], region["name"], strict=True))
        cats = ["road", "water", "power", "housing", "relocation", "industry", "education",
                "health", "culture", "network"]  # fmt: skip
        labels = ["村级道路", "农村饮水安全", "电力保障", "危房改造", "易地扶贫搬迁", "产业发展",
                  "教育", "医疗卫生", "文化", "网络通信"]  # fmt: skip
        start_days = _date_days(self.start.astimezone(SHANGHAI).date())
        df = pl.DataFrame({"_i": pl.int_range(n, dtype=pl.UInt64, eager=True)})
        uv = rng.u("pj.where")
        vil_poor = (
            choice(rng.u("pj.v"), poor, [1] * len(poor), pl.String())
            if poor
            else pl.lit(None, pl.String)
        )
        vil_other = (
            choice(rng.u("pj.v2"), other, [1] * len(other), pl.String()) if other else vil_poor
        )
        df = df.with_columns(
            village_code=pl.when(uv < 0.85).then(vil_poor).when(uv < 0.9).then(vil_other),
            category=choice(
                rng.u("pj.cat"), cats, [20, 12, 5, 10, 10, 25, 5, 5, 4, 4], pl.String()
            ),
            status=choice(
                rng.u("pj.st"),
                ["completed", "in_progress", "planned", "cancelled"],
                [45, 35, 15, 5],
                pl.String(),
            ),
            budget=((50_000 + rng.u("pj.b") ** 2 * 1_950_000) / 1000).round(0) * 1000,
        )
        status = pl.col("status")
        start_on = (
            pl.when(status == "planned")
            .then(start_days + rng.int("pj.s1", 30, 240))
            .otherwise(start_days - rng.int("pj.s2", 60, 850))
        )
        df = df.with_columns(start_on=start_on.cast(pl.Int32))
        end_on = pl.col("start_on") + rng.int("pj.e", 45, 400)
        df = df.with_columns(
            # A project that would have finished in the future is still being built.
            status=pl.when((status == "completed") & (end_on >= start_days))
            .then(pl.lit("in_progress"))
            .otherwise(status),
            end_on=pl.when((status == "completed") & (end_on < start_days)).then(end_on),
        )
        df = df.with_columns(
            disbursed=pl.when(status == "completed")
            .then(pl.col("budget") * (0.9 + 0.1 * rng.u("pj.d")))
            .when(status == "in_progress")
            .then(pl.col("budget") * (0.2 + 0.6 * rng.u("pj.d")))
            .otherwise(0.0)
            .round(2),
            households_benefited=rng.int("pj.hh", 5, 300).cast(pl.Int32),
            start_on=pl.col("start_on").cast(pl.Date),
            end_on=pl.col("end_on").cast(pl.Int32).cast(pl.Date),
            project_id=pl.lit(f"XM{county.code}")
            + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(5),
            name=pl.coalesce(
                pl.col("village_code").replace_strict(names, default=None, return_dtype=pl.String),
                pl.lit(county.name),
            )
            + pl.col("category").replace_strict(
                dict(zip(cats, labels, strict=True)), return_dtype=pl.String
            )
            + pl.lit("项目"),
            updated_at=_from_ms(_rand_ms(rng, "pj.ts", t0, t1)),
        )
        return self._meta(df, "project_id", "project")

    def _cadres_frame(self, county: County, rng: Rng, t0: int, t1: int) -> pl.DataFrame:
        """Aid cadres (帮扶责任人): officials of the city, the county and the towns, first
        secretaries of the poor villages, and a few from the paired province (Jiangsu)."""
        n = self._cadres[county.code]
        n_first = self._regions[county.code]["is_poor_village"].sum()
        cn = county.name
        units = {
            "gov_agency": [f"{cn}扶贫开发局", f"{cn}农业局", f"{cn}财政局", f"{cn}民政局",
                           f"{cn}教育局", f"{cn}人力资源和社会保障局", "商洛市扶贫开发局",
                           "商洛市发展和改革委员会", f"{cn}人民政府办公室"],
            "public_institution": [f"{cn}人民医院", f"{cn}中学", f"{cn}农业技术推广中心",
                                   f"{cn}广播电视台"],
            "soe": ["国网商洛供电公司", f"{cn}自来水公司", "中国移动商洛分公司"],
            "university": ["商洛学院"],
            "social_org": [f"{cn}工商业联合会", f"{cn}妇女联合会"],
            "paired_province": ["江苏省对口帮扶工作组"],
            "village_org": [f"{cn}村民委员会"],
            "other": [f"{cn}农村信用合作联社"],
        }  # fmt: skip
        types = list(units)
        df = pl.DataFrame({"_i": pl.int_range(n, dtype=pl.UInt64, eager=True)})
        df = df.with_columns(
            unit_type=choice(rng.u("c.type"), types, [45, 30, 8, 2, 3, 2, 8, 2], pl.String()),
            _male=rng.u("c.sex") < 0.72,
            birth_date=(_date_days(date(1958, 1, 1)) + rng.int("c.birth", 0, 35 * 365))
            .cast(pl.Int32)
            .cast(pl.Date),
        )
        unit_name = pl.lit(None, pl.String)
        for t, names in units.items():
            pick = choice(rng.u("c.unit." + t), names, [1] * len(names), pl.String())
            unit_name = pl.when(pl.col("unit_type") == t).then(pick).otherwise(unit_name)
        rank = pl.col("_i")
        df = df.with_columns(
            unit_name=unit_name,
            sex=pl.when(pl.col("_male")).then(pl.lit("male")).otherwise(pl.lit("female")),
            name=surname(rng.u("c.sur"))
            + given_name(pl.col("_male"), rng.u("c.g1"), rng.u("c.g2"), rng.u("c.g3")),
            phone=_phone(rng, "c.phone"),
            # One first secretary per poor village; they and some others live in the village.
            is_first_secretary=rank < n_first,
            is_resident_team=(rank < n_first) | (rng.u("c.team") < 0.1),
            cadre_id=pl.lit(f"BFR{county.code}") + (rank + 1).cast(pl.String).str.zfill(6),
            _addr=idcards.address_code(
                county.code, pl.col("birth_date") < date(2001, 1, 1), rng.u("c.addr")
            ),
            updated_at=_from_ms(_rand_ms(rng, "c.ts", t0, t1)),
        )
        df = idcards.assign_ids(df, idcards.SEQ_CADRE)
        return self._meta(df, "cadre_id", "cadre")

    def _pairs_frame(
        self,
        county: County,
        rng: Rng,
        households: pl.DataFrame,
        cadres: pl.DataFrame,
        t0: int,
        t1: int,
    ) -> pl.DataFrame:
        """Household-cadre pairs (帮扶关系): one cadre for each of round(72800 * s) households."""
        n = min(self._pairs[county.code], households.height)
        if cadres.height == 0:
            n = 0
        cadre_ids = cadres["cadre_id"].to_list()
        start_days = _date_days(self.start.astimezone(SHANGHAI).date())
        h = households.select("household_no", _i=pl.int_range(pl.len(), dtype=pl.UInt64))
        h = h.sort(rng.u("hc.pick")).head(n)
        idx = (rng.u("hc.cadre") * len(cadre_ids)).floor().cast(pl.Int64)
        df = (
            h.with_columns(
                cadre_id=idx.replace_strict(dict(enumerate(cadre_ids)), return_dtype=pl.String)
                if cadre_ids
                else pl.lit(None, pl.String),
                since=(start_days - rng.int("hc.since", 10, 280)).cast(pl.Int32).cast(pl.Date),
            )
            .with_columns(
                updated_at=_from_ms(_rand_ms(rng, "hc.ts", _after(pl.col("since"), t0, t1), t1)),
            )
            .with_columns(source_key=pl.col("household_no") + ":" + pl.col("cadre_id"))
        )
        df = df.sort("source_key")
        return self._meta(df, "source_key", "household_cadre")

    # ------------------------------------------------------------------ defects
    def _kinds(self, county: County) -> dict[str, tuple[str, ...]]:
        """Defect kinds each entity of this county can carry, by what its platform sends."""
        workbook = county.kind == "workbook"
        sends_birth_date = county.kind == "bigdata" or (
            county.kind == "battle" and county.version == "3"
        )
        person = tuple(
            k
            for k in PERSON_KINDS
            if not (
                (k == "id_number_birth_date" and not sends_birth_date)
                # workbooks carry no sex column: sex is read from the ID, so it cannot disagree
                or (k == "id_number_sex" and workbook)
                or (k == "id_number_as_number" and not (workbook and county.version == "xlsx"))
                # A member whose household number exists nowhere cannot be attributed to a
                # poverty attribute, so the report's persons-by-attribute figures could never
                # reconcile; orphan references are injected on measures and loans instead.
                or k == "orphan_household"
            )
        )
        out: dict[str, tuple[str, ...]] = {"household": HOUSEHOLD_KINDS, "person": person}
        if not workbook:
            out["measure"] = ("orphan_household",)
            out["loan"] = ("orphan_household",)
            out["cadre"] = ("cadre_registered_poor",)
        return out

    def _defect_count(self, kind: str, entity: str, kinds: dict, n: int) -> int:
        rate = self.defect_rates.get(kind, self.defect_rate / len(kinds[entity]))
        return max(0, round_half_up(rate * n))

    def _inject(self, county: County, frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
        """Inject the county's defects into ``frames`` (in place) and return the truth list.

        Each defective record carries one defect that triggers exactly its rule: defects go to
        records of otherwise clean households, and every change keeps the other rules true
        (e.g. a flipped sex digit gets a fresh unique sequence number and checksum)."""
        rng = Rng(self.seed, county.code, "defects")
        kinds = self._kinds(county)
        lines = self._lines
        hh_cols = frames["household"].columns
        p_cols = frames["person"].columns
        hh = frames["household"].with_columns(
            _i=pl.int_range(pl.len(), dtype=pl.UInt64), _kind=pl.lit(None, pl.String)
        )
        persons = frames["person"].with_columns(
            _i=pl.int_range(pl.len(), dtype=pl.UInt64),
            _kind=pl.lit(None, pl.String),
            _age=_age_years(pl.col("birth_date"), pl.col("updated_at")),
            _age_now=_age_years(pl.col("birth_date"), _ts(self.start)),
        )
        hh = hh.with_columns(_u=rng.u("hh.pick")).sort("_u")
        persons = persons.with_columns(_u=rng.u("p.pick")).sort("_u")

        # ---- households
        ill_cause = (pl.col("main_cause") == "illness") | pl.col("other_causes").list.contains(
            "illness"
        )
        able = persons.filter(
            (pl.col("_age").is_between(18, 57)) & pl.col("_age_now").is_between(18, 57)
        )["household_no"].unique()
        exited = pl.col("poverty_status") == "exited"
        tekun = pl.col("poverty_attribute") == "tekun"
        hh_pre = {
            "tekun_able_bodied_member": tekun
            & ~ill_cause
            & pl.col("household_no").is_in(able.implode()),
            "illness_cause_nobody_ill": (pl.col("main_cause") == "illness") & ~tekun,
            "exit_before_identified": exited,
            "exited_without_exit_year": exited,
            "exit_below_poverty_line": exited,
            "exit_unsafe_housing": exited,
            "exit_unsafe_water": exited,
            "negative_income": ~exited,
        }
        order = [k for k in hh_pre if k in kinds["household"]] + [
            k for k in kinds["household"] if k not in hh_pre
        ]
        n_hh = hh.height
        for kind in order:
            k = self._defect_count(kind, "household", kinds, n_hh)
            if not k:
                continue
            cond = pl.col("_kind").is_null() & hh_pre.get(kind, pl.lit(True))
            picked = hh.filter(cond).head(k)["household_no"]
            hh = hh.with_columns(
                _kind=pl.when(pl.col("household_no").is_in(picked.implode()))
                .then(pl.lit(kind))
                .otherwise(pl.col("_kind"))
            )
        K = pl.col("_kind")
        hh = hh.with_columns(
            main_cause=pl.when(K == "unknown_code")
            .then(
                pl.lit("!")
                + choice(
                    rng.u("hh.unk"),
                    ["因病返贫", "缺发展资金", "因房致贫", "其它原因"],
                    [1] * 4,
                    pl.String(),
                )
            )
            .otherwise(pl.col("main_cause")),
            main_cause_label=pl.when(K == "unknown_code")
            .then(None)
            .otherwise(pl.col("main_cause_label")),
            identified_year=pl.when(K == "exit_before_identified")
            .then(pl.col("exit_year") + 1)
            .otherwise(pl.col("identified_year")),
            exit_year=pl.when(K == "exited_without_exit_year")
            .then(None)
            .otherwise(pl.col("exit_year")),
            other_causes=pl.when(K == "other_causes_invalid")
            .then(pl.concat_list(pl.col("main_cause"), pl.col("other_causes")))
            .otherwise(pl.col("other_causes")),
            income_per_capita=pl.when(K == "negative_income")
            .then(-(pl.col("income_per_capita").abs() + 100).round(2))
            .when(K == "exit_below_poverty_line")
            .then((_line(pl.col("exit_year"), lines) * (0.6 + 0.3 * rng.u("hh.below"))).round(2))
            .otherwise(pl.col("income_per_capita")),
            member_count=pl.when(K == "member_count_mismatch")
            .then(pl.col("member_count") + 1)
            .otherwise(pl.col("member_count")),
            housing_safe=pl.when(K == "exit_unsafe_housing")
            .then(False)
            .otherwise(pl.col("housing_safe")),
            water_safe=pl.when(K == "exit_unsafe_water")
            .then(False)
            .otherwise(pl.col("water_safe")),
            _flag=pl.when(K.is_not_null()).then(pl.lit(1, pl.Int8)).otherwise(pl.col("_flag")),
        )
        hk = hh.select("household_no", _hkind="_kind", _hsize="member_count")
        persons = persons.join(hk, on="household_no", how="left", maintain_order="left")
        HK = pl.col("_hkind")
        seq = pl.col("person_no").str.slice(16, 2)
        # The member who becomes able-bodied in a 特困 household: its first one of working age.
        able_member = (
            (HK == "tekun_able_bodied_member")
            & pl.col("_age").is_between(18, 57)
            & pl.col("_age_now").is_between(18, 57)
        )
        first_able = able_member & (
            pl.col("person_no")
            == pl.col("person_no").filter(able_member).min().over("household_no")
        )
        persons = persons.with_columns(
            relation_to_head=pl.when((HK == "head_count") & (pl.col("_hsize") >= 2) & (seq == "02"))
            .then(pl.lit("head"))
            .when((HK == "head_count") & (pl.col("_hsize") < 2))
            .then(pl.lit("other"))
            .otherwise(pl.col("relation_to_head")),
            health=pl.when(
                (HK == "illness_cause_nobody_ill") & pl.col("health").list.contains("disabled")
            )
            .then(pl.concat_list(pl.lit("disabled")))
            .when((HK == "illness_cause_nobody_ill") | first_able)
            .then(pl.concat_list(pl.lit("healthy")))
            .otherwise(pl.col("health")),
            labor_skill=pl.when(first_able)
            .then(pl.lit("ordinary"))
            .otherwise(pl.col("labor_skill")),
        )

        # ---- persons: only in households without a defect, never the head, never 特困
        pool = (
            pl.col("_kind").is_null()
            & HK.is_null()
            & (pl.col("relation_to_head") != "head")
            & (pl.col("_attr") != "tekun")
        )
        n_p = persons.height
        truth_parts: list[pl.DataFrame] = []

        def mark(df: pl.DataFrame, keys: pl.Series, kind: str) -> pl.DataFrame:
            return df.with_columns(
                _kind=pl.when(pl.col("person_no").is_in(keys.implode()))
                .then(pl.lit(kind))
                .otherwise(pl.col("_kind"))
            )

        if "duplicate_id_number" in kinds["person"]:
            k = self._defect_count("duplicate_id_number", "person", kinds, n_p)
            adults = (
                pool
                & pl.col("_age").is_between(25, 55)
                & (pl.col("school_status") == "not_in_school")
            )
            pairs = []
            for sex, k_s in (("male", k // 2), ("female", k - k // 2)):
                c = persons.filter(adults & (pl.col("sex") == sex)).head(2 * k_s)
                c = c.head(c.height - c.height % 2).with_columns(_pair=pl.int_range(pl.len()) // 2)
                pairs.append(c)
            c = pl.concat(pairs) if pairs else persons.head(0)
            c = c.with_columns(_pair=pl.col("_pair") * 2 + (pl.col("sex") == "male").cast(pl.Int64))
            donors = c.filter(pl.col("person_no") == pl.col("person_no").min().over("_pair"))
            victims = c.filter(pl.col("person_no") != pl.col("person_no").min().over("_pair"))
            d = donors.select("_pair", _did="id_number", _dbirth="birth_date", _dts="updated_at")
            v = victims.select("person_no", "_pair").join(d, on="_pair")
            persons = mark(persons, donors["person_no"], "donor")
            persons = mark(persons, victims["person_no"], "duplicate_id_number")
            persons = persons.join(
                v.drop("_pair"), on="person_no", how="left", maintain_order="left"
            )
            persons = persons.with_columns(
                id_number=pl.coalesce("_did", "id_number"),
                birth_date=pl.coalesce("_dbirth", "birth_date"),
                # The duplicate is the later record.
                updated_at=pl.when(pl.col("_dts").is_not_null())
                .then(pl.max_horizontal("updated_at", pl.col("_dts") + pl.duration(seconds=1)))
                .otherwise(pl.col("updated_at")),
            ).drop("_did", "_dbirth", "_dts")

        p_pre = {
            "id_number_outside_shangluo": pl.col("relation_to_head").is_in(
                ["spouse", "daughter_in_law", "son_in_law"]
            ),
            "orphan_household": (pl.col("health").list.len() == 1)
            & pl.col("health").list.contains("healthy")
            & (pl.col("_hsize") >= 2),
            "school_age_implausible": pl.col("_age").is_between(40, 80),
            "relation_sex_inconsistent": pl.col("relation_to_head").is_in(list(GENDERED_SWAP)),
        }
        p_order = [k for k in p_pre if k in kinds["person"]] + [
            k for k in kinds["person"] if k not in p_pre and k != "duplicate_id_number"
        ]
        for kind in p_order:
            k = self._defect_count(kind, "person", kinds, n_p)
            if kind == "orphan_household":
                k = min(k, 999)
            if not k:
                continue
            picked = persons.filter(pool & p_pre.get(kind, pl.lit(True))).head(k)["person_no"]
            persons = mark(persons, picked, kind)

        # cadres registered as poor: their ID is a (clean) poor person's
        cadres = frames.get("cadre")
        if "cadre" in kinds and cadres is not None and cadres.height:
            k = min(
                self._defect_count("cadre_registered_poor", "cadre", kinds, cadres.height),
                cadres.height,
            )
            donors = persons.filter(pool).head(k)
            k = donors.height
            persons = mark(persons, donors["person_no"], "donor")
            cad = cadres.with_columns(_u=rng.u("c.pick", pl.int_range(pl.len()))).sort("_u")
            chosen = (
                cad.head(k)
                .select("cadre_id")
                .with_columns(_did=donors["id_number"], _dsex=donors["sex"], _dname=donors["name"])
            )
            cadres = cadres.join(chosen, on="cadre_id", how="left", maintain_order="left")
            cadres = cadres.with_columns(
                id_number=pl.coalesce("_did", "id_number"),
                sex=pl.coalesce("_dsex", "sex"),
                name=pl.coalesce("_dname", "name"),
            ).drop("_did", "_dsex", "_dname")
            frames["cadre"] = cadres
            truth_parts.append(
                chosen.select(
                    entity=pl.lit("cadre"),
                    source_key="cadre_id",
                    rule=pl.lit("cadre_registered_poor"),
                )
            )

        # ---- apply the person defects
        P = pl.col("_kind")
        body = pl.col("id_number").str.slice(0, 17)
        unk = rng.u("p.unk", "_i")
        persons = persons.with_columns(
            id_number=pl.when(P == "id_number_checksum")
            .then(body + idcards.wrong_check_digit(body, 1 + (rng.u("p.chk", "_i") * 10).floor()))
            .when(P == "id_number_format")
            .then(body)
            .otherwise(pl.col("id_number")),
            birth_date=pl.when(P == "id_number_birth_date")
            .then(pl.col("birth_date") - pl.duration(days=1 + (rng.u("p.bd", "_i") * 27).floor()))
            .otherwise(pl.col("birth_date")),
            render_hint=pl.when(P == "id_number_as_number")
            .then(pl.lit("id_as_number"))
            .otherwise(pl.col("render_hint")),
            education=pl.when((P == "unknown_code") & (unk < 1 / 3))
            .then(pl.lit("!中专"))
            .otherwise(pl.col("education")),
            work_status=pl.when((P == "unknown_code") & unk.is_between(1 / 3, 2 / 3, closed="left"))
            .then(pl.lit("!外出务工"))
            .otherwise(pl.col("work_status")),
            labor_skill=pl.when((P == "unknown_code") & (unk >= 2 / 3))
            .then(pl.lit("!半劳动力"))
            .otherwise(pl.col("labor_skill")),
            work_months=pl.when(P == "work_months_range")
            .then(13 + (rng.u("p.wm", "_i") * 12).floor().cast(pl.Int32))
            .otherwise(pl.col("work_months")),
            health=pl.when((P == "health_exclusive") & pl.col("health").list.contains("healthy"))
            .then(pl.concat_list(pl.lit("healthy"), pl.lit("chronic")))
            .when(P == "health_exclusive")
            .then(pl.concat_list(pl.lit("healthy"), pl.col("health")))
            .otherwise(pl.col("health")),
            school_status=pl.when(P == "school_age_implausible")
            .then(pl.lit("primary"))
            .otherwise(pl.col("school_status")),
            relation_to_head=pl.when(P == "relation_sex_inconsistent")
            .then(pl.col("relation_to_head").replace(GENDERED_SWAP))
            .otherwise(pl.col("relation_to_head")),
        )
        # New ID numbers (fresh sequence numbers, valid checksums): a flipped sex digit, or a
        # marry-in's address code from a neighbouring province.
        rewrite = persons.filter(P.is_in(["id_number_sex", "id_number_outside_shangluo"]))
        if rewrite.height:
            rewrite = rewrite.select(
                "person_no",
                birth_date=pl.col("id_number").str.slice(6, 8).str.to_date("%Y%m%d"),
                _addr=pl.when(P == "id_number_sex")
                .then(pl.col("id_number").str.slice(0, 6))
                .otherwise(
                    choice(
                        rng.u("p.prov", "_i"),
                        idcards.OTHER_PROVINCES,
                        [1] * len(idcards.OTHER_PROVINCES),
                        pl.String(),
                    )
                ),
                _idsex=pl.when((P == "id_number_sex") == (pl.col("sex") == "male"))
                .then(pl.lit("female"))
                .otherwise(pl.lit("male")),
            )
            rewrite = idcards.assign_ids(
                rewrite, idcards.SEQ_DEFECT, persons["id_number"], sex="_idsex", out="_new_id"
            ).select("person_no", "_new_id")
            persons = persons.join(rewrite, on="person_no", how="left", maintain_order="left")
            persons = persons.with_columns(id_number=pl.coalesce("_new_id", "id_number")).drop(
                "_new_id"
            )
        # Orphans: the member moves to a household number that does not exist; its own household
        # declares one member less, so only orphan_household fires.
        orphans = persons.filter(P == "orphan_household")
        if orphans.height:
            less = orphans.group_by("household_no").agg(_less=pl.len().cast(pl.Int32))
            hh = (
                hh.join(less, on="household_no", how="left", maintain_order="left")
                .with_columns(member_count=pl.col("member_count") - pl.col("_less").fill_null(0))
                .drop("_less")
            )
            rank = pl.int_range(pl.len()).over(pl.col("household_no").str.slice(0, 12))
            moved = pl.col("household_no").str.slice(0, 12) + (9000 + rank).cast(pl.String)
            orphan_map = orphans.sort("person_no").select("person_no", _new_hh=moved)
            persons = persons.join(orphan_map, on="person_no", how="left", maintain_order="left")
            persons = persons.with_columns(
                household_no=pl.coalesce("_new_hh", "household_no"),
                person_no=pl.when(pl.col("_new_hh").is_not_null())
                .then(pl.col("_new_hh") + "01")
                .otherwise(pl.col("person_no")),
            ).drop("_new_hh")
            persons = persons.with_columns(source_key=pl.col("person_no"))

        # Households whose members carry defects (or lend their ID to one) are left alone by the
        # clock's everyday changes; lenders' households are also never deleted.
        touched = (
            persons.filter(P.is_not_null())
            .select(
                pl.col("person_no").str.slice(0, 16).alias("household_no"),
                _f=pl.when(P == "donor").then(pl.lit(2, pl.Int8)).otherwise(pl.lit(1, pl.Int8)),
            )
            .group_by("household_no")
            .agg(pl.col("_f").max())
        )
        hh = (
            hh.join(touched, on="household_no", how="left", maintain_order="left")
            .with_columns(_flag=pl.max_horizontal("_flag", pl.col("_f").fill_null(0)).cast(pl.Int8))
            .drop("_f")
        )

        truth_parts.append(
            hh.filter(K.is_not_null()).select(
                entity=pl.lit("household"), source_key="household_no", rule="_kind"
            )
        )
        truth_parts.append(
            persons.filter(P.is_not_null() & (P != "donor")).select(
                entity=pl.lit("person"), source_key="person_no", rule="_kind"
            )
        )
        # measures and loans pointing at a household number that does not exist
        clean_hh = hh.filter(pl.col("_flag") == 0)["household_no"]
        for entity, key, base in (("measure", "measure_id", 9400), ("loan", "loan_id", 9700)):
            if entity not in kinds:
                continue
            df = frames[entity]
            k = self._defect_count("orphan_household", entity, kinds, df.height)
            picked = (
                df.filter(pl.col("household_no").is_in(clean_hh.implode()))
                .with_columns(_u=rng.u(entity + ".pick", pl.int_range(pl.len())))
                .sort("_u")
                .head(k)
                .select(
                    key,
                    _new_hh=pl.col("household_no").str.slice(0, 12)
                    + (base + pl.int_range(pl.len()) % 300).cast(pl.String),
                )
            )
            df = df.join(picked, on=key, how="left", maintain_order="left")
            frames[entity] = df.with_columns(
                household_no=pl.coalesce("_new_hh", "household_no")
            ).drop("_new_hh")
            truth_parts.append(
                picked.select(
                    entity=pl.lit(entity), source_key=key, rule=pl.lit("orphan_household")
                )
            )

        # parent_rejected: everything that hangs off a rejected household
        rejected = hh.filter(K.is_not_null() & ~K.is_in(list(FINDINGS)))["household_no"]
        for entity in ("person", "measure", "loan", "household_cadre"):
            if entity != "person" and county.kind == "workbook":
                continue  # workbooks deliver households and members only
            df = persons if entity == "person" else frames[entity]
            truth_parts.append(
                df.filter(pl.col("household_no").is_in(rejected.implode())).select(
                    entity=pl.lit(entity), source_key="source_key", rule=pl.lit("parent_rejected")
                )
            )
        hh_schema = dict(frames["household"].schema)
        p_schema = dict(frames["person"].schema)
        frames["household"] = hh.sort("household_no").select(hh_cols).cast(hh_schema)
        frames["person"] = persons.sort("person_no").select(p_cols).cast(p_schema)
        truth = pl.concat(truth_parts).with_columns(
            county_code=pl.lit(county.code),
            level=pl.when(pl.col("rule").is_in(list(FINDINGS)))
            .then(pl.lit("finding"))
            .when(pl.col("rule").is_in(list(CONFLICTS)))
            .then(pl.lit("conflict"))
            .otherwise(pl.lit("reject")),
        )
        return (
            truth.select(list(TRUTH_SCHEMA)).cast(TRUTH_SCHEMA).sort("entity", "source_key", "rule")
        )

    # ------------------------------------------------------------------ clock
    def _catch_up(self, st: _CountyState) -> dict[str, int]:
        """Apply the county's changes from its own clock up to ``now``, day by day. A day's
        changes are planned from the state at the start of that day (seeded by the day number),
        so advancing in one step or in many gives the same records."""
        counts = dict.fromkeys(DAILY, 0)
        target = self.now
        one_day = timedelta(days=1)
        while st.clock < target:
            d = (st.clock - self.start) // one_day
            day_start = self.start + d * one_day
            day_end = day_start + one_day
            if st.plan is None or st.plan.day != d:
                st.plan = self._plan_day(st, d, day_start, day_end)
            seg_end = min(target, day_end)
            for k, v in self._apply(st, st.plan, st.clock, seg_end).items():
                counts[k] = counts.get(k, 0) + v
            st.clock = seg_end
            if seg_end == day_end:
                st.plan = None
        return counts

    def _apply(self, st: _CountyState, plan: _Plan, lo: datetime, hi: datetime) -> dict[str, int]:
        lo_e, hi_e = _ts(lo), _ts(hi)

        def window(c: str) -> pl.Expr:
            return (pl.col(c) > lo_e) & (pl.col(c) <= hi_e)

        for entity, up in plan.upserts.items():
            rows = up.filter(window("updated_at"))
            if rows.height:
                df = st.frames[entity]
                keep = df.filter(~pl.col("source_key").is_in(rows["source_key"].implode()))
                st.frames[entity] = pl.concat([keep, rows.select(df.columns).cast(dict(df.schema))])
        gone = []
        for entity, dl in plan.deletes.items():
            rows = dl.filter(window("ts")).select("source_key", _del="ts")
            if not rows.height:
                continue
            df = st.frames[entity].join(rows, on="source_key", how="left", maintain_order="left")
            hit = pl.col("_del").is_not_null() & pl.col("deleted_at").is_null()
            st.frames[entity] = df.with_columns(
                deleted_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("deleted_at")),
                updated_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("updated_at")),
                visible_at=pl.when(hit).then(pl.col("_del")).otherwise(pl.col("visible_at")),
            ).drop("_del")
            gone.append(rows.select(entity=pl.lit(entity), source_key="source_key"))
        if gone:
            st.truth = st.truth.join(
                pl.concat(gone), on=["entity", "source_key"], how="anti", maintain_order="left"
            )
        ev = plan.events.filter(window("ts")).group_by("kind").len()
        return dict(ev.iter_rows())

    def _plan_day(self, st: _CountyState, d: int, day_start: datetime, day_end: datetime) -> _Plan:
        """The changes of day ``d`` for one county: which records change, how and when."""
        county = st.county
        code = county.code
        rng = Rng(self.seed, code, "day", d)
        frames = st.frames
        share = share_of(code) / self._known_share
        year = day_start.astimezone(SHANGHAI).year
        ds, de = _ms(day_start), _ms(day_end)
        lines = self._lines

        def how_many(kind: str) -> int:
            x = DAILY[kind] * self.scale * share
            return int(x) + (rng.py("n", kind) < x - int(x))

        def stamp(df: pl.DataFrame, name: str, bulk: bool = True) -> pl.DataFrame:
            """Timestamps within the day. Bulk imports commit 1-5 minutes after they start, and
            half of them run in the day's last five minutes (a clerk's end-of-day upload)."""
            df = df.with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))
            df = df.with_columns(
                _bulk=(rng.u(name + ".b") < BULK_SHARE) if bulk else pl.lit(False),
                _late=rng.u(name + ".late") < 0.5,
                _ut=rng.u(name + ".t"),
                _uv=rng.u(name + ".v"),
            )
            t = (
                pl.when(pl.col("_bulk") & pl.col("_late"))
                .then(de - 1 - (pl.col("_ut") * 299_000).floor().cast(pl.Int64))
                .otherwise(ds + 1 + (pl.col("_ut") * (86_400_000 - 2)).floor().cast(pl.Int64))
            )
            df = df.with_columns(_t=t)
            v = (
                pl.when(pl.col("_bulk"))
                .then(pl.col("_t") + 60_000 + (pl.col("_uv") * 240_000).floor().cast(pl.Int64))
                .otherwise(pl.col("_t"))
            )
            return df.with_columns(updated_at=_from_ms(pl.col("_t")), visible_at=_from_ms(v)).drop(
                "_bulk", "_late", "_ut", "_uv", "_t"
            )

        hh_all = frames["household"]
        persons_all = frames["person"]
        hh = hh_all.filter(pl.col("deleted_at").is_null()).with_columns(
            _i=pl.int_range(pl.len(), dtype=pl.UInt64)
        )
        hh = hh.with_columns(_u=rng.u("pick")).sort("_u").drop("_u", "_i")
        live_p = persons_all.filter(pl.col("deleted_at").is_null())
        used: list[pl.Series] = []

        def free() -> pl.Expr:
            if not used:
                return pl.lit(True)
            return ~pl.col("household_no").is_in(pl.concat(used).implode())

        upserts: dict[str, list[pl.DataFrame]] = {e: [] for e in ("household", "person")}
        deletes: dict[str, list[pl.DataFrame]] = {e: [] for e in ENTITY_NAMES}
        events: list[pl.DataFrame] = []

        def event(kind: str, ts: pl.Series) -> None:
            events.append(pl.DataFrame({"kind": [kind] * len(ts), "ts": ts}))

        clean = pl.col("_flag") == 0
        status = pl.col("poverty_status")

        # 清退: erroneously registered households leave with everything hanging off them.
        gone = stamp(hh.filter(pl.col("_flag") != 2).head(how_many("deleted")), "del", bulk=False)
        if gone.height:
            used.append(gone["household_no"])
            event("deleted", gone["updated_at"])
            ts = gone.select("household_no", ts="updated_at")
            deletes["household"].append(ts.select(source_key="household_no", ts="ts"))
            for entity in ("person", "measure", "loan", "household_cadre"):
                df = frames[entity].filter(pl.col("deleted_at").is_null())
                deletes[entity].append(
                    df.join(ts, on="household_no", maintain_order="left").select("source_key", "ts")
                )

        # exits and relapses
        ex = stamp(
            hh.filter(clean & status.is_in(["not_exited", "pre_exit"]) & free()).head(
                how_many("exited")
            ),
            "exit",
        )
        if ex.height:
            used.append(ex["household_no"])
            event("exited", ex["updated_at"])
            upserts["household"].append(
                ex.with_columns(
                    poverty_status=pl.lit("exited"),
                    exit_year=pl.lit(year, pl.Int32),
                    income_per_capita=(
                        lines.get(year, lines[max(lines)]) * (1.05 + 0.6 * rng.u("exit.inc"))
                    ).round(2),
                    housing_safe=pl.lit(True),
                    water_safe=pl.lit(True),
                )
            )
        rel = stamp(
            hh.filter(clean & (status == "exited") & free()).head(how_many("relapsed")), "relapse"
        )
        if rel.height:
            used.append(rel["household_no"])
            event("relapsed", rel["updated_at"])
            upserts["household"].append(
                rel.with_columns(
                    poverty_status=pl.lit("relapsed"),
                    relapse_year=pl.lit(year, pl.Int32),
                    income_per_capita=(
                        lines.get(year, lines[max(lines)]) * (0.5 + 0.4 * rng.u("rel.inc"))
                    ).round(2),
                )
            )

        # household corrections: a new phone number or a re-surveyed income
        n_corr = how_many("corrected")
        n_hh_corr = round_half_up(n_corr * 0.57)
        corr = stamp(hh.filter(clean & free()).head(n_hh_corr), "corr")
        if corr.height:
            used.append(corr["household_no"])
            event("corrected", corr["updated_at"])
            line_now = lines.get(year, lines[max(lines)])
            uinc = rng.u("corr.inc")
            income = (
                pl.when(status == "exited")
                .then(_line(pl.col("exit_year"), lines) * (1.05 + 0.6 * uinc))
                .when(status == "pre_exit")
                .then(line_now * (0.85 + 0.25 * uinc))
                .when(status == "relapsed")
                .then(line_now * (0.5 + 0.4 * uinc))
                .otherwise(line_now * (0.45 + 0.5 * uinc))
                .round(2)
            )
            phone_fix = rng.u("corr.what") < 0.5
            upserts["household"].append(
                corr.with_columns(
                    phone=pl.when(phone_fix)
                    .then(_phone(rng, "corr.phone"))
                    .otherwise(pl.col("phone")),
                    income_per_capita=pl.when(phone_fix)
                    .then(pl.col("income_per_capita"))
                    .otherwise(income),
                )
            )

        # member changes: who may leave without breaking a household rule (never the head, never
        # the only ill member of a household registered 因病)
        hh_info = hh.select(
            "household_no",
            "_flag",
            "poverty_attribute",
            _illc=(pl.col("main_cause") == "illness")
            | pl.col("other_causes").list.contains("illness"),
        )
        p = live_p.join(hh_info, on="household_no", maintain_order="left").with_columns(
            _age=_age_years(pl.col("birth_date"), _ts(day_start)),
            _ill=pl.col("health").list.contains("chronic")
            | pl.col("health").list.contains("serious_illness"),
        )
        p = p.with_columns(_n_ill=pl.col("_ill").sum().over("household_no"))
        p = p.with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))
        p = p.with_columns(_u=rng.u("ppick")).sort("_u").drop("_u", "_i")
        may_leave = (
            (pl.col("_flag") == 0)
            & (pl.col("relation_to_head") != "head")
            & ~(pl.col("_illc") & pl.col("_ill") & (pl.col("_n_ill") == 1))
        )
        for kind, ages in (("deaths", (70, 120)), ("left", (18, 40))):
            cand = p.filter(may_leave & pl.col("_age").is_between(*ages) & free())
            cand = cand.unique("household_no", keep="first", maintain_order=True).head(
                how_many(kind)
            )
            if not cand.height:
                continue
            h = stamp(
                hh.join(cand.select("household_no"), on="household_no", maintain_order="left"), kind
            )
            used.append(h["household_no"])
            event(kind, h["updated_at"])
            upserts["household"].append(h.with_columns(member_count=pl.col("member_count") - 1))
            deletes["person"].append(
                cand.join(
                    h.select("household_no", ts="updated_at"),
                    on="household_no",
                    maintain_order="left",
                ).select("source_key", "ts")
            )

        # person corrections: work taken up or changed, or joining the serious-illness insurance
        pc = p.filter((pl.col("_flag") == 0) & free()).unique(
            "household_no", keep="first", maintain_order=True
        )
        pc = stamp(pc.head(n_corr - n_hh_corr), "pcorr")
        if pc.height:
            used.append(pc["household_no"])
            event("corrected", pc["updated_at"])
            worker = (
                pl.col("labor_skill").is_in(["ordinary", "skilled"])
                & pl.col("_age").is_between(17, 63)
                & (pl.col("school_status") == "not_in_school")
            )
            upserts["person"].append(
                pc.with_columns(
                    work_status=pl.when(worker)
                    .then(
                        choice(
                            rng.u("pc.ws"),
                            ["in_town", "in_county", "in_province", "out_of_province"],
                            [20, 30, 30, 20],
                            pl.String(),
                        )
                    )
                    .otherwise(pl.col("work_status")),
                    work_months=pl.when(worker)
                    .then(rng.int("pc.m", 3, 12).cast(pl.Int32))
                    .otherwise(pl.col("work_months")),
                    serious_illness_insured=pl.when(worker)
                    .then(pl.col("serious_illness_insured"))
                    .otherwise(pl.lit(True)),
                )
            )

        # new registrations (identified this year, not exited)
        n_new = how_many("registered")
        new_persons = None
        if n_new:
            sk = pl.DataFrame({"_i": pl.int_range(n_new, dtype=pl.UInt64, eager=True)})
            attrs = list(CITY_FIGURES)
            weights = [max(self._households[code][a], 1) for a in attrs]
            size = pl.lit(1, pl.Int32)
            for a in attrs:
                sw = SIZE_WEIGHTS[a]
                size = (
                    pl.when(pl.col("poverty_attribute") == a)
                    .then(choice(rng.u("reg.size." + a), list(sw), list(sw.values()), pl.Int32()))
                    .otherwise(size)
                )
            sk = sk.with_columns(
                poverty_attribute=choice(rng.u("reg.attr"), attrs, weights, pl.String()),
                village_code=self._village_choice(county, rng.u("reg.village")),
            ).with_columns(size=size)
            top = hh_all.group_by(village_code=pl.col("household_no").str.slice(0, 12)).agg(
                _top=pl.col("household_no").str.slice(12, 4).cast(pl.Int32).max()
            )
            sk = (
                sk.join(top, on="village_code", how="left", maintain_order="left")
                .with_columns(
                    household_no=pl.col("village_code")
                    + (
                        pl.col("_top").fill_null(0)
                        + 1
                        + pl.int_range(pl.len()).over("village_code")
                    )
                    .cast(pl.String)
                    .str.zfill(4),
                    town_code=pl.col("village_code").str.slice(0, 9),
                )
                .drop("_top")
            )
            sk = stamp(sk, "reg")
            vis = sk.select("household_no", _vis="visible_at")
            reg_rng = Rng(self.seed, code, "day", d, "registration")
            new_hh, new_persons = self._make_households(county, reg_rng, sk, initial=False)

            def visible(df: pl.DataFrame) -> pl.DataFrame:
                return (
                    df.join(vis, on="household_no", maintain_order="left")
                    .with_columns(visible_at=pl.col("_vis"), _first_visible=pl.col("_vis"))
                    .drop("_vis")
                )

            upserts["household"].append(visible(new_hh))
            upserts["person"].append(visible(new_persons))
            event("registered", new_hh["updated_at"])

        # births: a child or grandchild of the head (not in 特困 households)
        heads = live_p.filter(pl.col("relation_to_head") == "head").select(
            "household_no",
            _surname=pl.col("name").str.slice(0, 1),
            _head_age=_age_years(pl.col("birth_date"), _ts(day_start)),
            _eth="ethnicity",
        )
        top_seq = persons_all.group_by("household_no").agg(
            _top=pl.col("person_no").str.slice(16, 2).cast(pl.Int32).max()
        )
        b = (
            hh.filter(
                clean
                & (pl.col("poverty_attribute") != "tekun")
                & (pl.col("member_count") >= 2)
                & free()
            )
            .join(heads, on="household_no", maintain_order="left")
            .join(top_seq, on="household_no", maintain_order="left")
            .filter(pl.col("_top") < 99)
            .head(how_many("births"))
        )
        if b.height:
            b = stamp(b, "birth")
            event("births", b["updated_at"])
            upserts["household"].append(
                b.with_columns(member_count=pl.col("member_count") + 1).select(hh_all.columns)
            )
            male = rng.u("birth.sex") < 0.52
            young = pl.col("_head_age") < 50
            baby = b.with_columns(
                _male=male,
                person_no=pl.col("household_no")
                + (pl.col("_top") + 1).cast(pl.String).str.zfill(2),
                birth_date=_beijing_date(pl.col("updated_at")),
            ).with_columns(
                name=pl.col("_surname")
                + given_name(
                    pl.col("_male"), rng.u("birth.g1"), rng.u("birth.g2"), rng.u("birth.g3")
                ),
                sex=pl.when(pl.col("_male")).then(pl.lit("male")).otherwise(pl.lit("female")),
                relation_to_head=pl.when(young)
                .then(pl.when(pl.col("_male")).then(pl.lit("son")).otherwise(pl.lit("daughter")))
                .otherwise(
                    pl.when(pl.col("_male"))
                    .then(pl.lit("grandson"))
                    .otherwise(pl.lit("granddaughter"))
                ),
                id_upgraded=pl.lit(False),
                ethnicity=pl.col("_eth"),
                education=pl.lit("preschool"),
                school_status=pl.lit("not_in_school"),
                health=pl.concat_list(pl.lit("healthy")),
                labor_skill=pl.lit("none"),
                work_status=pl.lit("not_working"),
                work_months=pl.lit(0, pl.Int32),
                serious_illness_insured=pl.lit(True),
                _addr=pl.lit(code),
                source_key=pl.col("person_no").alias("source_key"),
                deleted_at=pl.lit(None, TS),
                render_hint=pl.lit(None, pl.String),
                _attr=pl.col("poverty_attribute"),
                _first_visible=pl.col("visible_at"),
            )
            existing = persons_all["id_number"]
            if new_persons is not None:
                existing = pl.concat([existing, new_persons["id_number"]])
            baby = idcards.assign_ids(baby, idcards.SEQ_CLOCK, existing)
            upserts["person"].append(baby.with_columns(source_key=pl.col("person_no")))

        def stack(parts: list[pl.DataFrame], entity: str) -> pl.DataFrame:
            cols = frames[entity].columns
            schema = dict(frames[entity].schema)
            return pl.concat([x.select(cols).cast(schema) for x in parts])

        return _Plan(
            day=d,
            upserts={e: stack(v, e) for e, v in upserts.items() if v},
            deletes={e: pl.concat(v) for e, v in deletes.items() if v},
            events=pl.concat(events)
            if events
            else pl.DataFrame(schema={"kind": pl.String, "ts": TS}),
        )
