"""World generation, households and their members: the register's skeleton (attribute, size,
village, number), then each household's status, causes and income, then its members with ages,
health, schooling and work that fit each other and every rule of the catalogue."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from seeds.registry import County
from simulator import idcards
from simulator.names import given_name, surname
from simulator.names import weighted_choice as choice
from simulator.world.base import (
    CAUSE_WEIGHTS,
    CAUSES,
    CITY_FIGURES,
    SHANGHAI,
    SIZE_WEIGHTS,
    TEKUN_CAUSE_WEIGHTS,
    TS,
    Rng,
    age_years,
    beijing_date,
    date_days,
    epoch_ms,
    exact_sizes,
    finish_frame,
    from_ms,
    phone_number,
    poverty_line,
    rand_ms,
)

if TYPE_CHECKING:
    from simulator.world.model import World


def skeleton(world: World, county: County, rng: Rng) -> pl.DataFrame:
    """Households of the county: attribute, size, village and household number."""
    code = county.code
    parts = []
    for attr in CITY_FIGURES:
        counts = exact_sizes(
            world._households[code][attr], world._persons[code][attr], SIZE_WEIGHTS[attr]
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
    sk = sk.with_columns(village_code=village_choice(world, county, rng.u("hh.village")))
    # Number households within their village in a random order: "<village><0001…>".
    sk = sk.sort(rng.u("hh.order"))
    seq = pl.int_range(1, pl.len() + 1).over("village_code")
    sk = sk.with_columns(
        household_no=pl.col("village_code") + seq.cast(pl.String).str.zfill(4),
        town_code=pl.col("village_code").str.slice(0, 9),
        size=pl.col("size").cast(pl.Int32),
    ).sort("household_no")
    return sk.with_columns(_i=pl.int_range(pl.len(), dtype=pl.UInt64))


def village_weights(world: World, county: County) -> tuple[list[str], list[float]]:
    """Villages that hold households and their weights: ~70% of households in poor villages."""
    region = world._regions[county.code].filter(
        (pl.col("level") == "village") & ~pl.col("is_statistical_unit")
    )
    poor = region.filter(pl.col("is_poor_village"))["code"].to_list()
    other = region.filter(~pl.col("is_poor_village"))["code"].to_list()
    rnd = Rng(world.seed, county.code, "villages")
    codes, weights = [], []
    for group, share in ((poor, 0.7), (other, 0.3)):
        if not group:
            continue
        raw = [0.4 + rnd.py(c) for c in group]  # villages differ in size
        total = sum(raw)
        codes += group
        weights += [share * w / total for w in raw]
    return codes, weights


def village_choice(world: World, county: County, u: pl.Expr) -> pl.Expr:
    codes, weights = village_weights(world, county)
    return choice(u, codes, weights, pl.String())


def make_households(
    world: World, county: County, rng: Rng, sk: pl.DataFrame, *, initial: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Households and their members from a skeleton (``_i``, household_no, village_code,
    town_code, poverty_attribute, size, updated_at). ``initial``: the mid-2016 register with
    its mix of statuses; otherwise new registrations (not exited, identified this year).

    Every rule of the catalogue holds for what this returns."""
    hh = _statuses(sk, rng, initial=initial)
    hh = _causes_and_income(world, hh, rng)
    persons = make_persons(world, county, rng, hh, initial=initial)
    persons = _someone_ill_where_illness_is_a_cause(hh, persons)
    hh = hh.with_columns(
        source_key=pl.col("household_no"),
        visible_at=pl.col("updated_at"),
        deleted_at=pl.lit(None, TS),
        _first_visible=pl.col("updated_at"),
        _flag=pl.lit(0, pl.Int8),
    )
    return (
        finish_frame(hh, "household", ["_first_visible", "_flag"]),
        finish_frame(persons, "person", ["render_hint", "_attr", "_first_visible"]),
    )


