"""Marts on a tiny hand-counted city, the PII scan, and publishing the snapshot."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pytest

import warehouse
from tests.marts_definition import assert_marts_keep_one_record_per_person
from tests.unit.test_warehouse_fixtures import (
    LUONAN,
    SHANGNAN,
    V,
    frame,
    household,
    issues,
    merge,
    person,
)

A, B, C, E = "6110211010010001", "6110211010010002", "6110211010020001", "6110211010010003"
D = "6110231010010001"
ID_A1, ID_A2, ID_B1, ID_C1, ID_D2, ID_E1 = (
    "611021194601011234", "611021200601012345", "611021197601013456",
    "611021193601014567", "611023198601015678", "61102119500101678X",
)  # fmt: skip
AT = datetime(2016, 7, 1, 4, tzinfo=UTC)  # the data's clock: ages are counted on 2016-07-01


def p(no, ident, born, health, **kw):
    return person(
        no, ident, birth_date=date.fromisoformat(born), health=health, source_updated_at=AT, **kw
    )


REGIONS = [
    {"code": "611021", "level": "county", "name": "洛南县", "parent_code": "611000"},
    {
        "code": "611021101",
        "level": "town",
        "name": "城关街道",
        "parent_code": "611021",
        "is_statistical_unit": False,
    },
    {
        "code": "611021400",
        "level": "town",
        "name": "林场",
        "parent_code": "611021",
        "is_statistical_unit": True,
    },
    {
        "code": "611021101001",
        "level": "village",
        "name": "一村",
        "parent_code": "611021101",
        "is_poor_village": True,
    },
    {
        "code": "611021101002",
        "level": "village",
        "name": "二村",
        "parent_code": "611021101",
        "is_poor_village": False,
    },
]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """洛南: A (general, 2 members), B (dibao, exited 2016), C (tekun, exited 2015, relapsed),
    E (deleted later); 商南: D (general) whose first member has A01's ID number."""
    db = tmp_path_factory.mktemp("city") / "hub.duckdb"
    with warehouse.connect(db) as con:
        merge(con, LUONAN, "l1", day="2016-07-01",
              households=[household(A, member_count=2),
                          household(B, poverty_attribute="dibao", poverty_status="exited", exit_year=2016, main_cause="disability"),
                          household(C, poverty_attribute="tekun", poverty_status="relapsed", exit_year=2015, relapse_year=2016,
                                    main_cause="other", main_cause_label="因婚", other_causes=["illness"]),
                          household(E)],
              persons=[p(A + "01", ID_A1, "1946-01-01", ["chronic"], name="张建国", sex="male"),
                       p(A + "02", ID_A2, "2006-01-01", ["healthy"], name="张小明", relation_to_head="son", sex="male"),
                       p(B + "01", ID_B1, "1976-01-01", ["disabled"], name="李秀兰"),
                       p(C + "01", ID_C1, "1936-01-01", ["serious_illness"], name="赵大山", sex="male"),
                       p(E + "01", ID_E1, "1950-01-01", ["healthy"], name="孙桂芳")],
              other={
                  "region": REGIONS,
                  "loan": [{"loan_id": "L1", "household_no": A, "principal": 50000, "status": "active", "annual_rate": 0.0435},
                           {"loan_id": "L2", "household_no": B, "principal": 30000, "status": "repaid", "annual_rate": 0.0435}],
                  "project": [{"project_id": "P1", "village_code": "611021101001", "category": "road", "name": "通村路",
                               "budget": 100000, "disbursed": 50000, "status": "completed"},
                              {"project_id": "P2", "category": "water", "name": "饮水工程", "budget": 20000,
                               "disbursed": 0, "status": "planned"}],
                  "cadre": [{"cadre_id": "K1", "name": "周志强", "id_number": "610102197001011111", "phone": "13700001111",
                             "unit_type": "gov_agency", "is_first_secretary": True, "is_resident_team": True}],
                  "household_cadre": [{"household_no": A, "cadre_id": "K1"}, {"household_no": B, "cadre_id": "K1"}],
              })  # fmt: skip
        merge(con, SHANGNAN, "s1", day="2016-07-02",
              households=[household(D, main_cause="lack_capital", member_count=2, phone="13800002222")],
              persons=[p(D + "01", ID_A1, "1946-01-01", ["chronic"], name="张建国", sex="male"),
                       p(D + "02", ID_D2, "1986-01-01", ["healthy"], name="陈丽", relation_to_head="spouse")],
              other={"loan": [{"loan_id": "L3", "household_no": D, "principal": 20000, "status": "active"}]})  # fmt: skip
        # 洛南's next (incremental) sync: E deleted by the feed, F rejected.
        feed = pl.DataFrame({"source_key": [E], "deleted_at": [AT]},
                            schema={"source_key": pl.String, "deleted_at": pl.Datetime("us", "UTC")})  # fmt: skip
        resent = [household(A, member_count=2)]
        rejected = household(
            "6110211010010004", poverty_attribute=None
        )  # F: kept in ops.quarantine
        merge(con, LUONAN, "l2", day="2016-07-03", mode="incremental", households=[*resent, rejected],
              deletions={"household": feed}, safety_share=0.5,
              validated={"household": V(frame("household", resent),
                                        rejects=issues("household", [("6110211010010004", "missing_value")]))})  # fmt: skip
        tables = warehouse.rebuild_marts(con)
    return db, tables


