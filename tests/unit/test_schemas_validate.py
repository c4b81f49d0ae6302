"""validate_county: every rule with a failing and a passing example, cascades, conflicts.

The county below is clean: it produces no reject, finding or conflict. Each case damages one
thing and states the complete set of (entity, source_key, rule, level) it must produce, the way
the simulator's truth endpoint lists them: one defect triggers its rule and no other (plus the
``parent_rejected`` cascade when a household is rejected).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import polars as pl
import pytest

from schemas import id_number as idn
from schemas.columns import conform, frame_schema
from schemas.rules import RULES
from schemas.validate import (
    Validated,
    ValidationContext,
    column_schema,
    table_schema,
    validate_county,
)

SYNCED = datetime(2016, 7, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
AS_OF = date(2016, 7, 1)
V1, V2 = "611002100201", "611002100202"
H1, H2 = V1 + "0001", V2 + "0001"


def _id(born: date, sex: str, address: str = "611002", order: int = 10) -> str:
    return idn.make_id(address, born, order, sex)


def _person(no: str, relation: str, sex: str, born: date, **kw) -> dict:
    row = {
        "person_no": no,
        "household_no": no[:16],
        "name": f"人{no[-4:]}",
        "id_number": _id(born, sex, order=int(no[-2:]) * 10),
        "id_upgraded": False,
        "sex": sex,
        "birth_date": born,
        "relation_to_head": relation,
        "ethnicity": "01",
        "education": "junior",
        "school_status": "not_in_school",
        "health": ["healthy"],
        "labor_skill": "ordinary",
        "work_status": "in_county",
        "work_months": 6,
        "serious_illness_insured": True,
    }
    return row | kw


def clean_rows() -> dict[str, list[dict]]:
    """A small clean county: 2 villages, 2 households (4 people), measure, loan, projects,
    a cadre and an aid relation."""
    return {
        "region": [
            {"code": "611002", "level": "county", "name": "商州区", "parent_code": "611000"},
            {"code": "611002100", "level": "town", "name": "镇", "parent_code": "611002"},
            {"code": V1, "level": "village", "name": "一村", "parent_code": "611002100"},
            {"code": V2, "level": "village", "name": "二村", "parent_code": "611002100"},
        ],
        "household": [
            {
                "household_no": H1,
                "town_code": "611002100",
                "village_code": V1,
                "head_person_no": H1 + "01",
                "poverty_attribute": "general",
                "poverty_status": "not_exited",
                "main_cause": "lack_capital",
                "other_causes": ["lack_skills"],
                "identified_year": 2014,
                "income_per_capita": 2500.0,
                "member_count": 3,
                "housing_safe": True,
                "water_safe": True,
                "phone": "13800000001",
            },
            {
                "household_no": H2,
                "town_code": "611002100",
                "village_code": V2,
                "head_person_no": H2 + "01",
                "poverty_attribute": "tekun",
                "poverty_status": "exited",
                "main_cause": "illness",
                "other_causes": [],
                "identified_year": 2014,
                "exit_year": 2016,
                "income_per_capita": 3500.0,
                "member_count": 1,
                "housing_safe": True,
                "water_safe": True,
            },
        ],
        "person": [
            _person(H1 + "01", "head", "male", date(1970, 5, 1)),
            _person(H1 + "02", "spouse", "female", date(1972, 3, 3)),
            _person(
                H1 + "03",
                "son",
                "male",
                date(2008, 9, 1),
                school_status="primary",
                education="primary",
                labor_skill="none",
                work_status="not_working",
                work_months=0,
            ),
            # born before 2001: her number still carries the old prefecture code 6125xx
            _person(
                H2 + "01",
                "head",
                "female",
                date(1946, 2, 2),
                id_number=_id(date(1946, 2, 2), "female", address="612522"),
                health=["chronic"],
                labor_skill="lost",
                work_status="not_working",
                work_months=0,
            ),
        ],
        "measure": [
            {
                "measure_id": "M1",
                "household_no": H1,
                "category": "industry",
                "year": 2016,
                "amount": 2000.0,
            },
        ],
        "loan": [
            {
                "loan_id": "L1",
                "household_no": H1,
                "lender": "农商银行",
                "principal": 50000.0,
                "issued_on": date(2016, 3, 1),
                "term_months": 36,
                "annual_rate": 0.0435,
                "interest_subsidy": 1000.0,
                "status": "active",
            },
        ],
        "project": [
            {
                "project_id": "P1",
                "village_code": V1,
                "category": "road",
                "name": "路",
                "status": "in_progress",
            },
            {
                "project_id": "P2",
                "village_code": None,
                "category": "health",
                "name": "卫生",
                "status": "planned",
            },
        ],
        "cadre": [
            {
                "cadre_id": "C1",
                "name": "干部",
                "id_number": _id(date(1980, 8, 8), "male", address="611001"),
                "sex": "male",
                "unit_type": "gov_agency",
                "is_first_secretary": True,
                "is_resident_team": True,
            },
        ],
        "household_cadre": [{"household_no": H1, "cadre_id": "C1", "since": date(2016, 1, 1)}],
    }


KEYS = {
    "region": "code",
    "household": "household_no",
    "person": "person_no",
    "measure": "measure_id",
    "loan": "loan_id",
    "project": "project_id",
    "cadre": "cadre_id",
}


def build(rows: dict[str, list[dict]]) -> dict[str, pl.DataFrame]:
    """Rows → canonical frames (missing columns null, staging columns filled)."""
    frames = {}
    for entity, recs in rows.items():
        recs = [dict(r) for r in recs]
        for i, r in enumerate(recs):
            key = (
                f"{r['household_no']}:{r['cadre_id']}"
                if entity == "household_cadre"
                else r[KEYS[entity]]
            )
            r.setdefault("source_key", key)
            r.setdefault("source_updated_at", SYNCED)
            r.setdefault("raw_ref", f"test:1:{entity}#{i}")
            r.setdefault("parse_errors", [])
        frames[entity] = conform(entity, pl.DataFrame(recs, schema=frame_schema(entity)))
    return frames


def issues(result: dict[str, Validated]) -> set[tuple[str, str, str, str]]:
    out = set()
    for entity, v in result.items():
        for level, frame in (("reject", v.rejects), ("finding", v.findings)):
            for row in frame.iter_rows(named=True):
                out.add((entity, row["source_key"], row["rule"], level))
        for row in v.conflicts.iter_rows(named=True):
            out.add((entity, row["source_key"], "duplicate_id_number", "conflict"))
    return out


def run(rows, **context) -> dict[str, Validated]:
    context.setdefault("as_of", AS_OF)
    return validate_county(build(rows), ValidationContext(**context))


def find(rows, entity, key) -> dict:
    k = KEYS.get(entity, "household_no")
    return next(r for r in rows[entity] if r[k] == key)


H1_CHILDREN = {
    ("person", H1 + "01", "parent_rejected", "reject"),
    ("person", H1 + "02", "parent_rejected", "reject"),
    ("person", H1 + "03", "parent_rejected", "reject"),
    ("measure", "M1", "parent_rejected", "reject"),
    ("loan", "L1", "parent_rejected", "reject"),
    ("household_cadre", f"{H1}:C1", "parent_rejected", "reject"),
}
H2_CHILDREN = {("person", H2 + "01", "parent_rejected", "reject")}
# a rejected cadre is not a known parent: its aid relation is an orphan
C1_CHILDREN = {("household_cadre", f"{H1}:C1", "orphan_cadre", "reject")}


def test_the_clean_county_is_clean():
    result = run(clean_rows())
    assert issues(result) == set()
    for entity, rows in clean_rows().items():
        assert result[entity].accepted.height == len(rows)
        assert result[entity].accepted.columns == build(clean_rows())[entity].columns


# ----------------------------------------------------------------------------------------------
# One case per rule (and a few variants): mutate the clean county, expect exactly these issues.


def _set(entity: str, key: str, **values) -> Callable[[dict], None]:
    def mutate(rows):
        find(rows, entity, key).update(values)

    return mutate


def _parse_error(entity, key, rule, column, shown, **values):
    def mutate(rows):
        rec = find(rows, entity, key)
        rec.update({column: None, **values})
        rec["parse_errors"] = [{"rule": rule, "column": column, "value": shown}]

    return mutate


def _add(entity: str, record: dict) -> Callable[[dict], None]:
    return lambda rows: rows[entity].append(record)


def _resex(no: str, sex: str) -> Callable[[dict], None]:
    """Change a person's sex consistently (ID number too)."""

    def mutate(rows):
        rec = find(rows, "person", no)
        rec.update(sex=sex, id_number=_id(rec["birth_date"], sex, order=int(no[-2:]) * 10))

    return mutate