def _statuses(sk: pl.DataFrame, rng: Rng, *, initial: bool) -> pl.DataFrame:
    """Poverty status and the identification, exit and relapse years."""
    status = pl.col("poverty_status")

    def u(name: str, index: str = "_i") -> pl.Expr:
        return rng.u("hh." + name, index)

    event_year = _event_year()
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
    return hh


def _event_year() -> pl.Expr:
    return pl.col("updated_at").dt.convert_time_zone("Asia/Shanghai").dt.year()


def _causes_and_income(world: World, hh: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Main and other causes, income for the status, safety of housing and water, phone."""
    lines = world._lines
    tekun = pl.col("poverty_attribute") == "tekun"
    status = pl.col("poverty_status")
    event_year = _event_year()

    def u(name: str, index: str = "_i") -> pl.Expr:
        return rng.u("hh." + name, index)

    hh = hh.with_columns(
        main_cause=pl.when(tekun)
        .then(choice(u("cause_t"), CAUSES, TEKUN_CAUSE_WEIGHTS, pl.String()))
        .otherwise(choice(u("cause"), CAUSES, CAUSE_WEIGHTS, pl.String())),
        _n_other=choice(u("n_other"), [0, 1, 2], [30, 45, 25], pl.Int32()),
        _c1=choice(u("c1"), CAUSES[:-1], [1] * 11, pl.String()),
        _c2=choice(u("c2"), CAUSES[:-1], [1] * 11, pl.String()),
    )
    main = pl.col("main_cause")
    line_now = poverty_line(event_year.cast(pl.Int32), lines)
    line_exit = poverty_line(pl.col("exit_year"), lines)
    income = (
        pl.when(status == "exited")
        .then(line_exit * (1.05 + 0.6 * u("inc")))
        .when(status == "pre_exit")
        .then(line_now * (0.85 + 0.25 * u("inc")))
        .when(status == "relapsed")
        .then(line_now * (0.5 + 0.4 * u("inc")))
        .otherwise(line_now * (0.45 + 0.5 * u("inc")))
    )
    return hh.with_columns(
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
        phone=phone_number(rng, "hh.phone"),
        head_person_no=pl.col("household_no") + "01",
    )


def _someone_ill_where_illness_is_a_cause(hh: pl.DataFrame, persons: pl.DataFrame) -> pl.DataFrame:
    main = pl.col("main_cause")
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
    return persons.with_columns(
        health=pl.when(fix & pl.col("health").list.contains("healthy"))
        .then(pl.concat_list(pl.lit("chronic")))
        .when(fix)
        .then(pl.col("health").list.concat(pl.concat_list(pl.lit("chronic"))))
        .otherwise(pl.col("health"))
    )


def make_persons(
    world: World, county: County, rng: Rng, hh: pl.DataFrame, *, initial: bool
) -> pl.DataFrame:
    """Members of the households ``hh``: one head, a spouse, children, sometimes parents or
    grandchildren; ages, health, labour and schooling that fit each other and every rule."""
    p = _members_and_roles(hh, rng)
    p = _relations_and_birth_dates(world, p, rng, initial=initial)
    p = _schooling_and_health(p, rng)
    p = _labour_work_names(county, p, rng)
    base = idcards.SEQ_INITIAL if initial else idcards.SEQ_CLOCK
    existing = None
    if not initial:
        existing = world._states[county.code].frames["person"]["id_number"]
    p = idcards.assign_ids(p, base, existing)
    return p.with_columns(
        source_key=pl.col("person_no"),
        visible_at=pl.col("updated_at"),
        deleted_at=pl.lit(None, TS),
        render_hint=pl.lit(None, pl.String),
        _attr=pl.col("poverty_attribute"),
        _first_visible=pl.col("updated_at"),
    )


def _members_and_roles(hh: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """One row per member: the head's age and sex, each member's role in the household."""
    tekun = pl.col("poverty_attribute") == "tekun"

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
            pl.when(u("ht", "_hi") < 0.7).then(60 + 32 * tri).otherwise(20 + 39 * u("ha3", "_hi"))
        )
        .otherwise(26 + 56 * tri),
        _head_male=u("hs", "_hi") < pl.when(tekun).then(0.65).otherwise(0.85),
    )
    pos, size, ha = pl.col("seq"), pl.col("size"), pl.col("_ha")
    p = p.with_columns(
        _role=pl.when(pos == 1)
        .then(pl.lit("head"))
        .when((pos == 2) & (ha >= 22) & (u("sp", "_hi") < pl.when(tekun).then(0.6).otherwise(0.82)))
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
    return p


def _relations_and_birth_dates(
    world: World, p: pl.DataFrame, rng: Rng, *, initial: bool
) -> pl.DataFrame:
    """Relation to the head, birth date from an age that fits the role, and (in the initial
    register) when the member's record was written."""
    role, ha = pl.col("_role"), pl.col("_ha")

    def u(name: str, index: str = "_i") -> pl.Expr:
        return rng.u("p." + name, index)

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
                pl.when(ext).then(pl.lit("granddaughter_ext")).otherwise(pl.lit("granddaughter"))
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
    ref_days = beijing_date(pl.col("updated_at")).cast(pl.Int32)
    if initial:
        ref_days = pl.lit(date_days(world.start.astimezone(SHANGHAI).date()))
    p = p.with_columns(
        relation_to_head=relation,
        sex=pl.when(male).then(pl.lit("male")).otherwise(pl.lit("female")),
        birth_date=(ref_days - (age * 365.25).floor().cast(pl.Int32)).cast(pl.Int32).cast(pl.Date),
    )
    if initial:
        # A member's record was written after the household's, and after they were born.
        t1 = epoch_ms(world.start) - 3_600_000
        t0 = t1 - 300 * 86_400_000
        birth_ms = pl.col("birth_date").cast(pl.Int64) * 86_400_000
        lo = pl.max_horizontal(pl.lit(t0), birth_ms + 60 * 86_400_000)
        p = p.with_columns(updated_at=from_ms(rand_ms(rng, "p.ts", lo, pl.lit(t1))))
    return p


def _schooling_and_health(p: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Age at the record's time, schooling, education and health that fit the age."""

    def u(name: str, index: str = "_i") -> pl.Expr:
        return rng.u("p." + name, index)

    a = age_years(pl.col("birth_date"), pl.col("updated_at"))
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
            choice(ue, ["illiterate", "primary", "junior", "senior"], [35, 40, 20, 5], pl.String())
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
        pl.when(u("h_chr") < pl.when(old).then(0.3).when(a >= 40).then(0.12).otherwise(0.03)).then(
            pl.lit("chronic")
        ),
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
    return p


def _labour_work_names(county: County, p: pl.DataFrame, rng: Rng) -> pl.DataFrame:
    """Labour ability (never able-bodied in a 特困 household), work, ethnicity, name, number."""
    tekun = pl.col("poverty_attribute") == "tekun"
    role, male, a = pl.col("_role"), pl.col("_male"), pl.col("_age")

    def u(name: str, index: str = "_i") -> pl.Expr:
        return rng.u("p." + name, index)

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
        pl.when(tekun & labor.is_in(["ordinary", "skilled"])).then(pl.lit("weak")).otherwise(labor)
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
    return p.with_columns(
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
        work_months=pl.when(working).then(rng.int("p.months", 3, 12)).otherwise(0).cast(pl.Int32),
        serious_illness_insured=u("insured") < 0.93,
        ethnicity=choice(u("eth"), ["01", "03", "15", "06"], [995, 3, 1, 1], pl.String()),
        name=pl.when(same_surname).then(surname(u("sur", "_hi"))).otherwise(surname(u("own")))
        + given_name(male, u("g1"), u("g2"), u("g3")),
        person_no=pl.col("household_no") + pl.col("seq").cast(pl.String).str.zfill(2),
        id_upgraded=pl.lit(False),
        _addr=idcards.address_code(county.code, pl.col("birth_date") < date(2001, 1, 1), u("addr")),
    )