def query(db, sql):
    with warehouse.connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_marts_exist_and_are_documented(city):
    db, tables = city
    assert {"mart.county_summary", "mart.town_summary", "mart.village_summary", "mart.cause_breakdown",
            "mart.exit_progress", "mart.special_groups", "mart.loans_by_county", "mart.projects_by_category",
            "mart.sync_status", "mart.reconciliation", "mart.person"} <= set(tables)  # fmt: skip
    assert (
        query(
            db,
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'mart' AND comment IS NULL",
        )
        == []
    )
    assert query(db, "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'mart' "
                     "AND (comment IS NULL OR comment = '')") == []  # fmt: skip


def test_area_summaries(city):
    db, _ = city
    cols = (
        "households, persons, households_general, households_dibao, households_tekun, persons_general, "
        "persons_dibao, persons_tekun, households_not_exited, households_exited, households_relapsed"
    )
    got = {r[0]: r[1:] for r in query(db, f"SELECT county_code, {cols} FROM mart.county_summary")}
    # A01 and D01 share an ID number: one person, counted in 洛南 where it was first seen.
    assert got["611000"] == (4, 5, 2, 1, 1, 3, 1, 1, 2, 1, 1)
    assert got["611021"] == (3, 4, 1, 1, 1, 2, 1, 1, 1, 1, 1)
    assert got["611023"] == (1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0)
    assert query(
        db, "SELECT county_name FROM mart.county_summary WHERE county_code = '611021'"
    ) == [("洛南县",)]
    assert query(db, "SELECT town_code, households, persons FROM mart.town_summary ORDER BY 1") == [
        ("611021101", 3, 4), ("611023101", 1, 1)]  # fmt: skip
    assert query(db, "SELECT village_code, village_name, is_poor_village, households, persons "
                     "FROM mart.village_summary ORDER BY 1") == [
        ("611021101001", "一村", True, 2, 3), ("611021101002", "二村", False, 1, 1),
        ("611023101001", None, False, 1, 1)]  # fmt: skip


def test_causes_exits_groups_loans_projects(city):
    db, _ = city
    assert query(db, "SELECT cause, households_main, persons_main, households_any FROM mart.cause_breakdown "
                     "WHERE county_code = '611000' ORDER BY cause") == [
        ("disability", 1, 1, 1), ("illness", 1, 2, 2), ("lack_capital", 1, 1, 1), ("other", 1, 1, 1)]  # fmt: skip
    assert query(
        db,
        "SELECT exit_year, households_exited, persons_exited, relapsed_since, "
        "households_exited_cumulative, exited_share_cumulative FROM mart.exit_progress "
        "WHERE county_code = '611000' ORDER BY 1",
    ) == [(2015, 1, 1, 1, 1, 0.25), (2016, 1, 1, 0, 2, 0.5)]
    groups = dict(
        query(
            db,
            "SELECT group_code, persons FROM mart.special_groups_by_county WHERE county_code = '611000'",
        )
    )
    assert groups == {"any": 4, "disabled": 1, "serious_illness": 1, "chronic_illness": 1, "elderly": 2,
                      "child": 1, "tekun": 1}  # fmt: skip
    # the "any" row has its own label, not one of the groups' (an any_value over the groups)
    assert query(
        db,
        "SELECT DISTINCT group_label FROM mart.special_groups_by_county WHERE group_code = 'any'",
    ) == [("任一特殊群体",)]
    assert query(
        db,
        "SELECT loans, households, principal FROM mart.loans_by_county "
        "WHERE county_code = '611000' AND loan_status = 'all'",
    ) == [(3, 3, 100000)]
    assert query(
        db,
        "SELECT loans, principal FROM mart.loans_by_county "
        "WHERE county_code = '611021' AND loan_status = 'active'",
    ) == [(1, 50000)]
    assert query(db, "SELECT projects, projects_completed, projects_county_wide, budget, disbursed, disbursed_share "
                     "FROM mart.projects_by_category WHERE county_code = '611000' AND project_category = 'all'") == [
        (2, 1, 1, 120000, 50000, 0.4167)]  # fmt: skip


