"""Validate one county sync: split each canonical frame into accepted rows, rejects and findings.

Contract 4 of ``docs/engineering/architecture.md``. The steps:

1. **Column and within-row rules** run as the pandera models of ``schemas/<entity>.py``
   (``validate(lazy=True)``); their ``failure_cases`` (row ``index``, column, check) are mapped to
   rule names (a custom check is named after its rule, ``not_nullable`` is ``missing_value``,
   a built-in check takes the field's ``metadata["rule"]``).
2. The frame's ``parse_errors`` become rejects under their own rule (``bad_date``, …). A column
   that failed to parse is null, so the model's rules on that column are dropped for that row:
   one defect, one rule.
3. **Cross-entity reject rules** (polars, below), parents before children: regions → households
   (``orphan_village``, ``head_count`` over every member row delivered) → members, measures,
   loans, aid relations (``parent_rejected`` when the household was rejected in this sync, else
   ``orphan_household``); cadres → aid relations (``orphan_cadre``); regions → projects.
4. A row failing any reject rule is not accepted. **Findings** are evaluated on accepted rows
   only; **conflicts** (one ID number on two person records) are recorded and do not reject.

Everything is vectorised: failures are small frames keyed by the row position ``_row``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

import pandera.errors
import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context

from schemas import id_number as idn
from schemas.columns import CODED, ENTITIES, STAGING, frame_schema
from schemas.entities import CHILD_ENTITIES, SPECS, models
from schemas.rules import ISSUE_SCHEMA, RULES, render_message, unknown_elements
from schemas.sanity import sanity_failures
from seeds import SEEDS

MODELS: dict[str, type[pa.DataFrameModel]] = models()
_DETAILS: dict[str, dict[tuple[str, str], pl.Expr]] = {n: s.details for n, s in SPECS.items()}

LOCAL_TZ = "Asia/Shanghai"
CHILDREN = CHILD_ENTITIES
CONFLICT_SCHEMA: dict[str, pl.DataType] = {
    "id_number": pl.String(),
    "source_key": pl.String(),
    "other_source_key": pl.String(),
}

#: school_status → (min age, max age), whole years, inclusive. not_in_school: any age.
SCHOOL_AGE_BANDS: dict[str, tuple[int, int]] = {
    "preschool": (2, 7),
    "primary": (5, 15),
    **{f"grade{g}": (10, 18) for g in (7, 8, 9)},
    **{f"senior{g}": (13, 22) for g in (1, 2, 3)},
    **{f"vocational{g}": (13, 22) for g in (1, 2, 3)},
    **{f"higher_voc{g}": (16, 35) for g in (1, 2, 3)},
    "college": (16, 35),
}
#: relations that imply a sex; head, spouse and other imply none.
MALE_RELATIONS = (
    "son",
    "son_in_law",
    "grandson",
    "grandson_ext",
    "father",
    "father_in_law",
    "husbands_father",
    "grandfather",
    "grandfather_ext",
)
FEMALE_RELATIONS = (
    "daughter",
    "daughter_in_law",
    "granddaughter",
    "granddaughter_ext",
    "mother",
    "mother_in_law",
    "husbands_mother",
    "grandmother",
    "grandmother_ext",
)
ILL = ("chronic", "serious_illness")
ABLE_BODIED_AGES = (16, 59)
ABLE_LABOR = ("ordinary", "skilled")
MEMBER_COLUMNS = (
    "household_no",
    "person_no",
    "relation_to_head",
    "sex",
    "birth_date",
    "health",
    "labor_skill",
)


@dataclass
class Validated:
    accepted: pl.DataFrame  # canonical frame: rows passing every reject rule
    rejects: pl.DataFrame  # entity, source_key, rule, column_name, value, message, raw_ref
    findings: pl.DataFrame  # same columns as rejects
    conflicts: pl.DataFrame  # id_number, source_key, other_source_key (person only)


def load_poverty_lines(path: Path | None = None) -> dict[int, float]:
    """year → national rural poverty line in yuan (``seeds/poverty_lines.csv``)."""
    with (path or SEEDS / "poverty_lines.csv").open(encoding="utf-8") as f:
        return {int(r["year"]): float(r["line_yuan"]) for r in csv.DictReader(f)}


@dataclass
class ValidationContext:
    """What the batch alone cannot know. ``None`` means "not known": the rules needing it are
    skipped when the batch does not carry the parent entity either."""

    existing_households: pl.DataFrame | None = None  # core keys: household_no
    existing_villages: pl.DataFrame | None = None  # code
    existing_cadres: pl.DataFrame | None = None  # cadre_id
    # core person rows (MEMBER_COLUMNS) of the households the batch touches, without members
    # the batch deletes (bigdata deletion feed)
    existing_members: pl.DataFrame | None = None
    poor_id_numbers: pl.DataFrame | None = None  # id_number of registered poor people
    poverty_lines: dict[int, float] = field(default_factory=load_poverty_lines)
    as_of: date | None = None  # reference date for ages when source_updated_at is null
    # entities the batch lists in full (Staged.full_listing): for those, rows of core missing
    # from the batch are gone at the source, so existing_members is not consulted for "person"
    full_listing: frozenset[str] | set[str] = frozenset()
    # the county's known division codes (seeds/divisions + historical.csv), ``code`` column;
    # None: the list does not cover the county, codes are not checked against it
    known_towns: pl.DataFrame | None = None
    known_villages: pl.DataFrame | None = None
    # the hub's clock for source_time_in_future (None: now); see schemas/sanity.py
    now: datetime | None = None


# ----------------------------------------------------------------------------------------------
# Failures: one small frame per rule, keyed by row position.

_FAIL_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.UInt32(),
    "rule": pl.String(),
    "column_name": pl.String(),
    "value": pl.String(),
    "detail": pl.String(),
}


def _empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=_FAIL_SCHEMA)


def _failures(
    df: pl.DataFrame,
    mask: pl.Expr,
    rule: str,
    column: str,
    value: pl.Expr | None = None,
    detail: pl.Expr | None = None,
) -> pl.DataFrame:
    """Rows of ``df`` (which has ``_row``) where ``mask`` is true, as failures of ``rule``."""
    # the mask becomes a column first: a literal predicate (pl.lit(True)) does not broadcast in
    # filter and raises ShapeError from 16,384 rows on (polars 2.1)
    hit = df.with_columns(mask.fill_null(False).alias("__hit")).filter(pl.col("__hit"))
    return hit.select(
        pl.col("_row").cast(pl.UInt32),
        pl.lit(rule).alias("rule"),
        pl.lit(column).alias("column_name"),
        (pl.col(column) if value is None else value).cast(pl.String).alias("value"),
        (pl.lit(None) if detail is None else detail).cast(pl.String).alias("detail"),
    )


def _with_row(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_row_index("_row")


@cache
def _builtin_rules(entity: str) -> dict[str, str]:
    """column → rule of its built-in pandera check (from the field's metadata)."""
    columns = MODELS[entity].to_schema().columns
    return {name: col.metadata["rule"] for name, col in columns.items() if col.metadata}


def _model_failures(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Run the entity's pandera model; map its failure cases to (row, rule, column, value)."""
    try:
        # data checks regardless of PANDERA_VALIDATION_ENABLED / _DEPTH in the environment:
        # skipping them would accept every record silently
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            MODELS[entity].validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return _empty_failures()
    structural = cases.filter(pl.col("index").is_null())
    if structural.height:
        # a dtype or missing-column error or a crashing check: the frame broke Contract 1 (or
        # the model has a bug) -- not something to blame on the county's data
        problems = structural.select("column", "check").unique().rows()
        raise ValueError(f"{entity} frame does not fit the canonical layout: {problems}")
    check = pl.col("check")
    rule = (
        pl.when(check == "not_nullable")
        .then(pl.lit("missing_value"))
        .when(check.is_in(list(RULES)))
        .then(check)
        .otherwise(pl.col("column").replace_strict(_builtin_rules(entity), default=None))
    )
    mapped = cases.select(
        pl.col("index").cast(pl.UInt32).alias("_row"),
        rule.alias("rule"),
        pl.col("column").alias("column_name"),
        pl.when(rule != "missing_value").then(pl.col("failure_case")).alias("value"),
        pl.lit(None, pl.String).alias("detail"),
    )
    unmapped = mapped.filter(pl.col("rule").is_null())
    if unmapped.height:
        raise ValueError(f"{entity}: checks without a rule: {unmapped['column_name'].unique()}")
    return _add_details(entity, df, mapped)


def _add_details(entity: str, df: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """Fill message details (and list values) from the failing rows only."""
    if failures.is_empty():
        return failures
    rows = df[failures["_row"]]
    # the failure's own fields under names no frame column has
    own = failures.select(
        pl.col("_row"),
        pl.col("rule").alias("_f_rule"),
        pl.col("column_name").alias("_f_column"),
        pl.col("value").alias("_f_value"),
    )
    col, rule = pl.col("_f_column"), pl.col("_f_rule")
    detail: pl.Expr = pl.lit(None, pl.String)
    value: pl.Expr = pl.col("_f_value")
    code_tables = {
        **CODED.get(entity, {}),
        **{
            name: c.metadata["code_table"]
            for name, c in MODELS[entity].to_schema().columns.items()
            if c.metadata and "code_table" in c.metadata
        },
    }
    for column, table in code_tables.items():
        is_it = (col == column) & (rule == "unknown_code")
        detail = pl.when(is_it).then(pl.lit(table)).otherwise(detail)
        if isinstance(ENTITIES[entity][column], pl.List):
            # name the offending elements, not the whole list
            value = pl.when(is_it).then(unknown_elements(column, table)).otherwise(value)
    for (column, rule_name), expr in _DETAILS[entity].items():
        detail = (
            pl.when((col == column) & (rule == rule_name))
            .then(expr.cast(pl.String))
            .otherwise(detail)
        )
    return pl.concat([own, rows.drop("_row", strict=False)], how="horizontal").select(
        "_row",
        rule.alias("rule"),
        col.alias("column_name"),
        value.cast(pl.String).alias("value"),
        detail.alias("detail"),
    )


def _parse_failures(df: pl.DataFrame) -> pl.DataFrame:
    """The connector's ``parse_errors`` entries, one failure each."""
    errs = _with_row(df.select("parse_errors")).filter(pl.col("parse_errors").list.len() > 0)
    if errs.is_empty():
        return _empty_failures()
    return (
        errs.explode("parse_errors")
        .unnest("parse_errors")
        .select(
            pl.col("_row").cast(pl.UInt32),
            pl.col("rule"),
            pl.col("column").alias("column_name"),
            pl.col("value"),
            pl.lit(None, pl.String).alias("detail"),
        )
    )


def _column_failures(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Model failures plus parse errors; a column that failed to parse has no other failure."""
    parse = _parse_failures(df)
    model = _model_failures(entity, df)
    if not parse.is_empty():
        model = model.join(
            parse.select("_row", "column_name"), on=["_row", "column_name"], how="anti"
        )
    return pl.concat([parse, model])


# ----------------------------------------------------------------------------------------------
# Dates and ages.


def _reference_date(as_of: date | None) -> pl.Expr:
    """The date a record describes: its source_updated_at in Beijing time, or the export date."""
    local = pl.col("source_updated_at").dt.convert_time_zone(LOCAL_TZ).dt.date()
    return local.fill_null(pl.lit(as_of, pl.Date))


def _age(birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    """Whole years between ``birth`` and ``on``."""

    def month_day(d: pl.Expr) -> pl.Expr:
        return d.dt.month().cast(pl.Int32) * 100 + d.dt.day().cast(pl.Int32)

    before_birthday = (month_day(on) < month_day(birth)).cast(pl.Int32)
    return on.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32) - before_birthday


def _key_set(df: pl.DataFrame | None, column: str) -> pl.Series | None:
    if df is None:
        return None
    return df.get_column(column).cast(pl.String).drop_nulls().unique()


def _union(*parts: pl.Series | None) -> pl.Series | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    return pl.concat([p.cast(pl.String) for p in present]).unique()


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


# ----------------------------------------------------------------------------------------------
# Putting it together.


def _issues(entity: str, df: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """Failures → ops rows: one per (record, rule), messages rendered, source key and raw ref."""
    if failures.is_empty():
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    col, value, detail = pl.col("column_name"), pl.col("value"), pl.col("detail")
    message: pl.Expr = pl.lit(None, pl.String)
    for rule in failures["rule"].unique().sort():
        message = (
            pl.when(pl.col("rule") == rule)
            .then(render_message(rule, col, value, detail))
            .otherwise(message)
        )
    per_rule = (
        failures.with_columns(message.alias("message"))
        .group_by("_row", "rule", maintain_order=True)
        .agg(
            pl.col("column_name").first(),
            pl.col("value").first(),
            pl.col("message").str.join("; "),
        )
        .sort("_row", maintain_order=True)
    )
    refs = df.select("source_key", "raw_ref")[per_rule["_row"]]
    return pl.concat([per_rule, refs], how="horizontal").select(
        pl.lit(entity).alias("entity"),
        "source_key",
        "rule",
        "column_name",
        "value",
        "message",
        "raw_ref",
    )


def _rejected_rows(failures: pl.DataFrame) -> pl.Series:
    return failures["_row"].unique()


def validate_county(
    frames: dict[str, pl.DataFrame], context: ValidationContext
) -> dict[str, Validated]:
    """Validate one county's staged frames (``schemas.columns.frame_schema`` each).

    Returns a ``Validated`` for every entity in ``frames``. Only rows passing every reject rule
    are accepted; findings are evaluated on accepted rows; conflicts do not reject.
    """
    ctx = context
    unknown = set(frames) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    dfs = {e: _with_row(df) for e, df in frames.items()}
    fails = {e: _column_failures(e, df) for e, df in frames.items()}
    # over-long text, control characters, times in the future (schemas/sanity.py)
    fails = {e: pl.concat([f, sanity_failures(e, dfs[e], ctx.now)]) for e, f in fails.items()}

    if "region" in dfs and ctx.known_villages is not None:
        fails["region"] = pl.concat([fails["region"], _unknown_divisions(dfs["region"], ctx)])

    def accepted_part(entity: str) -> pl.DataFrame:
        return dfs[entity].filter(~pl.col("_row").is_in(_rejected_rows(fails[entity]).implode()))

    # regions → villages known to this sync
    batch_villages = _key_set(accepted_part("region"), "code") if "region" in dfs else None
    villages = _union(batch_villages, _key_set(ctx.existing_villages, "code"))

    # households: orphan_village, head_count
    members = _members(frames, ctx)
    facts = None
    if "household" in dfs:
        hh = dfs["household"]
        # with the division list, a village in no list is a finding (unknown_village), not a
        # reject: the household is real, its 户编号 or the list is what needs fixing
        extra = (
            [_orphans(hh, "village_code", villages, "orphan_village", None)]
            if ctx.known_villages is None
            else []
        )
        if members is not None:
            facts = _household_member_facts(hh, members, ctx.as_of)
            heads = hh.select("_row", "household_no").join(facts, on="household_no", how="left")
            extra.append(
                _failures(
                    heads,
                    pl.col("_heads") != 1,
                    "head_count",
                    "relation_to_head",
                    value=pl.col("_heads"),
                )
            )
        fails["household"] = pl.concat([fails["household"], *extra])

    # which households this sync rejected, and why (for parent_rejected messages)
    rejected_households = pl.DataFrame(schema={"household_no": pl.String, "_rules": pl.String})
    known_households = _key_set(ctx.existing_households, "household_no")
    if "household" in dfs:
        hh_fails = fails["household"].join(
            dfs["household"].select("_row", "household_no"), on="_row"
        )
        rejected_households = (
            hh_fails.filter(pl.col("household_no").is_not_null())
            .group_by("household_no", maintain_order=True)
            .agg(pl.col("rule").unique(maintain_order=True).str.join(", ").alias("_rules"))
        )
        known_households = _union(
            known_households, _key_set(accepted_part("household"), "household_no")
        )
    known_cadres = _key_set(ctx.existing_cadres, "cadre_id")
    if "cadre" in dfs:
        known_cadres = _union(known_cadres, _key_set(accepted_part("cadre"), "cadre_id"))

    rejected_keys = rejected_households["household_no"]
    for entity in CHILDREN:
        if entity not in dfs:
            continue
        df = dfs[entity]
        extra = [
            _parent_rejected(df, rejected_households),
            _orphans(df, "household_no", known_households, "orphan_household", rejected_keys),
        ]
        if entity == "household_cadre":
            extra.append(_orphans(df, "cadre_id", known_cadres, "orphan_cadre", None))
        fails[entity] = pl.concat([fails[entity], *extra])
    if "project" in dfs:
        orphan = _orphans(dfs["project"], "village_code", villages, "orphan_village", None)
        fails["project"] = pl.concat([fails["project"], orphan])

    # accepted rows, then findings on them
    accepted = {e: accepted_part(e) for e in dfs}
    findings: dict[str, list[pl.DataFrame]] = {e: [] for e in dfs}
    if "household" in dfs:
        findings["household"] = _household_findings(accepted["household"], facts, ctx)
    if "household" in dfs and ctx.known_villages is not None:
        findings["household"] += _unknown_villages(accepted["household"], ctx)
    if "person" in dfs:
        findings["person"] = _person_findings(accepted["person"], ctx)
    if "cadre" in dfs:
        poor = _union(
            _key_set(ctx.poor_id_numbers, "id_number"),
            _key_set(accepted.get("person"), "id_number"),
        )
        if poor is not None:
            id_ = pl.col("id_number")
            findings["cadre"] = [
                _failures(
                    accepted["cadre"],
                    id_.is_in(poor.implode()),
                    "cadre_registered_poor",
                    "id_number",
                )
            ]

    out: dict[str, Validated] = {}
    for entity, df in dfs.items():
        found = pl.concat(findings[entity]) if findings[entity] else _empty_failures()
        out[entity] = Validated(
            accepted=accepted[entity].drop("_row"),
            rejects=_issues(entity, df, fails[entity]),
            findings=_issues(entity, df, found),
            conflicts=_conflicts(df)
            if entity == "person"
            else pl.DataFrame(schema=CONFLICT_SCHEMA),
        )
    return out


# ----------------------------------------------------------------------------------------------
# Column documentation (Dagster TableSchema, COMMENT ON).

_STAGING_DESCRIPTIONS = {
    "source_key": "来源主键 — the platform's own key as text ('<hh>:<cadre>' for pairs)",
    "source_updated_at": "来源更新时间 — when the source last changed the record (UTC)",
    "raw_ref": "原始数据位置 — '<page_id>#<row>' of the landed payload",
    "parse_errors": "解析错误 — values the connector could not parse: {rule, column, value}",
}


def column_schema(entity: str) -> list[tuple[str, str, str]]:
    """(name, dtype, description with the Chinese label) for every column of the staged frame."""
    columns = MODELS[entity].to_schema().columns
    out = []
    for name, dtype in frame_schema(entity).items():
        if name in STAGING:
            description = _STAGING_DESCRIPTIONS[name]
        else:
            col = columns[name]
            description = f"{col.title} — {col.description}"
        out.append((name, str(dtype), description))
    return out


#: Columns the warehouse adds to every core table (city-standard.md, "Every core table also has").
CORE_LINEAGE: tuple[tuple[str, str, str], ...] = (
    ("county_code", "String", "县区代码 — county whose platform sent the record"),
    ("source_platform", "String", "来源平台 — bigdata / battle / workbook"),
    ("first_seen_at", "Datetime(UTC)", "首次同步 — when the warehouse first saw the record"),
    ("last_synced_at", "Datetime(UTC)", "最近同步 — the last sync that saw it"),
    ("sync_run_id", "String", "同步批次 — that sync's id"),
    (
        "deleted_at",
        "Datetime(UTC)",
        "删除时间 — set when the source deleted it; rows are never removed",
    ),
    ("row_hash", "String", "行哈希 — MD5 of the contract columns, for change detection"),
)


def table_schema(entity: str):
    """The ``core.<entity>`` table as a Dagster ``TableSchema`` (the ``dagster/column_schema``
    metadata key): the pandera model's columns, the lineage columns, and for persons the
    ``person_key`` pseudonym; the staging-only ``parse_errors`` is not a core column."""
    import dagster as dg  # only the orchestration layer needs dagster

    columns = [c for c in column_schema(entity) if c[0] != "parse_errors"]
    if entity == "person":
        columns.append(
            ("person_key", "String", "人员假名 — HMAC-SHA256 of id_number keyed by HUB_PII_KEY")
        )
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, dtype, description=description)
            for name, dtype, description in [*columns, *CORE_LINEAGE]
        ]
    )
