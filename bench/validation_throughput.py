"""Validation throughput: households + persons per second through ``validate_county``.

Generates canonical frames itself (vectorised polars, no simulator, no HTTP), at the city's
scale by default: 161k households and ~490k persons over 701 villages, once clean and once with
a share of rows carrying a defect, and prints rows per second for each.

    .venv/bin/python bench/validation_throughput.py [--households 161200] [--defects 0.02]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas import id_number as idn
from schemas.columns import conform
from schemas.validate import ValidationContext, validate_county

COUNTY = "611002"
SYNCED_AT = datetime(2016, 7, 1, 2, 0, tzinfo=UTC)


def _staging(df: pl.DataFrame, key: str, page: str) -> pl.DataFrame:
    return df.with_columns(
        pl.col(key).alias("source_key"),
        pl.lit(SYNCED_AT).alias("source_updated_at"),
        pl.format(page + "#{}", pl.int_range(pl.len())).alias("raw_ref"),
        pl.lit(
            [], pl.List(pl.Struct({"rule": pl.String, "column": pl.String, "value": pl.String}))
        ).alias("parse_errors"),
    )


def synthetic_frames(n_households: int, villages: int = 701) -> dict[str, pl.DataFrame]:
    """Clean canonical region, household and person frames (about 3.04 persons a household)."""
    region = _regions(villages)
    hh = _households(n_households, region["code"], villages)
    person = _persons(hh)
    return {
        "region": conform("region", _staging(region, "code", "bench:regions")),
        "household": conform("household", _staging(hh, "household_no", "bench:households")),
        "person": conform("person", _staging(person, "person_no", "bench:members")),
    }


def _regions(villages: int) -> pl.DataFrame:
    """``villages`` poor villages spread over 98 towns."""
    towns = 98
    return pl.DataFrame({"i": range(villages)}).select(
        pl.format(
            "{}{}{}",
            pl.lit(COUNTY),
            (100 + pl.col("i") % towns).cast(pl.String),
            (200 + pl.col("i") // towns).cast(pl.String),
        ).alias("code"),
        pl.lit("village").alias("level"),
        pl.format("村{}", pl.col("i")).alias("name"),
        pl.format("{}{}", pl.lit(COUNTY), (100 + pl.col("i") % towns).cast(pl.String)).alias(
            "parent_code"
        ),
        pl.lit(True).alias("is_poor_village"),
        pl.lit(None, pl.Int32).alias("poor_village_exit_year"),
        pl.lit(False).alias("is_statistical_unit"),
    )


def _households(n_households: int, codes: pl.Series, villages: int) -> pl.DataFrame:
    """Households spread evenly over the villages, a third of them exited."""
    i = pl.col("i")
    # sizes 1..5 with a mean near the city's 3.04 persons per household
    size = pl.when(i % 25 == 0).then(1).otherwise(2 + (i * 7) % 3 + (i % 11 == 0).cast(pl.Int32))
    exited = i % 3 == 0
    attribute = (
        pl.when(i % 10 < 7)
        .then(pl.lit("general"))
        .when(i % 10 < 9)
        .then(pl.lit("dibao"))
        .otherwise(pl.lit("tekun"))
    )
    return (
        pl.DataFrame({"i": range(n_households)})
        .with_columns(
            pl.lit(codes).gather(i % villages).alias("village_code"),
            size.cast(pl.Int32).alias("member_count"),
        )
        .with_columns(
            pl.format("{}{}", pl.col("village_code"), (1000 + i // villages).cast(pl.String))
            .str.slice(0, 16)
            .alias("household_no"),
        )
        .select(
            "household_no",
            pl.col("village_code").str.slice(0, 9).alias("town_code"),
            "village_code",
            (pl.col("household_no") + "01").alias("head_person_no"),
            attribute.alias("poverty_attribute"),
            pl.when(exited)
            .then(pl.lit("exited"))
            .otherwise(pl.lit("not_exited"))
            .alias("poverty_status"),
            pl.when(i % 4 == 0)
            .then(pl.lit("illness"))
            .otherwise(pl.lit("lack_capital"))
            .alias("main_cause"),
            pl.lit(None, pl.String).alias("main_cause_label"),
            pl.when(i % 5 == 0)
            .then(pl.lit(["lack_skills"]))
            .otherwise(pl.lit([], pl.List(pl.String)))
            .alias("other_causes"),
            (2014 + i % 2).cast(pl.Int32).alias("identified_year"),
            pl.when(exited).then(2016).cast(pl.Int32).alias("exit_year"),
            pl.lit(None, pl.Int32).alias("relapse_year"),
            (3200.0 + (i % 1000)).alias("income_per_capita"),
            "member_count",
            pl.lit(True).alias("housing_safe"),
            pl.lit(True).alias("water_safe"),
            pl.lit("13800000000").alias("phone"),
        )
    )


def _persons(hh: pl.DataFrame) -> pl.DataFrame:
    """The households' members, with valid unique ID numbers and rules that hold."""
    # one row per member: member j of household h
    p = (
        hh.select("household_no", "member_count", "main_cause", "poverty_attribute")
        .with_columns(pl.int_ranges(0, pl.col("member_count")).alias("j"))
        .explode("j")
        .with_row_index("k")
    )
    j, k = pl.col("j"), pl.col("k").cast(pl.Int64)
    male = (j == 0) | ((j >= 2) & (k % 2 == 0))
    # (birth day, order code) is unique per person for up to 5M persons, so ID numbers are too:
    # couples born 1940-1967, children 1985-2012
    day = pl.duration(days=k % 10_000)
    birth = (
        pl.when(j <= 1)
        .then(pl.lit(date(1940, 1, 1)) + day)
        .otherwise(pl.lit(date(1985, 1, 1)) + day)
    )
    order = (k // 10_000 % 500) * 2 + male.cast(pl.Int64)
    first17 = pl.format(
        "{}{}{}",
        pl.lit(COUNTY),
        birth.dt.strftime("%Y%m%d"),
        order.cast(pl.String).str.zfill(3),
    )
    relation = (
        pl.when(j == 0)
        .then(pl.lit("head"))
        .when(j == 1)
        .then(pl.lit("spouse"))
        .when(male)
        .then(pl.lit("son"))
        .otherwise(pl.lit("daughter"))
    )
    ill = (pl.col("main_cause") == "illness") & (j == 0)
    return p.with_columns(first17.alias("_f17"), birth.alias("birth_date")).select(
        pl.format("{}{}", pl.col("household_no"), (j + 1).cast(pl.String).str.zfill(2)).alias(
            "person_no"
        ),
        "household_no",
        pl.format("姓名{}", k).alias("name"),
        (pl.col("_f17") + idn.check_digit_expr(pl.col("_f17"))).alias("id_number"),
        pl.lit(False).alias("id_upgraded"),
        pl.when(male).then(pl.lit("male")).otherwise(pl.lit("female")).alias("sex"),
        "birth_date",
        relation.alias("relation_to_head"),
        pl.lit("01").alias("ethnicity"),
        pl.lit("junior").alias("education"),
        pl.lit("not_in_school").alias("school_status"),
        pl.when(ill).then(pl.lit(["chronic"])).otherwise(pl.lit(["healthy"])).alias("health"),
        pl.when(pl.col("poverty_attribute") == "tekun")
        .then(pl.lit("lost"))
        .otherwise(pl.lit("ordinary"))
        .alias("labor_skill"),
        pl.lit("in_county").alias("work_status"),
        (k % 13).cast(pl.Int32).alias("work_months"),
        pl.lit(True).alias("serious_illness_insured"),
    )


def with_defects(frames: dict[str, pl.DataFrame], rate: float) -> dict[str, pl.DataFrame]:
    """Damage about ``rate`` of households and persons, spread over several rules."""
    step = max(int(1 / rate), 1) if rate > 0 else 0
    if not step:
        return frames
    hh = frames["household"].with_row_index("_i")
    i = pl.col("_i")
    hit = i % step == 0
    kind = (i // step) % 4
    hh = hh.with_columns(
        pl.when(hit & (kind == 0))
        .then(pl.lit("因病返贫"))
        .otherwise("main_cause")
        .alias("main_cause"),
        pl.when(hit & (kind == 1))
        .then(-1.0)
        .otherwise("income_per_capita")
        .alias("income_per_capita"),
        pl.when(hit & (kind == 2))
        .then(pl.lit(2010, pl.Int32))
        .otherwise("exit_year")
        .alias("exit_year"),
        pl.when(hit & (kind == 3))
        .then(pl.lit(9, pl.Int32))
        .otherwise("member_count")
        .alias("member_count"),
    ).drop("_i")
    p = frames["person"].with_row_index("_i")
    hit = i % step == 1
    kind = (i // step) % 4
    bad_id = pl.col("id_number").str.slice(0, 17) + pl.lit("0")
    p = p.with_columns(
        pl.when(hit & (kind == 0)).then(bad_id).otherwise("id_number").alias("id_number"),
        pl.when(hit & (kind == 1))
        .then(pl.lit(14, pl.Int32))
        .otherwise("work_months")
        .alias("work_months"),
        pl.when(hit & (kind == 2))
        .then(pl.lit("之子"))
        .otherwise("relation_to_head")
        .alias("relation_to_head"),
        pl.when(hit & (kind == 3)).then(pl.lit(None, pl.String)).otherwise("name").alias("name"),
    ).drop("_i")
    return {**frames, "household": hh, "person": p}


def run(n_households: int, defect_rate: float, repeat: int = 3) -> None:
    clean = synthetic_frames(n_households)
    context = ValidationContext(as_of=date(2016, 7, 1))
    for label, frames in (
        ("clean", clean),
        (f"{defect_rate:.0%} defects", with_defects(clean, defect_rate)),
    ):
        rows = frames["household"].height + frames["person"].height
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            result = validate_county(frames, context)
            best = min(best, time.perf_counter() - started)
        rejected = sum(r.rejects["source_key"].n_unique() for r in result.values())
        findings = sum(r.findings.height for r in result.values())
        conflicts = result["person"].conflicts.height
        print(
            f"{label:>12}: {frames['household'].height:,} households + "
            f"{frames['person'].height:,} persons in {best:.2f} s = {rows / best:,.0f} rows/s "
            f"({rejected:,} records rejected, {findings:,} findings, {conflicts:,} conflicts)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=161_200)
    parser.add_argument("--defects", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run(args.households, args.defects, args.repeat)


if __name__ == "__main__":
    main()