def test_sync_status_and_reconciliation(city):
    db, _ = city
    status = {r[0]: r[1:] for r in query(db, "SELECT county_code, latest_sync_run_id, latest_status, accepted, "
                                               "rejected, reject_rate, open_conflicts, live_households FROM mart.sync_status")}  # fmt: skip
    assert len(status) == 7
    assert status["611021"] == ("l2", "succeeded", 1, 1, 0.5, 1, 3)
    assert status["611023"][0] == "s1" and status["611023"][5:] == (1, 1)
    assert status["611026"] == (None, None, None, None, None, 0, 0)
    rec = {r[0]: r[1:] for r in query(db, "SELECT figure_id, reported_value, warehouse_value, difference, quarantined, "
                                            "deleted, accounted_difference, unexplained_difference, explanation "
                                            "FROM mart.reconciliation")}  # fmt: skip
    assert len(rec) == 19  # every row of seeds/reported_figures.csv
    assert rec["households_total"][:7] == (161200, 4, 4 - 161200, 1, 1, -2, 4 - 161200 + 2)
    assert rec["persons_total"][1:5] == (5, 5 - 490300, 0, 1)
    assert rec["households_dibao"][1:5] == (1, 1 - 37800, 0, 0)
    assert rec["special_group_persons"][1] == 4
    assert rec["counties"][1] == 2 and rec["towns"][1] == 1 and rec["poor_villages"][1] == 1
    assert (
        rec["cadres"][1] == 1 and rec["households_with_cadre"][1] == 2 and rec["projects"][1] == 2
    )
    assert rec["subsidised_loans_yuan"][1] == 100000
    assert rec["resident_teams"][1] is None and "does not hold" in rec["resident_teams"][-1]
    assert "1 rejected in the latest syncs" in rec["households_total"][-1]


def test_mart_person_is_its_definition_and_the_rest_are_duplicates(city):
    """商南's D01 has 洛南's A01's ID number and was seen a day later: one person, A01 kept."""
    db, _ = city
    with warehouse.connect(db, read_only=True) as con:
        assert assert_marts_keep_one_record_per_person(con) == 1
        assert con.execute(
            "SELECT household_no FROM mart.person WHERE birth_year = 1946"
        ).fetchall() == [(A,)]


PII_PATTERNS = {
    "id_number": re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"),
    "phone": re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])"),
}


def test_no_pii_in_any_mart(city):
    db, _ = city
    with warehouse.connect(db, read_only=True) as con:
        _scan_marts(con)


