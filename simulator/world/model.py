"""The simulator's synthetic world: every county's records, the defects injected into them (with
the truth list), and a clock that changes the records day by day.

Everything is generated with polars expressions from a seed, so the same ``seed`` and ``scale``
give identical frames (tests/unit/test_sim_world_fingerprint.py holds the world to that).

A county is generated on first access and cached; the clock is replayed for it up to ``now``
at that moment, so a county touched late looks exactly as if it had been there all along.

The parts: ``households`` and ``registers`` generate the records, ``injection`` injects the
defects of the table in ``defects`` (one entry per defect) and returns the truth, ``clock`` moves time
and applies each day's changes, which ``day_plan`` prepares.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

import simulator.world.clock as clock
import simulator.world.households as households
import simulator.world.injection as injection
import simulator.world.registers as registers
from schemas.columns import ENTITIES
from seeds import registry
from seeds.registry import County
from simulator import divisions
from simulator.divisions import round_half_up
from simulator.world.base import (
    CADRES_CITY,
    CITY_FIGURES,
    DAILY,
    META,
    PAIRS_CITY,
    PROJECTS_CITY,
    SHANGHAI,
    TS,
    CountyState,
    Rng,
    epoch_ms,
    finish_frame,
    from_ms,
    poverty_lines,
    rand_ms,
    ts_lit,
)


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
        self._lines = poverty_lines()
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
        self._states: dict[str, CountyState] = {}

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
                for k, v in clock.catch_up(self, st).items():
                    total[k] = total.get(k, 0) + v
            return total

    def stats(self, county_code: str) -> dict:
        """Counts of live (committed, not deleted) records by entity, and households/persons
        by poverty attribute."""
        with self.lock:
            st = self._state(county_code)
            now = ts_lit(self.now)
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

    def _state(self, code: str) -> CountyState:
        with self.lock:
            st = self._states.get(code)
            if st is None:
                st = self._generate(self.county(code))
                self._states[code] = st
            if st.clock < self.now:
                clock.catch_up(self, st)
            return st

    # ------------------------------------------------------------------ generation
    def _generate(self, county: County) -> CountyState:
        code = county.code
        rng = Rng(self.seed, code, "init")
        t1 = epoch_ms(self.start) - 3_600_000  # initial records were last written before the start
        t0 = t1 - 300 * 86_400_000
        region = self._regions[code].with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))
        region = region.with_columns(
            source_key=pl.col("code"),
            updated_at=from_ms(rand_ms(rng, "region.ts", t0, t1)),
            deleted_at=pl.lit(None, TS),
        ).with_columns(visible_at=pl.col("updated_at"), _first_visible=pl.col("updated_at"))
        frames = {"region": finish_frame(region, "region", ["_first_visible"])}

        sk = households.skeleton(self, county, rng)
        sk = sk.with_columns(updated_at=from_ms(rand_ms(rng, "hh.ts", t0, t1)))
        hh, persons = households.make_households(self, county, rng, sk, initial=True)
        frames["household"], frames["person"] = hh, persons
        frames["measure"] = registers.measures(self, county, rng, hh, t0, t1)
        frames["loan"] = registers.loans(self, county, rng, hh, t0, t1)
        frames["project"] = registers.projects_frame(self, county, rng, t0, t1)
        frames["cadre"] = registers.cadres_frame(self, county, rng, t0, t1)
        frames["household_cadre"] = registers.pairs_frame(
            self, county, rng, hh, frames["cadre"], t0, t1
        )
        truth = injection.inject(self, county, frames)
        return CountyState(county=county, frames=frames, truth=truth, clock=self.start)
