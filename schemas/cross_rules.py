"""The cross-entity reject rules (parents before children), the findings on accepted rows,
and ID-number conflicts."""

from __future__ import annotations

from datetime import date

import polars as pl

from schemas import id_number as idn
from schemas.columns import ENTITIES
from schemas.failures import (
    _age,
    _empty_failures,
    _failures,
    _key_set,
    _reference_date,
    _union,
)
from schemas.validation_context import (
    ABLE_BODIED_AGES,
    ABLE_LABOR,
    CONFLICT_SCHEMA,
    FEMALE_RELATIONS,
    ILL,
    MALE_RELATIONS,
    MEMBER_COLUMNS,
    SCHOOL_AGE_BANDS,
    ValidationContext,
)

# ----------------------------------------------------------------------------------------------
# Cross-entity reject rules.


def _members(frames: dict[str, pl.DataFrame], ctx: ValidationContext) -> pl.DataFrame | None:
    """Every member the batch delivered (rejected or not) plus, for incremental batches, the
    warehouse's members of the same households that the batch did not resend."""
    batch, existing = frames.get("person"), ctx.existing_members
    if batch is not None and "person" in ctx.full_listing:
        existing = None  # a full listing delivers every live member
    if batch is None and existing is None:
        return None
    types = ENTITIES["person"]

    def shape(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(
            (pl.col(c) if c in df.columns else pl.lit(None)).cast(types[c]).alias(c)
            for c in MEMBER_COLUMNS
        )

    parts = []
    if batch is not None:
        parts.append(shape(batch))
    if existing is not None:
        existing = shape(existing)
        if batch is not None:
            existing = existing.join(batch.select("person_no"), on="person_no", how="anti")
        parts.append(existing)
    return pl.concat(parts)


def _household_member_facts(
    households: pl.DataFrame, members: pl.DataFrame, as_of: date | None
) -> pl.DataFrame:
    """Per household of the batch: member count, head count, anyone ill, an able-bodied member."""
    ref = households.select("household_no", _reference_date(as_of).alias("_ref")).unique(
        "household_no", keep="first"
    )
    m = members.join(ref, on="household_no", how="inner").with_columns(
        _age(pl.col("birth_date"), pl.col("_ref")).alias("_age")
    )
    health = pl.col("health")
    healthy = health.list.contains("healthy") & (health.list.n_unique() == 1)
    lo, hi = ABLE_BODIED_AGES
    able = (
        pl.col("_age").is_between(lo, hi)
        & pl.col("labor_skill").is_in(ABLE_LABOR)
        & healthy.fill_null(False)
    ).fill_null(False)
    facts = m.group_by("household_no").agg(
        pl.len().cast(pl.Int32).alias("_members"),
        (pl.col("relation_to_head") == "head").sum().cast(pl.Int32).alias("_heads"),
        health.list.eval(pl.element().is_in(ILL)).list.any().any().alias("_any_ill"),
        # the first able-bodied member, described after aggregation (few households have one)
        pl.col("person_no").filter(able).first().alias("_able_no"),
        pl.col("_age").filter(able).first().alias("_able_age"),
        pl.col("labor_skill").filter(able).first().alias("_able_skill"),
    )
    facts = facts.with_columns(
        pl.format(
            "member {} aged {}, {} labour, healthy", "_able_no", "_able_age", "_able_skill"
        ).alias("_able")
    ).drop("_able_no", "_able_age", "_able_skill")
    return (
        ref.select("household_no")
        .join(facts, on="household_no", how="left")
        .with_columns(
            pl.col("_members").fill_null(0),
            pl.col("_heads").fill_null(0),
            pl.col("_any_ill").fill_null(False),
        )
    )


def _orphans(
    df: pl.DataFrame, column: str, known: pl.Series | None, rule: str, rejected: pl.Series | None
) -> pl.DataFrame:
    """Rows whose ``column`` is neither a known key nor (when given) a key rejected here."""
    if known is None:
        return _empty_failures()
    key = pl.col(column)
    mask = key.is_not_null() & ~key.is_in(known.implode())
    if rejected is not None:
        mask = mask & ~key.is_in(rejected.implode())
    return _failures(df, mask, rule, column)


def _parent_rejected(df: pl.DataFrame, rejected_households: pl.DataFrame) -> pl.DataFrame:
    """Children of households rejected in this sync; the detail names the household's rules."""
    if rejected_households.is_empty():
        return _empty_failures()
    hit = df.select("_row", "household_no").join(rejected_households, on="household_no")
    return _failures(hit, pl.lit(True), "parent_rejected", "household_no", detail=pl.col("_rules"))


# ----------------------------------------------------------------------------------------------
# Findings (on accepted rows only).


def _household_findings(
    accepted: pl.DataFrame, facts: pl.DataFrame | None, ctx: ValidationContext
) -> list[pl.DataFrame]:
    status_exited = pl.col("poverty_status") == "exited"
    line = pl.col("exit_year").replace_strict(
        ctx.poverty_lines, default=None, return_dtype=pl.Float64
    )
    out = [
        _failures(
            accepted,
            status_exited & (pl.col("income_per_capita") < line),
            "exit_below_poverty_line",
            "income_per_capita",
            detail=pl.format("{} of exit year {}", line, pl.col("exit_year")),
        ),
        _failures(
            accepted, status_exited & ~pl.col("housing_safe"), "exit_unsafe_housing", "housing_safe"
        ),
        _failures(
            accepted, status_exited & ~pl.col("water_safe"), "exit_unsafe_water", "water_safe"
        ),
    ]
    if facts is None:
        return out
    hh = accepted.join(facts, on="household_no", how="left")
    main_ill = pl.col("main_cause") == "illness"
    other_ill = pl.col("other_causes").list.contains("illness").fill_null(False)
    nobody_ill = ~pl.col("_any_ill").fill_null(False)
    out += [
        _failures(
            hh,
            pl.col("member_count") != pl.col("_members"),
            "member_count_mismatch",
            "member_count",
            detail=pl.col("_members"),
        ),
        _failures(hh, main_ill & nobody_ill, "illness_cause_nobody_ill", "main_cause"),
        _failures(
            hh,
            ~main_ill & other_ill & nobody_ill,
            "illness_cause_nobody_ill",
            "other_causes",
            value=pl.lit("illness"),
        ),
        _failures(
            hh,
            (pl.col("poverty_attribute") == "tekun") & pl.col("_able").is_not_null(),
            "tekun_able_bodied_member",
            "poverty_attribute",
            detail=pl.col("_able"),
        ),
    ]
    return out


def _person_findings(accepted: pl.DataFrame, ctx: ValidationContext) -> list[pl.DataFrame]:
    id_ = pl.col("id_number")
    birth = pl.col("birth_date").fill_null(idn.birth_date(id_))
    age = _age(birth, _reference_date(ctx.as_of))
    status = pl.col("school_status")
    lo = status.replace_strict({s: b[0] for s, b in SCHOOL_AGE_BANDS.items()}, default=None)
    hi = status.replace_strict({s: b[1] for s, b in SCHOOL_AGE_BANDS.items()}, default=None)
    relation, sex = pl.col("relation_to_head"), pl.col("sex")
    implied_sex = (
        pl.when(relation.is_in(MALE_RELATIONS))
        .then(pl.lit("male"))
        .when(relation.is_in(FEMALE_RELATIONS))
        .then(pl.lit("female"))
    )
    return [
        _failures(
            accepted,
            id_.is_not_null() & ~idn.address_in_shangluo(id_, birth),
            "id_number_outside_shangluo",
            "id_number",
            value=idn.address_code(id_),
        ),
        _failures(
            accepted,
            lo.is_not_null() & ~age.is_between(lo, hi),
            "school_age_implausible",
            "school_status",
            detail=pl.format("{} (expected {}-{})", age, lo, hi),
        ),
        _failures(
            accepted,
            sex.is_in(["male", "female"]) & (implied_sex != sex),
            "relation_sex_inconsistent",
            "relation_to_head",
            detail=sex,
        ),
    ]


def _unknown_divisions(regions: pl.DataFrame, ctx: ValidationContext) -> pl.DataFrame:
    """Town and village rows whose code is in no division list (never created silently)."""
    known = _union(_key_set(ctx.known_towns, "code"), _key_set(ctx.known_villages, "code"))
    level = pl.col("level")
    return _failures(
        regions,
        level.is_in(["town", "village"]) & ~pl.col("code").is_in(known.implode()),
        "unknown_division",
        "code",
        detail=level,
    )


def _unknown_villages(households: pl.DataFrame, ctx: ValidationContext) -> list[pl.DataFrame]:
    """Households whose village (or town) code is in no division list."""
    villages = _key_set(ctx.known_villages, "code")
    towns = _key_set(ctx.known_towns, "code")
    village, town = pl.col("village_code"), pl.col("town_code")
    unknown_village = village.is_not_null() & ~village.is_in(villages.implode())
    return [
        _failures(
            households, unknown_village, "unknown_village", "village_code", detail=pl.lit("")
        ),
        _failures(
            households,
            ~unknown_village & town.is_not_null() & ~town.is_in(towns.implode()),
            "unknown_village",
            "town_code",
            detail=pl.lit(""),
        ),
    ]


def _conflicts(persons: pl.DataFrame) -> pl.DataFrame:
    """Person records sharing an ID number: the one with the smallest person_no is the original,
    every other one a duplicate pointing at it. Records whose ID number is malformed (or was lost
    in a workbook) take no part: equal garbage is not the same person."""
    id_lost = pl.col("parse_errors").list.eval(pl.element().struct.field("column") == "id_number")
    # cheap hash test first; the eligibility tests then run on the few repeated numbers
    # (a 64-bit hash collision only adds a candidate; the exact test follows)
    repeated = persons.filter(
        pl.col("id_number").hash().is_duplicated() & pl.col("id_number").is_not_null()
    )
    candidates = (
        repeated.filter(
            idn.format_ok(pl.col("id_number"))
            & pl.col("person_no").is_not_null()
            & ~id_lost.list.any().fill_null(False)
        )
        .select("id_number", "person_no", "source_key")
        .unique(["id_number", "person_no"], keep="first", maintain_order=True)
    )
    candidates = candidates.filter(pl.col("id_number").is_duplicated())
    if candidates.is_empty():
        return pl.DataFrame(schema=CONFLICT_SCHEMA)
    originals = (
        candidates.sort("person_no")
        .group_by("id_number", maintain_order=True)
        .first()
        .rename({"person_no": "_original_no", "source_key": "other_source_key"})
    )
    return (
        candidates.join(originals, on="id_number")
        .filter(pl.col("person_no") != pl.col("_original_no"))
        .sort("person_no")
        .select(CONFLICT_SCHEMA.keys())
    )
