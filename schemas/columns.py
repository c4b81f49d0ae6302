"""Canonical ("city") frame layouts: the one shape every connector produces and every later
stage consumes.

Each entity's frame has exactly the contract's core columns (``shared/contract/city-standard.md``)
with city codes, plus the staging columns in ``STAGING``. The simulator generates its ground
truth in this shape, the normalisers turn platform payloads into it, the pandera models validate
it and the merge SQL writes it to ``core``.

Coded columns hold the city code when the source value maps, and the source value unchanged when
it does not, so that validation can reject the row naming the value. Values that cannot be
parsed at all (a date like "1980-13-45", a number like "abc") become null and are listed in
``parse_errors``.
"""

from __future__ import annotations

import polars as pl

PARSE_ERROR = pl.Struct({"rule": pl.String, "column": pl.String, "value": pl.String})

#: Columns every staged frame carries besides the contract's columns.
STAGING: dict[str, pl.DataType] = {
    "source_key": pl.String(),  # the platform's own key, as text ("<hh>:<cadre>" for pairs)
    "source_updated_at": pl.Datetime("us", "UTC"),  # null for workbook rows
    "raw_ref": pl.String(),  # "<page_id>#<row index in that page>"
    "parse_errors": pl.List(PARSE_ERROR),  # empty list when the row parsed cleanly
}

S, I32, F64, B, D = pl.String(), pl.Int32(), pl.Float64(), pl.Boolean(), pl.Date()
LS = pl.List(pl.String())

ENTITIES: dict[str, dict[str, pl.DataType]] = {
    "region": {
        "code": S,
        "level": S,  # county / town / village
        "name": S,
        "parent_code": S,
        "is_poor_village": B,
        "poor_village_exit_year": I32,
        "is_statistical_unit": B,
    },
    "household": {
        "household_no": S,
        "town_code": S,
        "village_code": S,
        "head_person_no": S,
        "poverty_attribute": S,
        "poverty_status": S,
        "main_cause": S,
        "main_cause_label": S,  # the label as sent when it differs from the standard (因婚, 因丧)
        "other_causes": LS,
        "identified_year": I32,
        "exit_year": I32,
        "relapse_year": I32,
        "income_per_capita": F64,
        "member_count": I32,
        "housing_safe": B,
        "water_safe": B,
        "phone": S,
    },
    "person": {
        "person_no": S,
        "household_no": S,
        "name": S,
        "id_number": S,  # normalised: 18 chars, upper-case X (see schemas.id_number)
        "id_upgraded": B,
        "sex": S,
        "birth_date": D,
        "relation_to_head": S,
        "ethnicity": S,
        "education": S,
        "school_status": S,
        "health": LS,
        "labor_skill": S,
        "work_status": S,
        "work_months": I32,
        "serious_illness_insured": B,
    },
    "measure": {
        "measure_id": S,
        "household_no": S,
        "category": S,
        "year": I32,
        "amount": F64,
        "description": S,
    },
    "loan": {
        "loan_id": S,
        "household_no": S,
        "lender": S,
        "principal": F64,
        "issued_on": D,
        "term_months": I32,
        "annual_rate": F64,
        "interest_subsidy": F64,
        "status": S,
    },
    "project": {
        "project_id": S,
        "village_code": S,
        "category": S,
        "name": S,
        "budget": F64,
        "disbursed": F64,
        "status": S,
        "start_on": D,
        "end_on": D,
        "households_benefited": I32,
    },
    "cadre": {
        "cadre_id": S,
        "name": S,
        "id_number": S,
        "sex": S,
        "phone": S,
        "unit_name": S,
        "unit_type": S,
        "is_first_secretary": B,
        "is_resident_team": B,
    },
    "household_cadre": {
        "household_no": S,
        "cadre_id": S,
        "since": D,
    },
}

#: Primary key columns of each entity in ``core``.
KEYS: dict[str, tuple[str, ...]] = {
    "region": ("code",),
    "household": ("household_no",),
    "person": ("person_no",),
    "measure": ("measure_id",),
    "loan": ("loan_id",),
    "project": ("project_id",),
    "cadre": ("cadre_id",),
    "household_cadre": ("household_no", "cadre_id"),
}

#: Coded columns and the code table (``seeds/codes.csv``) each one takes its values from.
CODED: dict[str, dict[str, str]] = {
    "household": {
        "poverty_attribute": "poverty_attribute",
        "poverty_status": "poverty_status",
        "main_cause": "poverty_cause",
        "other_causes": "poverty_cause",
    },
    "person": {
        "sex": "sex",
        "relation_to_head": "relation_to_head",
        "ethnicity": "ethnicity",
        "education": "education",
        "school_status": "school_status",
        "health": "health",
        "labor_skill": "labor_skill",
        "work_status": "work_status",
    },
    "measure": {"category": "measure_category"},
    "loan": {"status": "loan_status"},
    "project": {"category": "project_category", "status": "project_status"},
    "cadre": {"sex": "sex", "unit_type": "unit_type"},
}

#: Entities each platform kind delivers, in dependency order (parents first).
ENTITY_ORDER = (
    "region",
    "household",
    "person",
    "measure",
    "loan",
    "project",
    "cadre",
    "household_cadre",
)
WORKBOOK_ENTITIES = ("household", "person")


def frame_schema(entity: str) -> dict[str, pl.DataType]:
    """The full staged layout of ``entity``: contract columns then staging columns."""
    return {**ENTITIES[entity], **STAGING}


def empty_frame(entity: str) -> pl.DataFrame:
    return pl.DataFrame(schema=frame_schema(entity))


def conform(entity: str, df: pl.DataFrame) -> pl.DataFrame:
    """Select and order the staged columns of ``entity``, casting to the canonical types.

    Raises if a column is missing, so a connector that forgets one fails loudly in tests.
    """
    schema = frame_schema(entity)
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{entity} frame lacks columns {missing}")
    return df.select(pl.col(c).cast(t) for c, t in schema.items())


#: Direct identifiers: the columns that name a real person or reach them (name, ID number,
#: phone, full birth date). They stay in the warehouse and the restricted PII snapshot; the
#: analyst snapshot has none of them (``warehouse.snapshots``): persons are joined by person_key
#: and counted by birth year instead.
IDENTIFYING: dict[str, tuple[str, ...]] = {
    "person": ("name", "id_number", "birth_date"),
    "household": ("phone",),
    "cadre": ("name", "id_number", "phone"),
}
