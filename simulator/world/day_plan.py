"""The day plan: which of a county's records change on one simulated day, how and when.

A day's changes are drawn from the state at the start of the day, seeded by the day number
(``Rng(seed, county, "day", d)``), so advancing in one step or in many gives the same records.
The steps run in a fixed order, and each household changes at most once a day (``free``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

import simulator.world.households as households
from simulator import idcards
from simulator.divisions import round_half_up, share_of
from simulator.names import given_name
from simulator.names import weighted_choice as choice
from simulator.world.base import (
    BULK_SHARE,
    CITY_FIGURES,
    DAILY,
    ENTITY_NAMES,
    SHANGHAI,
    SIZE_WEIGHTS,
    TS,
    CountyState,
    Plan,
    Rng,
    age_years,
    beijing_date,
    epoch_ms,
    from_ms,
    phone_number,
    poverty_line,
    ts_lit,
)

if TYPE_CHECKING:
    from simulator.world.model import World

_CLEAN = pl.col("_flag") == 0  # households without a defect (nor a member with one)
_STATUS = pl.col("poverty_status")


def plan_day(world: World, st: CountyState, d: int, day_start: datetime, day_end: datetime) -> Plan:
    """The changes of day ``d`` for one county: which records change, how and when."""
    day = _DayPlanner(world, st, d, day_start, day_end)
    day.deletions()
    day.exits_and_relapses()
    n_corr, n_hh_corr = day.household_corrections()
    p = day.member_changes()
    day.person_corrections(p, n_corr - n_hh_corr)
    new_persons = day.registrations()
    day.births(new_persons)
    return day.plan()


class _DayPlanner:
    """One county's day being planned: the live records at the start of the day, the day's
    draws, and the changes collected so far."""

    def __init__(
        self, world: World, st: CountyState, d: int, day_start: datetime, day_end: datetime
    ) -> None:
        county = st.county
        code = county.code
        self.world, self.county, self.d, self.day_start = world, county, d, day_start
        self.rng = rng = Rng(world.seed, code, "day", d)
        self.frames = frames = st.frames
        self.share = share_of(code) / world._known_share
        self.year = day_start.astimezone(SHANGHAI).year
        self.ds, self.de = epoch_ms(day_start), epoch_ms(day_end)
        self.hh_all = hh_all = frames["household"]
        self.persons_all = persons_all = frames["person"]
        hh = hh_all.filter(pl.col("deleted_at").is_null()).with_columns(
            _i=pl.int_range(pl.len(), dtype=pl.UInt64)
        )
        self.hh = hh.with_columns(_u=rng.u("pick")).sort("_u").drop("_u", "_i")
        self.live_p = persons_all.filter(pl.col("deleted_at").is_null())
        self.used: list[pl.Series] = []
        self.upserts: dict[str, list[pl.DataFrame]] = {e: [] for e in ("household", "person")}
        self.deletes: dict[str, list[pl.DataFrame]] = {e: [] for e in ENTITY_NAMES}
        self.events: list[pl.DataFrame] = []

    def free(self) -> pl.Expr:
        """Households not changed yet today."""
        if not self.used:
            return pl.lit(True)
        return ~pl.col("household_no").is_in(pl.concat(self.used).implode())

    def event(self, kind: str, ts: pl.Series) -> None:
        self.events.append(pl.DataFrame({"kind": [kind] * len(ts), "ts": ts}))

    def how_many(self, kind: str) -> int:
        x = DAILY[kind] * self.world.scale * self.share
        return int(x) + (self.rng.py("n", kind) < x - int(x))

    def stamp(self, df: pl.DataFrame, name: str, bulk: bool = True) -> pl.DataFrame:
        """Timestamps within the day. Bulk imports commit 1-5 minutes after they start, and
        half of them run in the day's last five minutes (a clerk's end-of-day upload)."""
        rng, ds, de = self.rng, self.ds, self.de
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
        return df.with_columns(updated_at=from_ms(pl.col("_t")), visible_at=from_ms(v)).drop(
            "_bulk", "_late", "_ut", "_uv", "_t"
        )

    def deletions(self) -> None:
        """清退: erroneously registered households leave with everything hanging off them."""
        hh, frames, stamp, event = self.hh, self.frames, self.stamp, self.event
        how_many, used, deletes = self.how_many, self.used, self.deletes
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

    def exits_and_relapses(self) -> None:
        """Households that exit poverty, and exited ones that fall back."""
        clean, status, year, lines = _CLEAN, _STATUS, self.year, self.world._lines

        def income(low: float, spread: float, name: str) -> pl.Expr:
            """A multiple of the year's poverty line, between ``low`` and ``low + spread``."""
            line = lines.get(year, lines[max(lines)])
            return (line * (low + spread * self.rng.u(name))).round(2)

        self._status_change(
            clean & status.is_in(["not_exited", "pre_exit"]),
            "exited",
            "exit",
            poverty_status=pl.lit("exited"),
            exit_year=pl.lit(year, pl.Int32),
            income_per_capita=income(1.05, 0.6, "exit.inc"),
            housing_safe=pl.lit(True),
            water_safe=pl.lit(True),
        )
        self._status_change(
            clean & (status == "exited"),
            "relapsed",
            "relapse",
            poverty_status=pl.lit("relapsed"),
            relapse_year=pl.lit(year, pl.Int32),
            income_per_capita=income(0.5, 0.4, "rel.inc"),
        )

    def _status_change(self, eligible: pl.Expr, kind: str, stamp: str, **changes: pl.Expr) -> None:
        """Today's ``kind`` events: that many eligible households not changed yet today, stamped
        (``stamp`` names their random draws) and upserted with ``changes``."""
        households = self.hh.filter(eligible & self.free()).head(self.how_many(kind))
        changed = self.stamp(households, stamp)
        if changed.height:
            self.used.append(changed["household_no"])
            self.event(kind, changed["updated_at"])
            self.upserts["household"].append(changed.with_columns(**changes))

    def household_corrections(self) -> tuple[int, int]:
        """A new phone number or a re-surveyed income; returns the day's corrections and how
        many of them are households'."""
        rng, hh, stamp, free = self.rng, self.hh, self.stamp, self.free
        event, how_many, used, upserts = self.event, self.how_many, self.used, self.upserts
        clean, status = _CLEAN, _STATUS
        year, lines = self.year, self.world._lines
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
                .then(poverty_line(pl.col("exit_year"), lines) * (1.05 + 0.6 * uinc))
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
                    .then(phone_number(rng, "corr.phone"))
                    .otherwise(pl.col("phone")),
                    income_per_capita=pl.when(phone_fix)
                    .then(pl.col("income_per_capita"))
                    .otherwise(income),
                )
            )
        return n_corr, n_hh_corr

    def member_changes(self) -> pl.DataFrame:
        """Deaths and members who leave: never the head, never the only ill member of a household
        registered 因病. Returns the live members with their ages and household flags."""
        rng, hh, stamp, free = self.rng, self.hh, self.stamp, self.free
        event, how_many, used, upserts = self.event, self.how_many, self.used, self.upserts
        deletes = self.deletes
        live_p, day_start = self.live_p, self.day_start
        hh_info = hh.select(
            "household_no",
            "_flag",
            "poverty_attribute",
            _illc=(pl.col("main_cause") == "illness")
            | pl.col("other_causes").list.contains("illness"),
        )
        p = live_p.join(hh_info, on="household_no", maintain_order="left").with_columns(
            _age=age_years(pl.col("birth_date"), ts_lit(day_start)),
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
        return p

    def person_corrections(self, p: pl.DataFrame, n: int) -> None:
        """Work taken up or changed, or joining the serious-illness insurance."""
        rng, stamp, free, event = self.rng, self.stamp, self.free, self.event
        used, upserts = self.used, self.upserts
        pc = p.filter((pl.col("_flag") == 0) & free()).unique(
            "household_no", keep="first", maintain_order=True
        )
        pc = stamp(pc.head(n), "pcorr")
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

    def registrations(self) -> pl.DataFrame | None:
        """New registrations (identified this year, not exited); returns their members."""
        rng, stamp, event, how_many = self.rng, self.stamp, self.event, self.how_many
        upserts = self.upserts
        world, county, code = self.world, self.county, self.county.code
        d, hh_all = self.d, self.hh_all
        n_new = how_many("registered")
        new_persons = None
        if n_new:
            sk = pl.DataFrame({"_i": pl.int_range(n_new, dtype=pl.UInt64, eager=True)})
            attrs = list(CITY_FIGURES)
            weights = [max(world._households[code][a], 1) for a in attrs]
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
                village_code=households.village_choice(world, county, rng.u("reg.village")),
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
            reg_rng = Rng(world.seed, code, "day", d, "registration")
            new_hh, new_persons = households.make_households(
                world, county, reg_rng, sk, initial=False
            )

            def visible(df: pl.DataFrame) -> pl.DataFrame:
                return (
                    df.join(vis, on="household_no", maintain_order="left")
                    .with_columns(visible_at=pl.col("_vis"), _first_visible=pl.col("_vis"))
                    .drop("_vis")
                )

            upserts["household"].append(visible(new_hh))
            upserts["person"].append(visible(new_persons))
            event("registered", new_hh["updated_at"])
        return new_persons

    def births(self, new_persons: pl.DataFrame | None) -> None:
        """A child or grandchild of the head (not in 特困 households)."""
        heads = self.live_p.filter(pl.col("relation_to_head") == "head").select(
            "household_no",
            _surname=pl.col("name").str.slice(0, 1),
            _head_age=age_years(pl.col("birth_date"), ts_lit(self.day_start)),
            _eth="ethnicity",
        )
        top_seq = self.persons_all.group_by("household_no").agg(
            _top=pl.col("person_no").str.slice(16, 2).cast(pl.Int32).max()
        )
        b = (
            self.hh.filter(
                _CLEAN
                & (pl.col("poverty_attribute") != "tekun")
                & (pl.col("member_count") >= 2)
                & self.free()
            )
            .join(heads, on="household_no", maintain_order="left")
            .join(top_seq, on="household_no", maintain_order="left")
            .filter(pl.col("_top") < 99)
            .head(self.how_many("births"))
        )
        if b.height:
            b = self.stamp(b, "birth")
            self.event("births", b["updated_at"])
            self.upserts["household"].append(
                b.with_columns(member_count=pl.col("member_count") + 1).select(self.hh_all.columns)
            )
            baby = self._newborns(b)
            existing = self.persons_all["id_number"]
            if new_persons is not None:
                existing = pl.concat([existing, new_persons["id_number"]])
            baby = idcards.assign_ids(baby, idcards.SEQ_CLOCK, existing)
            self.upserts["person"].append(baby.with_columns(source_key=pl.col("person_no")))

    def _newborns(self, b: pl.DataFrame) -> pl.DataFrame:
        """One baby per birth household ``b``: the next person number, born the day the
        household was stamped, the head's child (the head under 50) or grandchild."""
        rng = self.rng
        male = rng.u("birth.sex") < 0.52
        young = pl.col("_head_age") < 50
        return b.with_columns(
            _male=male,
            person_no=pl.col("household_no") + (pl.col("_top") + 1).cast(pl.String).str.zfill(2),
            birth_date=beijing_date(pl.col("updated_at")),
        ).with_columns(
            name=pl.col("_surname")
            + given_name(pl.col("_male"), rng.u("birth.g1"), rng.u("birth.g2"), rng.u("birth.g3")),
            sex=pl.when(pl.col("_male")).then(pl.lit("male")).otherwise(pl.lit("female")),
            relation_to_head=pl.when(young)
            .then(pl.when(pl.col("_male")).then(pl.lit("son")).otherwise(pl.lit("daughter")))
            .otherwise(
                pl.when(pl.col("_male")).then(pl.lit("grandson")).otherwise(pl.lit("granddaughter"))
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
            _addr=pl.lit(self.county.code),
            source_key=pl.col("person_no").alias("source_key"),
            deleted_at=pl.lit(None, TS),
            render_hint=pl.lit(None, pl.String),
            _attr=pl.col("poverty_attribute"),
            _first_visible=pl.col("visible_at"),
        )

    def plan(self) -> Plan:
        """The day's changes, each entity's upserts typed like its stored frame."""
        frames = self.frames

        def stack(parts: list[pl.DataFrame], entity: str) -> pl.DataFrame:
            cols = frames[entity].columns
            schema = dict(frames[entity].schema)
            return pl.concat([x.select(cols).cast(schema) for x in parts])

        return Plan(
            day=self.d,
            upserts={e: stack(v, e) for e, v in self.upserts.items() if v},
            deletes={e: pl.concat(v) for e, v in self.deletes.items() if v},
            events=pl.concat(self.events)
            if self.events
            else pl.DataFrame(schema={"kind": pl.String, "ts": TS}),
        )
