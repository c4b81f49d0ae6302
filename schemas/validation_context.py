"""What validation is given and what it returns: the context, the result, and the reference
facts its rules use (school ages, relations, poverty lines)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from schemas.entities import CHILD_ENTITIES
from seeds import SEEDS

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
    #: positions (``_row``) of the rejected rows in the staged frame, ascending: the merge
    #: reads the accepted rows from the staged files by them (None: merge ``accepted`` as is)
    rejected_rows: pl.Series | None = None


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
