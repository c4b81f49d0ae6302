"""Village and town codes are checked against the known divisions (seeds/divisions plus the
historical codes): an unknown village is a finding on the household, never a new region."""

from __future__ import annotations

import polars as pl
import pytest

import warehouse
from seeds import divisions
from tests.unit.test_schemas_validate import H1, V1, V2, clean_rows, find, issues, run
from warehouse import region_seed

#: rules this module gives their failing cases (test_every_rule_has_a_failing_case)
RULES_TESTED = {"unknown_village", "unknown_division"}
V9 = "611002100299"  # a mistyped village: in no list


def _known(villages=(V1, V2), towns=("611002100",)):
    return {
        "known_villages": pl.DataFrame({"code": list(villages)}),
        "known_towns": pl.DataFrame({"code": list(towns)}),
    }


def test_known_villages_pass():
    assert issues(run(clean_rows(), **_known())) == set()


def test_unknown_village_is_a_finding_and_the_household_is_kept():
    rows = clean_rows()
    hh = find(rows, "household", H1)
    new_no = V9 + "0001"
    hh.update(household_no=new_no, village_code=V9, head_person_no=new_no + "01")
    for entity in ("person", "measure", "loan"):
        for r in rows[entity]:
            if r.get("household_no") == H1:
                r["household_no"] = new_no
                if entity == "person":
                    r["person_no"] = new_no + r["person_no"][-2:]
    rows["household_cadre"] = [r for r in rows["household_cadre"] if r["household_no"] != H1]
    # a region row for it (the workbook derives one from the 户编号): never created
    rows["region"].append({"code": V9, "level": "village", "name": "错村", "parent_code": V9[:9]})
    result = run(rows, **_known())
    assert issues(result) == {
        ("household", new_no, "unknown_village", "finding"),
        ("region", V9, "unknown_division", "reject"),
    }
    assert new_no in result["household"].accepted["household_no"].to_list()
    assert V9 not in result["region"].accepted["code"].to_list()
    # without a list for the county, the old rule applies: the village must be known
    old = issues(run(rows))
    assert ("household", new_no, "orphan_village", "reject") not in old  # batch region exists


def test_historical_codes_count_as_known(tmp_path, monkeypatch):
    for f in ("counties.csv", "towns.csv", "villages.csv"):
        (tmp_path / f).write_bytes((divisions.seeds.DIVISIONS / f).read_bytes())
    (tmp_path / "historical.csv").write_text(
        "code,name,parent_code,source,note\n"
        "611021100299,老村,611021100,洛南县民政局 2015 区划调整文件,merged 2018\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HUB_DIVISIONS", str(tmp_path))
    _towns, villages = divisions.known_for("611021")
    assert "611021100299" in villages["code"].to_list()
    assert divisions.known_for("611099") is None  # a county the list does not cover
    with (tmp_path / "historical.csv").open("a", encoding="utf-8") as f:
        f.write("611021100298,无据村,611021100,,\n")
    with pytest.raises(ValueError, match="no source"):
        divisions.known()


def test_the_live_warehouse_is_seeded_with_every_division_once(hub_home):
    with warehouse.connect() as con:
        levels = dict(
            con.execute(
                "SELECT level, count(*) FROM core.region WHERE source_platform = 'seed' GROUP BY 1"
            ).fetchall()
        )
        counties = con.execute(
            "SELECT code, name, parent_code FROM core.region WHERE level = 'county' ORDER BY 1"
        ).fetchall()
        assert (
            region_seed.seed_regions(
                con, warehouse.merge_entities(con)["region"].identifiers()["hash_fields"]
            )
            == 0
        )  # unchanged list: nothing to do
    assert levels == {"county": 7, "town": 110, "village": 1314}
    assert len(counties) == 7 and all(p == "611000" for _, _, p in counties)
    assert ("611021", "洛南县", "611000") in counties