def _scan_marts(con):
    def values(sql):
        return {v for (v,) in con.execute(sql).fetchall() if v is not None}

    names = values("SELECT name FROM core.person UNION SELECT name FROM core.cadre")
    pii = values(
        "SELECT id_number FROM core.person UNION SELECT phone FROM core.household "
        "UNION SELECT id_number FROM core.cadre UNION SELECT phone FROM core.cadre"
    )
    assert len(names) == 7 and len(pii) >= 8
    columns = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'mart'"
    ).fetchall()
    assert not [c for _, c in columns if c in ("name", "id_number", "phone", "person_no")]
    for table, column in columns:
        for value in values(f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM mart."{table}"'):
            for kind, pattern in PII_PATTERNS.items():
                assert not pattern.search(value), f"mart.{table}.{column} holds a {kind}: {value}"
            assert not any(n in value for n in names), f"mart.{table}.{column} holds a name"
            assert not any(s in value for s in pii), f"mart.{table}.{column} holds PII"


def test_publish_snapshot_with_a_reader_held_open(city, tmp_path):
    db, _ = city
    live = tmp_path / "live.duckdb"
    live.write_bytes(db.read_bytes())
    snap = tmp_path / "snap" / "snapshot.duckdb"
    pii = tmp_path / "restricted" / "pii-snapshot.duckdb"
    assert warehouse.publish_snapshot(live, snap, pii) == snap
    reader = duckdb.connect(str(snap), read_only=True)
    try:
        schemas = {
            s
            for (s,) in reader.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE NOT internal"
            ).fetchall()
        }
        assert {"core", "ops", "mart"} <= schemas and "raw" not in schemas
        assert reader.execute("SELECT count(*) FROM core.household").fetchone()[0] == 5
        assert reader.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'core' AND "
                              "table_name = 'household' AND column_name = 'household_no'").fetchone()[0].startswith(
            "household_no — 户编号")  # fmt: skip
        assert (
            reader.execute(
                "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'mart' AND comment IS NULL"
            ).fetchone()[0]
            == 0
        )
        assert (
            reader.execute("SELECT count(*) FROM core.household_as_of('2016-07-01')").fetchone()[0]
            == 4
        )

        with warehouse.connect(live) as con:
            merge(con, SHANGNAN, "s2", day="2016-07-04", households=[household("6110231010010002")])
        warehouse.publish_snapshot(live, snap, pii)
        # The open reader still reads the snapshot it opened...
        assert reader.execute("SELECT count(*) FROM core.household").fetchone()[0] == 5
    finally:
        reader.close()
    # ...and a new process sees the new one (within one process DuckDB reuses an open instance).
    code = "import duckdb,sys; print(duckdb.connect(sys.argv[1], read_only=True).execute('SELECT count(*) FROM core.household').fetchone()[0])"
    out = subprocess.run(
        [sys.executable, "-c", code, str(snap)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "6"
    with warehouse.connect(snap, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM core.household").fetchone()[0] == 6
    # no temp file left; beside the snapshot only the record its next (delta) publish checks
    assert sorted(f.name for f in snap.parent.iterdir()) == [
        ".snapshot.duckdb.publish.json",
        "snapshot.duckdb",
    ]


def test_marts_that_run_out_of_memory_run_once_more(city, monkeypatch, caplog):
    """A rebuild that runs out of DuckDB memory (here a limit no mart fits in) is rolled back
    and runs once more at the city step's retry limit, with a warning; same marts."""
    import warehouse.marts as marts
    from warehouse.duckdb_bounds import CITY, StepBound

    db, tables = city
    before = query(db, "SELECT * FROM mart.special_groups_by_county")
    monkeypatch.delenv("HUB_CITY_MEMORY_LIMIT", raising=False)
    tiny = StepBound("CITY", "256KB", 1, retry_memory_limit=CITY.retry_memory_limit)
    monkeypatch.setattr(marts, "CITY", tiny)
    with caplog.at_level("WARNING"), warehouse.connect(db) as con:
        assert marts.rebuild_marts(con) == tables
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert "the city ran out of DuckDB memory" in caplog.text, caplog.text
    assert limit != "256.0 KiB", limit
    assert query(db, "SELECT * FROM mart.special_groups_by_county") == before


def test_a_full_build_writes_mart_person_in_parts_with_the_same_rows(city, tmp_path, monkeypatch):
    """A full marts build writes mart.person in parts by a hash of household_no, each part's
    join built on its own households (at scale 10 the whole join and its write did not fit the
    city step's memory together): the same rows as the fixture's build in one statement, and the
    definition reads every household again afterwards."""
    import shutil

    from warehouse import mart_delta

    db, tables = city
    copy = tmp_path / "hub.duckdb"
    shutil.copyfile(db, copy)
    every_row = "SELECT * FROM mart.person ORDER BY ALL"
    before = query(copy, every_row)
    monkeypatch.setattr(mart_delta, "PERSON_PART_HOUSEHOLDS", 1)
    with warehouse.connect(copy) as con:
        assert mart_delta.person_parts(con) == 4  # A, B, C and D live; E deleted
        # the mart files' digest no longer the recorded one: the next build is a full one
        con.execute("UPDATE marts_state.build SET definition_digest = 'another definition'")
        assert warehouse.rebuild_marts(con) == tables
        assert con.execute("SELECT mode FROM marts_state.build").fetchall() == [("full",)]
        assert con.execute("SELECT getvariable('hub_person_parts')").fetchone() == (None,)
        assert assert_marts_keep_one_record_per_person(con) == 1
    assert query(copy, every_row) == before
