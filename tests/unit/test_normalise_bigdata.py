"""洛南 big-data normaliser: hand-written API v2 pages → canonical frames."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from base.errors import SourceError
from pipelines.connectors.bigdata.normalise import normalise
from pipelines.landing import LandingWriter, Page, read_manifest
from schemas.columns import frame_schema
from schemas.id_number import make_id
from seeds.registry import county

LUONAN = county("luonan")
BASE = "http://127.0.0.1:9/api/v2"
HH = "6110211001010001"  # village 611021100101, town 611021100
HEAD_ID = make_id("611021", date(1960, 3, 1), 11, "male")
WIFE_ID = make_id("611021", date(1962, 5, 2), 12, "female")


def envelope(items, **data) -> bytes:
    body = {"code": 0, "message": "ok", "data": {"items": items, "hasMore": False, **data}}
    return json.dumps({**body, "requestId": "r1"}, ensure_ascii=False).encode()


def page(entity: str, items, url: str | None = None, **meta) -> Page:
    api = {"person": "members", "household": "households", "region": "regions"}.get(entity, entity)
    return Page(entity, url or f"{BASE}/{api}?limit=500", envelope(items), "application/json", meta)


def land(tmp_path, pages: list[Page]):
    with LandingWriter(LUONAN, root=tmp_path) as writer:
        writer.write_all(pages)
    return read_manifest(writer.dir)


def household(**over):
    rec = {
        "id": HH,
        "householdNo": HH,
        "villageCode": HH[:12],
        "headMemberNo": HH + "01",
        "attribute": "02",
        "status": "1",
        "mainCause": "01",
        "otherCauses": ["07", "08"],
        "identifiedYear": 2014,
        "exitYear": 2016,
        "relapseYear": None,
        "incomePerCapita": 3520.5,
        "memberCount": 2,
        "housingSafe": True,
        "waterSafe": False,
        "phone": "13800000000",
        "updatedAt": "2016-07-14T09:30:00.123+08:00",
    }
    return {**rec, **over}


def member(seq: int, **over):
    rec = {
        "id": f"{HH}{seq:02d}",
        "memberNo": f"{HH}{seq:02d}",
        "householdNo": HH,
        "name": "张三",
        "idNo": HEAD_ID,
        "sex": "1",
        "birthDate": "1960-03-01",
        "relation": "01",
        "ethnicity": "01",
        "education": "2",
        "schoolStatus": "00",
        "health": ["2", "3"],
        "laborSkill": "1",
        "workStatus": "3",
        "workMonths": 6,
        "seriousIllnessInsured": True,
        "updatedAt": "2016-07-14T09:30:00.000+08:00",
    }
    return {**rec, **over}


REGIONS = [
    {"id": "611021", "code": "611021", "name": "洛南县", "level": "county", "parentCode": "611000",
     "poorVillage": False, "poorVillageExitYear": None, "updatedAt": "2016-01-01T00:00:00.000+08:00"},
    {"id": "611021100", "code": "611021100", "name": "城关镇", "level": "town",
     "parentCode": "611021", "poorVillage": False, "poorVillageExitYear": None,
     "updatedAt": "2016-01-01T00:00:00.000+08:00"},
    {"id": "611021100101", "code": "611021100101", "name": "东村", "level": "village",
     "parentCode": "611021100", "poorVillage": True, "poorVillageExitYear": 2016,
     "updatedAt": "2016-01-01T00:00:00.000+08:00"},
    {"id": "611021400", "code": "611021400", "name": "林场", "level": "town",
     "parentCode": "611021", "poorVillage": False, "poorVillageExitYear": None,
     "updatedAt": "2016-01-01T00:00:00.000+08:00"},
    {"id": "611021400201", "code": "611021400201", "name": "林场村", "level": "village",
     "parentCode": "611021400", "poorVillage": False, "poorVillageExitYear": None,
     "updatedAt": "2016-01-02T00:00:00.000+08:00"},
]  # fmt: skip


def full_sync(tmp_path):
    pages = [
        page("region", REGIONS),
        page("household", [household()]),
        page(
            "person",
            [
                member(1),
                member(2, name="李四", idNo=f" {WIFE_ID.lower()} ", sex="2", relation="02",
                       birthDate="1962-05-02", health=[], workStatus=None, education="9",
                       seriousIllnessInsured=False),
            ],
        ),
        page("measure", [{"id": "M1", "householdNo": HH, "category": "01", "year": 2016,
                          "amount": None, "description": "养猪", "updatedAt": "2016-07-01T08:00:00.000+08:00"}]),
        page("loan", [{"id": "L1", "householdNo": HH, "lender": "农商行", "principal": 50000,
                       "issuedOn": "2016-03-01", "termMonths": 36, "annualRate": 0.0435,
                       "interestSubsidy": 2175.0, "status": "1",
                       "updatedAt": "2016-07-01T08:00:00.000+08:00"}]),
        page("project", [{"id": "P1", "villageCode": None, "category": "01", "name": "通村路",
                          "budget": 1000000, "disbursed": 250000.5, "status": "2",
                          "startOn": "2016-04-01", "endOn": None, "householdsBenefited": 120,
                          "updatedAt": "2016-07-01T08:00:00.000+08:00"}]),
        page("cadre", [{"id": "C1", "name": "王五", "idNo": make_id("611002", date(1980, 1, 1), 31),
                        "sex": "1", "phone": "139", "unitName": "市财政局", "unitType": "1",
                        "firstSecretary": True, "residentTeam": False,
                        "updatedAt": "2016-07-01T08:00:00.000+08:00"}]),
        page("household_cadre", [{"id": f"{HH}:C1", "householdNo": HH, "cadreId": "C1",
                                  "since": "2015-10-01", "updatedAt": "2016-07-01T08:00:00.000+08:00"}]),
        Page("deletions:household", f"{BASE}/deletions?entity=households", envelope(
            [{"entity": "households", "id": "6110211001010099", "deletedAt": "2016-07-10T10:00:00.000+08:00"}]),
            "application/json", {}),
        Page("deletions:person", f"{BASE}/deletions?entity=members", envelope([]), "application/json", {}),
        Page("stats", f"{BASE}/stats", json.dumps({"code": 0, "message": "ok", "data": {
            "asOf": "2016-07-15T00:00:00+08:00", "counts": {"households": 1, "members": 2}}}).encode(),
             "application/json", {}),
    ]  # fmt: skip
    return normalise(LUONAN, land(tmp_path, pages))


def test_full_sync_all_entities(tmp_path):
    staged = full_sync(tmp_path)
    for entity, df in staged.frames.items():
        assert df.schema == pl.Schema(frame_schema(entity)), entity
    assert staged.full_listing == set(staged.frames) == {
        "region", "household", "person", "measure", "loan", "project", "cadre", "household_cadre"
    }  # fmt: skip
    assert staged.source_counts == {"household": 1, "person": 2}
    assert staged.as_of is None

    hh = staged.frames["household"].row(0, named=True)
    assert hh["town_code"] == "611021100" and hh["village_code"] == "611021100101"
    assert hh["poverty_attribute"] == "dibao" and hh["poverty_status"] == "exited"
    assert hh["main_cause"] == "illness" and hh["main_cause_label"] is None
    assert hh["other_causes"] == ["lack_skills", "lack_labor"]
    assert hh["income_per_capita"] == 3520.5 and hh["member_count"] == 2
    assert hh["housing_safe"] is True and hh["water_safe"] is False
    assert hh["source_updated_at"] == datetime(2016, 7, 14, 1, 30, 0, 123000, tzinfo=UTC)
    assert hh["raw_ref"].endswith(":2#0") and hh["parse_errors"] == []

    people = staged.frames["person"].sort("person_no")
    head, wife = people.rows(named=True)
    assert head["sex"] == "male" and head["health"] == ["chronic", "serious_illness"]
    assert head["work_status"] == "in_province" and head["relation_to_head"] == "head"
    assert head["birth_date"] == date(1960, 3, 1) and head["id_upgraded"] is False
    assert wife["id_number"] == WIFE_ID  # trimmed, upper-case X
    assert wife["health"] == [] and wife["work_status"] == "not_working"
    assert wife["education"] == "9"  # unknown code stays as sent
    assert wife["raw_ref"].endswith(":3#1")

    regions = {r["code"]: r for r in staged.frames["region"].rows(named=True)}
    assert regions["611021"]["is_statistical_unit"] is False
    assert regions["611021100"]["is_statistical_unit"] is False
    assert regions["611021400"]["is_statistical_unit"] is True
    assert regions["611021400201"]["is_statistical_unit"] is True
    assert regions["611021100101"]["is_poor_village"] is True
    assert regions["611021100101"]["poor_village_exit_year"] == 2016

    assert staged.frames["measure"]["amount"].to_list() == [None]
    loan = staged.frames["loan"].row(0, named=True)
    assert loan["annual_rate"] == 0.0435 and loan["issued_on"] == date(2016, 3, 1)
    project = staged.frames["project"].row(0, named=True)
    assert project["village_code"] is None and project["category"] == "road"
    assert project["status"] == "in_progress" and project["end_on"] is None
    cadre = staged.frames["cadre"].row(0, named=True)
    assert cadre["unit_type"] == "gov_agency" and cadre["is_first_secretary"] is True
    pair = staged.frames["household_cadre"].row(0, named=True)
    assert pair["source_key"] == f"{HH}:C1" and pair["since"] == date(2015, 10, 1)

    assert staged.deletions["household"].to_dicts() == [
        {"source_key": "6110211001010099",
         "deleted_at": datetime(2016, 7, 10, 2, 0, tzinfo=UTC)}
    ]  # fmt: skip
    assert staged.deletions["person"].height == 0
    assert staged.watermarks["household"] == "2016-07-14T09:30:00.123+08:00"
    assert staged.watermarks["region"] == "2016-01-02T00:00:00.000+08:00"
    assert staged.watermarks["deletions:household"] == "2016-07-10T10:00:00.000+08:00"


def test_parse_errors_and_legacy_ids(tmp_path):
    legacy = "611021600301123"  # 15-digit number of someone born 1960-03-01
    pages = [
        page("household", [household(incomePerCapita="abc", housingSafe="maybe",
                                     identifiedYear="2014", memberCount=2.5,
                                     updatedAt="yesterday")]),
        page("person", [member(1, idNo=legacy, birthDate="1960-13-45")]),
    ]  # fmt: skip
    staged = normalise(LUONAN, land(tmp_path, pages))
    hh = staged.frames["household"].row(0, named=True)
    assert hh["income_per_capita"] is None and hh["housing_safe"] is None
    assert hh["identified_year"] == 2014 and hh["member_count"] is None
    assert hh["source_updated_at"] is None
    assert sorted(hh["parse_errors"], key=lambda e: e["column"]) == [
        {"rule": "bad_boolean", "column": "housing_safe", "value": "maybe"},
        {"rule": "bad_number", "column": "income_per_capita", "value": "abc"},
        {"rule": "bad_number", "column": "member_count", "value": "2.5"},
        {"rule": "bad_date", "column": "source_updated_at", "value": "yesterday"},
    ]
    person = staged.frames["person"].row(0, named=True)
    assert person["id_upgraded"] is True and len(person["id_number"]) == 18
    assert person["id_number"].startswith("61102119600301123")
    assert person["birth_date"] is None
    assert person["parse_errors"] == [
        {"rule": "bad_date", "column": "birth_date", "value": "1960-13-45"}
    ]


def test_incremental_overlap_keeps_newest(tmp_path):
    since = "updatedAfter=2016-07-01T00:00:00.000%2B08:00"
    newer = "2016-07-15T08:00:00.500+08:00"
    pages = [
        # Overlapping incremental windows: the member comes twice, newest first.
        page("person", [member(1, name="新", updatedAt=newer)], f"{BASE}/members?{since}"),
        page("person", [member(1, name="旧"), member(2, idNo=WIFE_ID)], f"{BASE}/members?{since}"),
        # Same timestamp twice: the later page wins.
        page("household", [household(phone="1")], f"{BASE}/households?{since}"),
        page("household", [household(phone="2")], f"{BASE}/households?{since}"),
        page("region", []),  # a full listing that happens to be empty
    ]
    previous = {"person": "2016-07-01T00:00:00.000+08:00", "cadre": "2016-06-01T00:00:00.000+08:00"}
    staged = normalise(LUONAN, land(tmp_path, pages), previous)
    people = staged.frames["person"].sort("person_no")
    assert people["name"].to_list() == ["新", "张三"]
    assert staged.frames["household"]["phone"].to_list() == ["2"]
    assert staged.full_listing == {"region"}
    assert staged.frames["region"].height == 0
    assert staged.watermarks["person"] == newer
    assert staged.watermarks["cadre"] == "2016-06-01T00:00:00.000+08:00"  # nothing new: kept
    assert "region" not in staged.watermarks


def test_watermark_never_goes_back(tmp_path):
    pages = [page("household", [household()], f"{BASE}/households?updatedAfter=x")]
    previous = {"household": "2016-08-01T00:00:00.000+08:00"}
    staged = normalise(LUONAN, land(tmp_path, pages), previous)
    assert staged.watermarks["household"] == "2016-08-01T00:00:00.000+08:00"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "HTML"),
        (b'{"code": 0, "data": {"items": [{"id": 1', "truncated JSON"),
        (b'{"code": 0, "message": "ok", "data": {"rows": []}}', "data.items"),
        (b'{"code": 50001, "message": "database busy", "data": null}', "50001"),
        (envelope([{k: v for k, v in member(1).items() if k != "idNo"}]), "idNo"),
    ],
)
def test_malformed_pages_raise_source_error(tmp_path, body, problem):
    url = f"{BASE}/members?limit=500"
    manifest = land(tmp_path, [Page("person", url, body, "application/json", {})])
    with pytest.raises(SourceError) as err:
        normalise(LUONAN, manifest)
    message = str(err.value)
    assert LUONAN.label in message and url in message and problem in message