P1, P2, P3, Q1 = H1 + "01", H1 + "02", H1 + "03", H2 + "01"
BAD_CHECK = _id(date(1970, 5, 1), "male", order=10)[:17] + (
    "0" if _id(date(1970, 5, 1), "male", order=10)[17] != "0" else "1"
)
INVALID_DATE_ID = "61100219700230011" + idn.check_digit("61100219700230011")

CASES = {
    # --- missing_value
    "missing_value person name": (
        _set("person", P2, name=None),
        {("person", P2, "missing_value", "reject")},
    ),
    "missing_value blank is not a value": (
        _set("measure", "M1", category=None),
        {("measure", "M1", "missing_value", "reject")},
    ),
    "missing_value household cascades": (
        _set("household", H2, main_cause=None),
        {("household", H2, "missing_value", "reject")} | H2_CHILDREN,
    ),
    "missing_value loan principal": (
        _set("loan", "L1", principal=None),
        {("loan", "L1", "missing_value", "reject")},
    ),
    "missing_value cadre_id of relation": (
        lambda rows: rows["household_cadre"][0].update(cadre_id=None, source_key=f"{H1}:"),
        {("household_cadre", f"{H1}:", "missing_value", "reject")},
    ),
    # --- key_format
    "key_format household not in its village": (
        _set("household", H2, village_code=V1),
        {("household", H2, "key_format", "reject")} | H2_CHILDREN,
    ),
    "key_format household 15 digits": (
        lambda rows: (
            find(rows, "household", H2).update(household_no=H2[:15], source_key=H2[:15]),
            find(rows, "person", Q1).update(household_no=H2[:15]),
        ),
        # the member's person_no still starts with the (bad) household_no: only the cascade
        {
            ("household", H2[:15], "key_format", "reject"),
            ("person", Q1, "parent_rejected", "reject"),
        },
    ),
    "key_format person_no not household_no + 2": (
        _set("person", P3, person_no=H2 + "03", source_key="X3"),
        {("person", "X3", "key_format", "reject")},
    ),
    "key_format region": (
        _add("region", {"code": "61100210020", "level": "village", "name": "坏"}),
        {("region", "61100210020", "key_format", "reject")},
    ),
    # --- unknown_code
    "unknown_code main_cause": (
        _set("household", H2, main_cause="因病返贫"),
        {("household", H2, "unknown_code", "reject")} | H2_CHILDREN,
    ),
    "unknown_code other_causes element": (
        _set("household", H2, other_causes=["因婚嫁"]),
        {("household", H2, "unknown_code", "reject")} | H2_CHILDREN,
    ),
    "unknown_code health element": (
        _set("person", P2, health=["头疼"]),
        {("person", P2, "unknown_code", "reject")},
    ),
    "unknown_code two columns, one row": (
        _set("person", P2, ethnicity="汉", education="中专"),
        {("person", P2, "unknown_code", "reject")},
    ),
    "unknown_code loan status": (
        _set("loan", "L1", status="逾期未还"),
        {("loan", "L1", "unknown_code", "reject")},
    ),
    "unknown_code project category": (
        _set("project", "P2", category="扶贫车间"),
        {("project", "P2", "unknown_code", "reject")},
    ),
    "unknown_code cadre unit_type": (
        _set("cadre", "C1", unit_type="乡政府"),
        {("cadre", "C1", "unknown_code", "reject")} | C1_CHILDREN,
    ),
    "unknown_code measure category": (
        _set("measure", "M1", category="慰问"),
        {("measure", "M1", "unknown_code", "reject")},
    ),
    "unknown_code region level": (
        _set("region", "611002100", level="组"),
        {("region", "611002100", "unknown_code", "reject")},
    ),
    # --- parse errors
    "bad_date": (
        _parse_error("person", P2, "bad_date", "birth_date", "1972-13-45"),
        {("person", P2, "bad_date", "reject")},
    ),
    "bad_number on a required column": (
        _parse_error("measure", "M1", "bad_number", "year", "二〇一六"),
        {("measure", "M1", "bad_number", "reject")},
    ),
    "bad_boolean": (
        _parse_error("cadre", "C1", "bad_boolean", "is_first_secretary", "也许"),
        {("cadre", "C1", "bad_boolean", "reject")} | C1_CHILDREN,
    ),
    "id_number_as_number": (
        _parse_error(
            "person", P2, "id_number_as_number", "id_number", "6.11026E+17", id_number="6.11026E+17"
        ),
        {("person", P2, "id_number_as_number", "reject")},
    ),
    "id_number_as_number, id nulled": (
        _parse_error("person", P2, "id_number_as_number", "id_number", "6.11026E+17"),
        {("person", P2, "id_number_as_number", "reject")},
    ),
    # --- ID numbers
    "id_number_format": (
        _set("person", P1, id_number="61100219700501001"),
        {("person", P1, "id_number_format", "reject")},
    ),
    "id_number_format cadre": (
        _set("cadre", "C1", id_number="6110011980080801"),
        {("cadre", "C1", "id_number_format", "reject")} | C1_CHILDREN,
    ),
    "id_number_checksum": (
        _set("person", P1, id_number=BAD_CHECK),
        {("person", P1, "id_number_checksum", "reject")},
    ),
    "id_number_checksum cadre": (
        _set("cadre", "C1", id_number=BAD_CHECK),
        {("cadre", "C1", "id_number_checksum", "reject")} | C1_CHILDREN,
    ),
    "id_number_birth_date differs": (
        _set("person", P1, birth_date=date(1970, 5, 2)),
        {("person", P1, "id_number_birth_date", "reject")},
    ),
    "id_number_birth_date not a date": (
        _set("person", P1, id_number=INVALID_DATE_ID, birth_date=None),
        {("person", P1, "id_number_birth_date", "reject")},
    ),
    "id_number_sex": (
        _set("person", P1, sex="female"),
        {("person", P1, "id_number_sex", "reject")},
    ),
    "id_number_outside_shangluo": (
        _set("person", P2, id_number=_id(date(1972, 3, 3), "female", address="610102", order=20)),
        {("person", P2, "id_number_outside_shangluo", "finding")},
    ),
    "id_number_outside_shangluo: old code after 2000": (
        _set("person", P3, id_number=_id(date(2008, 9, 1), "male", address="612522", order=30)),
        {("person", P3, "id_number_outside_shangluo", "finding")},
    ),
    # --- household rules
    "head_count two heads": (
        _set("person", P2, relation_to_head="head"),
        {("household", H1, "head_count", "reject")} | H1_CHILDREN,
    ),
    "head_count no head": (
        _set("person", Q1, relation_to_head="other"),
        {("household", H2, "head_count", "reject")} | H2_CHILDREN,
    ),
    "head_count counts rejected members": (
        # the second head is itself rejected (bad work months): it still counts
        _set("person", P2, relation_to_head="head", work_months=13),
        {("household", H1, "head_count", "reject"), ("person", P2, "work_months_range", "reject")}
        | H1_CHILDREN,
    ),
    "exit_before_identified": (
        _set("household", H2, exit_year=2013),
        {("household", H2, "exit_before_identified", "reject")} | H2_CHILDREN,
    ),
    "exited_without_exit_year": (
        _set("household", H2, exit_year=None),
        {("household", H2, "exited_without_exit_year", "reject")} | H2_CHILDREN,
    ),
    "other_causes_invalid: three": (
        _set("household", H2, other_causes=["disability", "lack_labor", "lack_skills"]),
        {("household", H2, "other_causes_invalid", "reject")} | H2_CHILDREN,
    ),
    "other_causes_invalid: main repeated": (
        _set("household", H2, other_causes=["illness"]),
        {("household", H2, "other_causes_invalid", "reject")} | H2_CHILDREN,
    ),
    "negative_income": (
        _set("household", H1, income_per_capita=-1.0),
        {("household", H1, "negative_income", "reject")} | H1_CHILDREN,
    ),
    "work_months_range": (
        _set("person", P1, work_months=13),
        {("person", P1, "work_months_range", "reject")},
    ),
    "work_months_range negative": (
        _set("person", P1, work_months=-1),
        {("person", P1, "work_months_range", "reject")},
    ),
    "health_exclusive": (
        _set("person", P1, health=["healthy", "disabled"]),
        {("person", P1, "health_exclusive", "reject")},
    ),
    # --- orphans
    "orphan_household measure": (
        _set("measure", "M1", household_no=V1 + "9999"),
        {("measure", "M1", "orphan_household", "reject")},
    ),
    "orphan_household member": (
        _add("person", _person(V1 + "999901", "head", "male", date(1960, 1, 1))),
        {("person", V1 + "999901", "orphan_household", "reject")},
    ),
    "orphan_village household": (
        lambda rows: (
            _add(
                "household",
                find(rows, "household", H2)
                | {
                    "household_no": "6110021002990001",
                    "village_code": "611002100299",
                    "source_key": "6110021002990001",
                },
            )(rows),
            _add(
                "person",
                _person(
                    "611002100299000101",
                    "head",
                    "female",
                    date(1946, 2, 2),
                    health=["chronic"],
                    labor_skill="lost",
                ),
            )(rows),
        ),
        {
            ("household", "6110021002990001", "orphan_village", "reject"),
            ("person", "611002100299000101", "parent_rejected", "reject"),
        },
    ),
    "orphan_village: village rejected in the same sync": (
        _set("region", V2, level=None),
        {("region", V2, "missing_value", "reject"), ("household", H2, "orphan_village", "reject")}
        | H2_CHILDREN,
    ),
    "orphan_village project": (
        _set("project", "P1", village_code="611002100299"),
        {("project", "P1", "orphan_village", "reject")},
    ),
    "orphan_cadre": (
        lambda rows: rows["household_cadre"][0].update(cadre_id="C9", source_key=f"{H1}:C9"),
        {("household_cadre", f"{H1}:C9", "orphan_cadre", "reject")},
    ),
    "orphan_cadre: cadre rejected in the same sync": (
        _set("cadre", "C1", name=None),
        {
            ("cadre", "C1", "missing_value", "reject"),
            ("household_cadre", f"{H1}:C1", "orphan_cadre", "reject"),
        },
    ),
    # --- findings
    "member_count_mismatch": (
        _set("household", H1, member_count=4),
        {("household", H1, "member_count_mismatch", "finding")},
    ),
    "school_age_implausible too old": (
        _set("person", P2, school_status="primary"),
        {("person", P2, "school_age_implausible", "finding")},
    ),
    "school_age_implausible too young for college": (
        _set("person", P3, school_status="college"),
        {("person", P3, "school_age_implausible", "finding")},
    ),
    "relation_sex_inconsistent": (
        _resex(P3, "female"),
        {("person", P3, "relation_sex_inconsistent", "finding")},
    ),
    "exit_below_poverty_line": (
        _set("household", H2, income_per_capita=2900.0),
        {("household", H2, "exit_below_poverty_line", "finding")},
    ),
    "exit_unsafe_housing": (
        _set("household", H2, housing_safe=False),
        {("household", H2, "exit_unsafe_housing", "finding")},
    ),
    "exit_unsafe_water": (
        _set("household", H2, water_safe=False),
        {("household", H2, "exit_unsafe_water", "finding")},
    ),
    "illness_cause_nobody_ill main": (
        _set("household", H1, main_cause="illness", other_causes=[]),
        {("household", H1, "illness_cause_nobody_ill", "finding")},
    ),
    "illness_cause_nobody_ill other": (
        _set("household", H1, other_causes=["illness"]),
        {("household", H1, "illness_cause_nobody_ill", "finding")},
    ),
    "tekun_able_bodied_member": (
        _set("household", H1, poverty_attribute="tekun"),
        {("household", H1, "tekun_able_bodied_member", "finding")},
    ),
    "cadre_registered_poor (a member of this sync)": (
        _set("cadre", "C1", id_number=_id(date(1972, 3, 3), "female", order=20)),
        {("cadre", "C1", "cadre_registered_poor", "finding")},
    ),
    # --- conflicts
    "duplicate_id_number": (
        lambda rows: (
            find(rows, "household", H1).update(member_count=4),
            rows["person"].append(
                _person(
                    H1 + "04",
                    "other",
                    "male",
                    date(1970, 5, 1),
                    id_number=find(rows, "person", P1)["id_number"],
                )
            ),
        ),
        {("person", H1 + "04", "duplicate_id_number", "conflict")},
    ),
    # --- hostile values (schemas/sanity.py)
    "text_too_long person name": (
        _set("person", P2, name="张" * 51),
        {("person", P2, "text_too_long", "reject")},
    ),
    "text_too_long measure description": (
        _set("measure", "M1", description="x" * 1001),
        {("measure", "M1", "text_too_long", "reject")},
    ),
    "text_control_character: right-to-left override in a name": (
        _set("person", P2, name="王\u202e三"),
        {("person", P2, "text_control_character", "reject")},
    ),
    "text_control_character: NUL in a cadre phone": (
        _set("cadre", "C1", phone="1390000\x000000"),
        {("cadre", "C1", "text_control_character", "reject"), *C1_CHILDREN},
    ),
    "source_time_in_future household": (
        _set("household", H2, source_updated_at=datetime(9999, 12, 30, tzinfo=UTC)),
        {("household", H2, "source_time_in_future", "reject"), *H2_CHILDREN},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rule_case(case):
    mutate, expected = CASES[case]
    rows = clean_rows()
    mutate(rows)
    assert issues(run(rows)) == expected


def test_every_rule_has_a_failing_case():
    from tests.unit.test_known_villages import RULES_TESTED  # rules needing the division list

    covered = {rule for _, expected in CASES.values() for (_, _, rule, _) in expected}
    assert covered | RULES_TESTED == set(RULES)


def test_levels_follow_the_catalogue():
    for _, expected in CASES.values():
        for _, _, rule, level in expected:
            assert RULES[rule].level == level


# ----------------------------------------------------------------------------------------------
# Passing examples at the edges.

PASSING = {
    "work_months 0 and 12": lambda rows: (
        find(rows, "person", P1).update(work_months=12),
        find(rows, "person", P2).update(work_months=0),
    ),
    "exit in the identification year": _set("household", H2, exit_year=2014),
    "two other causes": _set("household", H1, other_causes=["lack_skills", "lack_labor"]),
    "income zero": _set("household", H1, income_per_capita=0.0),
    "income exactly the line": _set("household", H2, income_per_capita=2952.0),
    "health several without healthy": _set("person", Q1, health=["chronic", "disabled"]),
    "empty optional columns": _set(
        "person", P2, ethnicity=None, health=None, work_months=None, sex=None, birth_date=None
    ),
    "upgraded legacy number": _set(
        "person", Q1, id_number=idn.upgrade_15("612522460202020"), id_upgraded=True
    ),
    "school age lower edge (primary at 5)": lambda rows: find(rows, "person", P3).update(
        birth_date=date(2011, 7, 1),
        id_number=_id(date(2011, 7, 1), "male", order=30),
    ),
    "school age upper edge (college at 35, birthday today)": lambda rows: find(
        rows, "person", P2
    ).update(
        school_status="college",
        birth_date=date(1981, 7, 1),
        id_number=_id(date(1981, 7, 1), "female", order=20),
    ),
    "head, spouse and other take any sex": _resex(P2, "male"),
    "project without village": _set("project", "P1", village_code=None),
    "cadre without ID number": _set("cadre", "C1", id_number=None),
    "exited and unsafe is fine when not exited": _set(
        "household", H1, housing_safe=False, water_safe=False
    ),
}


@pytest.mark.parametrize("case", list(PASSING))
def test_passing_case(case):
    rows = clean_rows()
    PASSING[case](rows)
    assert issues(run(rows)) == set()


def test_school_age_uses_beijing_date_of_source_updated_at():
    # born 2001-07-02: 15 on 2016-07-02 in Beijing, which is still 2016-07-01 in UTC
    rows = clean_rows()
    born = date(2001, 7, 2)
    find(rows, "person", P3).update(
        birth_date=born,
        id_number=_id(born, "male", order=30),
        school_status="senior1",
        source_updated_at=datetime(2016, 7, 1, 17, 0, tzinfo=UTC),  # 01:00 on 2 July in Beijing
    )
    assert issues(run(rows)) == set()
    find(rows, "person", P3).update(school_status="primary")
    assert issues(run(rows)) == set()  # 15 is still primary age
    find(rows, "person", P3).update(source_updated_at=None, school_status="preschool")
    assert issues(run(rows, as_of=date(2016, 7, 1))) == {
        ("person", P3, "school_age_implausible", "finding")
    }


# ----------------------------------------------------------------------------------------------
# Cascades, findings on accepted rows only, context.


def test_parent_rejected_cascade_names_the_household_rule():
    rows = clean_rows()
    find(rows, "household", H1)["main_cause"] = "因病返贫"
    result = run(rows)
    assert result["household"].accepted["household_no"].to_list() == [H2]
    assert result["person"].accepted["person_no"].to_list() == [Q1]
    for entity in ("measure", "loan", "household_cadre"):
        assert result[entity].accepted.is_empty()
        rej = result[entity].rejects.row(0, named=True)
        assert rej["rule"] == "parent_rejected"
        assert rej["value"] == H1
        assert "unknown_code" in rej["message"]


def test_children_of_a_rejected_household_are_not_orphans_even_when_it_exists_in_core():
    rows = clean_rows()
    find(rows, "household", H1)["income_per_capita"] = -5.0
    existing = pl.DataFrame({"household_no": [H1]})
    got = issues(run(rows, existing_households=existing))
    assert got == {("household", H1, "negative_income", "reject")} | H1_CHILDREN


def test_findings_are_skipped_on_rejected_rows():
    rows = clean_rows()
    # a female 之子 (finding) who also works 13 months (reject): only the reject is reported
    _resex(P3, "female")(rows)
    find(rows, "person", P3)["work_months"] = 13
    # an exited household with unsafe housing (finding) and a bad exit year (reject)
    find(rows, "household", H2).update(housing_safe=False, exit_year=2010)
    got = issues(run(rows))
    assert (
        got
        == {
            ("person", P3, "work_months_range", "reject"),
            ("household", H2, "exit_before_identified", "reject"),
        }
        | H2_CHILDREN
    )


def test_one_reject_row_per_record_and_rule_with_plain_message():
    rows = clean_rows()
    find(rows, "person", P2).update(ethnicity="汉", education="中专")
    rej = run(rows)["person"].rejects
    assert rej.height == 1
    row = rej.row(0, named=True)
    assert row["column_name"] == "ethnicity"
    assert row["value"] == "汉"
    assert "ethnicity: '汉' is not a ethnicity code" in row["message"]
    assert "education: '中专' is not a education code" in row["message"]
    assert row["raw_ref"] == "test:1:person#1"
    assert rej.columns == [
        "entity",
        "source_key",
        "rule",
        "column_name",
        "value",
        "message",
        "raw_ref",
    ]


def test_messages_name_column_and_value():
    rows = clean_rows()
    find(rows, "household", H2)["main_cause"] = "因病返贫"
    find(rows, "person", P1)["health"] = ["healthy", "头疼"]
    find(rows, "person", P2)["id_number"] = BAD_CHECK
    result = run(rows)
    hh = result["household"].rejects.row(0, named=True)
    assert hh["message"] == "main_cause: '因病返贫' is not a poverty_cause code"
    person = {
        r["rule"]: r
        for r in result["person"].rejects.iter_rows(named=True)
        if r["source_key"] == P1
    }
    assert person["unknown_code"]["value"] == "头疼"
    assert person["unknown_code"]["message"] == "health: '头疼' is not a health code"
    checksum = result["person"].rejects.filter(pl.col("source_key") == P2).row(0, named=True)
    assert checksum["message"].startswith(f"id_number: '{BAD_CHECK}' has a wrong check digit")
    assert checksum["message"].endswith(f"gives {idn.check_digit(BAD_CHECK[:17])})")


def test_parse_errors_mask_the_column_rules_of_that_column_only():
    rows = clean_rows()
    rec = find(rows, "person", P2)
    rec.update(birth_date=None, work_months=99)
    rec["parse_errors"] = [{"rule": "bad_date", "column": "birth_date", "value": "1972-02-30"}]
    got = issues(run(rows))
    assert got == {
        ("person", P2, "bad_date", "reject"),
        ("person", P2, "work_months_range", "reject"),
    }


def test_incremental_batch_counts_members_in_core():
    rows = clean_rows()
    # the sync resends household H1 and its son only; head and spouse are in core
    rows["person"] = [r for r in rows["person"] if r["person_no"] == P3]
    rows["household"] = [find(rows, "household", H1)]
    for entity in ("measure", "loan", "project", "region", "cadre", "household_cadre"):
        rows.pop(entity)
    existing_members = pl.DataFrame(
        [
            {
                "household_no": H1,
                "person_no": P1,
                "relation_to_head": "head",
                "sex": "male",
                "birth_date": date(1970, 5, 1),
                "health": ["healthy"],
                "labor_skill": "ordinary",
            },
            {
                "household_no": H1,
                "person_no": P2,
                "relation_to_head": "spouse",
                "sex": "female",
                "birth_date": date(1972, 3, 3),
                "health": ["healthy"],
                "labor_skill": "ordinary",
            },
            # the batch's version of the son wins over core's
            {
                "household_no": H1,
                "person_no": P3,
                "relation_to_head": "head",
                "sex": "male",
                "birth_date": date(2008, 9, 1),
                "health": ["healthy"],
                "labor_skill": "none",
            },
        ]
    )
    villages = pl.DataFrame({"code": [V1, V2]})
    got = issues(run(rows, existing_members=existing_members, existing_villages=villages))
    assert got == set()
    # without core's members the household looks headless
    got = issues(run(rows, existing_villages=villages))
    assert got == {
        ("household", H1, "head_count", "reject"),
        ("person", P3, "parent_rejected", "reject"),
    }


def test_existing_keys_satisfy_orphan_checks():
    rows = {
        "measure": [
            {
                "measure_id": "M9",
                "household_no": "6110021002990009",
                "category": "industry",
                "year": 2016,
            }
        ],
        "household_cadre": [{"household_no": "6110021002990009", "cadre_id": "C7"}],
        "project": [
            {
                "project_id": "P9",
                "village_code": "611002100299",
                "category": "road",
                "name": "路",
                "status": "planned",
            }
        ],
    }
    context = {
        "existing_households": pl.DataFrame({"household_no": ["6110021002990009"]}),
        "existing_cadres": pl.DataFrame({"cadre_id": ["C7"]}),
        "existing_villages": pl.DataFrame({"code": ["611002100299"]}),
    }
    assert issues(run(rows, **context)) == set()
    assert issues(
        run(
            rows,
            existing_villages=context["existing_villages"],
            existing_households=pl.DataFrame({"household_no": ["x"]}),
            existing_cadres=pl.DataFrame({"cadre_id": ["x"]}),
        )
    ) == {
        ("measure", "M9", "orphan_household", "reject"),
        ("household_cadre", "6110021002990009:C7", "orphan_household", "reject"),
        ("household_cadre", "6110021002990009:C7", "orphan_cadre", "reject"),
    }


def test_orphan_checks_are_skipped_without_any_parent_knowledge():
    rows = clean_rows()
    for entity in ("region", "household", "cadre", "person"):
        rows.pop(entity)
    assert issues(run(rows)) == set()


def test_cadre_registered_poor_from_context():
    rows = {"cadre": clean_rows()["cadre"]}
    poor = pl.DataFrame({"id_number": [rows["cadre"][0]["id_number"]]})
    assert issues(run(rows, poor_id_numbers=poor)) == {
        ("cadre", "C1", "cadre_registered_poor", "finding")
    }
    assert issues(run(rows)) == set()


def test_duplicate_ids_larger_person_no_is_the_duplicate():
    rows = clean_rows()
    shared = find(rows, "person", P1)["id_number"]
    find(rows, "household", H1)["member_count"] = 5
    rows["person"] += [
        _person(H1 + "05", "other", "male", date(1970, 5, 1), id_number=shared),
        _person(H1 + "04", "other", "male", date(1970, 5, 1), id_number=shared),
    ]
    conflicts = run(rows)["person"].conflicts
    assert conflicts.to_dicts() == [
        {"id_number": shared, "source_key": H1 + "04", "other_source_key": P1},
        {"id_number": shared, "source_key": H1 + "05", "other_source_key": P1},
    ]
    # a conflict does not reject
    assert run(rows)["person"].accepted.height == 6


def test_malformed_ids_are_not_conflicts():
    rows = clean_rows()
    for no in (P1, P2):
        rec = find(rows, "person", no)
        rec["id_number"] = "6.11026E+17"
        rec["parse_errors"] = [
            {"rule": "id_number_as_number", "column": "id_number", "value": "6.11026E+17"}
        ]
    assert run(rows)["person"].conflicts.is_empty()


def test_column_schema_describes_every_column_with_its_chinese_label():
    for entity in KEYS | {"household_cadre": None}:
        cols = column_schema(entity)
        assert [c[0] for c in cols] == list(build(clean_rows())[entity].columns)
        assert all(desc and desc.split(" — ")[0] for _, _, desc in cols)
    household = dict((n, d) for n, _, d in column_schema("household"))
    assert household["household_no"].startswith("户编号")


def test_a_frame_that_breaks_the_layout_raises():
    frames = build(clean_rows())
    frames["loan"] = frames["loan"].with_columns(pl.col("term_months").cast(pl.Int64))
    with pytest.raises(ValueError, match="canonical layout"):
        validate_county(frames, ValidationContext(as_of=AS_OF))


def test_table_schema_for_dagster():
    schema = table_schema("household")
    names = [c.name for c in schema.columns]
    staged = [n for n, _, _ in column_schema("household") if n != "parse_errors"]
    assert names[: len(staged)] == staged  # the model's columns first, in order
    assert {"county_code", "deleted_at", "first_seen_at", "sync_run_id"} <= set(names)
    assert "parse_errors" not in names  # staging only, not a core column
    assert "person_key" in [c.name for c in table_schema("person").columns]
    assert schema.columns[0].description.startswith("户编号")


def test_full_listing_ignores_members_in_core():
    # the spouse left the household at the source: a full listing no longer carries her, and
    # the household now declares 2 members; core still has her until this sync is merged
    rows = clean_rows()
    rows["person"] = [r for r in rows["person"] if r["person_no"] != P2]
    find(rows, "household", H1)["member_count"] = 2
    in_core = pl.DataFrame(
        [{"household_no": H1, "person_no": P2, "relation_to_head": "spouse", "sex": "female"}]
    )
    assert issues(run(rows, existing_members=in_core, full_listing={"person"})) == set()
    # read as an incremental batch, core's spouse still counts
    assert issues(run(rows, existing_members=in_core)) == {
        ("household", H1, "member_count_mismatch", "finding")
    }


def test_tens_of_thousands_of_children_of_a_rejected_household_validate():
    """Issue 10: from 16,384 rows on, polars' filter did not broadcast the literal predicate of
    parent_rejected and raised ShapeError; 60,000 children must simply be rejected."""
    rows = clean_rows()
    find(rows, "household", H1).update(poverty_attribute="no_such_code")
    frames = build(rows)
    n = 60_000
    many = pl.concat([frames["person"].filter(pl.col("person_no") == P1)] * n).with_columns(
        (pl.lit(H1) + pl.int_range(n).cast(pl.String).str.zfill(5)).alias("source_key")
    )
    frames["person"] = pl.concat([many, frames["person"]])
    result = validate_county(frames, ValidationContext(as_of=AS_OF))
    rules = result["person"].rejects.group_by("rule").len()
    assert dict(rules.iter_rows()) == {"parent_rejected": n + 3}
    assert result["person"].accepted.height == 1  # Q1, of the other household
