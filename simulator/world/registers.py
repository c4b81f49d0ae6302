"""World generation, the other registers: assistance measures, poverty loans, aid projects,
aid cadres and the household-cadre pairs, each generated from the county's households and
villages with its own streams of draws."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from seeds.registry import County
from simulator import idcards
from simulator.names import given_name, surname
from simulator.names import weighted_choice as choice
from simulator.world.base import (
    SHANGHAI,
    Rng,
    after_day,
    date_days,
    from_ms,
    phone_number,
    rand_ms,
    with_meta,
)

if TYPE_CHECKING:
    from simulator.world.model import World


def measures(
    world: World, county: County, rng: Rng, households: pl.DataFrame, t0: int, t1: int
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
        amount=pl.when(rng.u("m.null") < 0.08).then(None).otherwise((amount / 10).round(0) * 10),
        description=pl.format(
            "{}年{}", pl.col("year"), cat.replace_strict(labels, return_dtype=pl.String)
        ),
        # written in or after the measure's year (and after the register was set up)
        updated_at=from_ms(
            rand_ms(rng, "m.ts", after_day(pl.date(pl.col("year"), 1, 1), t0, t1), t1)
        ),
    )
    return with_meta(m, "measure_id", "measure")


def loans(
    world: World, county: County, rng: Rng, households: pl.DataFrame, t0: int, t1: int
) -> pl.DataFrame:
    """Subsidised poverty loans (扶贫小额信贷) for about 15% of households."""
    start_days = date_days(world.start.astimezone(SHANGHAI).date())
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
        .then(choice(rng.u("l.st"), ["repaid", "overdue", "written_off"], [80, 15, 5], pl.String()))
        .otherwise(choice(rng.u("l.st2"), ["active", "overdue"], [93, 7], pl.String())),
        loan_id=pl.lit(f"XD{county.code}")
        + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(7),
        updated_at=from_ms(rand_ms(rng, "l.ts", after_day(pl.col("issued_on"), t0, t1), t1)),
    )
    return with_meta(loans, "loan_id", "loan")


def projects_frame(world: World, county: County, rng: Rng, t0: int, t1: int) -> pl.DataFrame:
    """Aid projects: mostly in poor villages, some county-wide (no village)."""
    n = world._projects[county.code]
    region = world._regions[county.code]
    names = dict(zip(region["code"], region["name"], strict=True))
    cats, labels = list(PROJECT_CATEGORIES), list(PROJECT_CATEGORIES.values())
    start_days = date_days(world.start.astimezone(SHANGHAI).date())
    df = pl.DataFrame({"_i": pl.int_range(n, dtype=pl.UInt64, eager=True)})
    df = df.with_columns(
        village_code=_project_village(region, rng),
        category=choice(rng.u("pj.cat"), cats, [20, 12, 5, 10, 10, 25, 5, 5, 4, 4], pl.String()),
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
        updated_at=from_ms(rand_ms(rng, "pj.ts", t0, t1)),
    )
    return with_meta(df, "project_id", "project")


#: Aid project categories and their names.
PROJECT_CATEGORIES = {
    "road": "村级道路", "water": "农村饮水安全", "power": "电力保障", "housing": "危房改造",
    "relocation": "易地扶贫搬迁", "industry": "产业发展", "education": "教育",
    "health": "医疗卫生", "culture": "文化", "network": "网络通信",
}  # fmt: skip


def _project_village(region: pl.DataFrame, rng: Rng) -> pl.Expr:
    """85% in a poor village, 5% in another village, the rest county-wide (no village)."""
    villages = region.filter(pl.col("level") == "village")
    poor = villages.filter(pl.col("is_poor_village"))["code"].to_list()
    other = villages.filter(~pl.col("is_poor_village") & ~pl.col("is_statistical_unit"))[
        "code"
    ].to_list()
    uv = rng.u("pj.where")
    vil_poor = (
        choice(rng.u("pj.v"), poor, [1] * len(poor), pl.String())
        if poor
        else pl.lit(None, pl.String)
    )
    vil_other = choice(rng.u("pj.v2"), other, [1] * len(other), pl.String()) if other else vil_poor
    return pl.when(uv < 0.85).then(vil_poor).when(uv < 0.9).then(vil_other)


def cadres_frame(world: World, county: County, rng: Rng, t0: int, t1: int) -> pl.DataFrame:
    """Aid cadres (帮扶责任人): officials of the city, the county and the towns, first
    secretaries of the poor villages, and a few from the paired province (Jiangsu)."""
    n = world._cadres[county.code]
    n_first = world._regions[county.code]["is_poor_village"].sum()
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
        birth_date=(date_days(date(1958, 1, 1)) + rng.int("c.birth", 0, 35 * 365))
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
        phone=phone_number(rng, "c.phone"),
        # One first secretary per poor village; they and some others live in the village.
        is_first_secretary=rank < n_first,
        is_resident_team=(rank < n_first) | (rng.u("c.team") < 0.1),
        cadre_id=pl.lit(f"BFR{county.code}") + (rank + 1).cast(pl.String).str.zfill(6),
        _addr=idcards.address_code(
            county.code, pl.col("birth_date") < date(2001, 1, 1), rng.u("c.addr")
        ),
        updated_at=from_ms(rand_ms(rng, "c.ts", t0, t1)),
    )
    df = idcards.assign_ids(df, idcards.SEQ_CADRE)
    return with_meta(df, "cadre_id", "cadre")


def pairs_frame(
    world: World,
    county: County,
    rng: Rng,
    households: pl.DataFrame,
    cadres: pl.DataFrame,
    t0: int,
    t1: int,
) -> pl.DataFrame:
    """Household-cadre pairs (帮扶关系): one cadre for each of round(72800 * s) households."""
    n = min(world._pairs[county.code], households.height)
    if cadres.height == 0:
        n = 0
    cadre_ids = cadres["cadre_id"].to_list()
    start_days = date_days(world.start.astimezone(SHANGHAI).date())
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
            updated_at=from_ms(rand_ms(rng, "hc.ts", after_day(pl.col("since"), t0, t1), t1)),
        )
        .with_columns(source_key=pl.col("household_no") + ":" + pl.col("cadre_id"))
    )
    df = df.sort("source_key")
    return with_meta(df, "source_key", "household_cadre")
