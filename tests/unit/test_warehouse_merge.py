"""The merge: upserts, history, soft deletes, safety stop, rejects, conflicts, refusals."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import polars as pl
import pytest

import warehouse
from base.errors import SafetyStop
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

H1, H2, H3 = "6110211010010001", "6110211010010002", "6110211010010003"
ID1, ID2, ID3 = "611021197005011234", "611021198001012345", "61102119900101456X"


@pytest.fixture
def con(tmp_path):
    with warehouse.connect(tmp_path / "hub.duckdb") as c:
        yield c


def rows(con, sql):
    return con.execute(sql).fetchall()


def count(con, sql) -> int:
    return con.execute(sql).fetchone()[0]


def snapshot_state(con):
    """Everything a no-op re-sync must leave alone (it may only touch last_synced_at and
    sync_run_id of core rows)."""
    state = {
        t: rows(con, f"SELECT * EXCLUDE (last_synced_at, sync_run_id) FROM {t} ORDER BY ALL")
        for t in ("core.household", "core.person")
    }
    for t in ("core.household_history", "core.person_history"):
        state[t] = rows(con, f"SELECT * FROM {t} ORDER BY ALL")
    return state


def test_migrations_are_idempotent(tmp_path):
    db = tmp_path / "hub.duckdb"
    with warehouse.connect(db) as con:
        applied = rows(con, "SELECT version, name FROM ops.schema_migration ORDER BY version")
        on_disk = sorted(int(p.name.split("_")[0]) for p in warehouse.MIGRATIONS_DIR.glob("*.sql"))
        assert [v for v, _ in applied] == on_disk
        assert warehouse.migrate(con) == []
    with warehouse.connect(db) as con:
        assert (
            rows(con, "SELECT version, name FROM ops.schema_migration ORDER BY version") == applied
        )
        undocumented = rows(
            con,
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE schema_name IN ('raw', 'core', 'ops') AND (comment IS NULL OR comment = '')",
        )
        assert undocumented == []
        assert count(con, "SELECT count(*) FROM duckdb_tables() WHERE comment IS NULL") == 0
    with warehouse.connect(db, read_only=True) as con:
        assert count(con, "SELECT count(*) FROM core.household") == 0


def test_insert_update_and_noop_remerge(con):
    hh = [household(H1), household(H2, poverty_attribute="dibao")]
    pp = [person(H1 + "01", ID1), person(H2 + "01", ID2)]
    first = merge(con, LUONAN, "r1", households=hh, persons=pp)
    assert first.counts["household"]["inserted"] == 2
    assert first.counts["person"]["fetched"] == 2
    state = snapshot_state(con)
    first_seen = rows(con, "SELECT household_no, first_seen_at FROM core.household ORDER BY 1")

    again = merge(con, LUONAN, "r2", day="2016-07-02", households=hh, persons=pp)
    assert again.counts["household"] == {
        "fetched": 2, "accepted": 2, "rejected": 0, "findings": 0, "deleted": 0,
        "inserted": 0, "updated": 0, "unchanged": 2,
    }  # fmt: skip
    assert snapshot_state(con) == state  # nothing but last_synced_at / sync_run_id moved
    assert rows(con, "SELECT DISTINCT sync_run_id FROM core.household") == [("r2",)]

    changed = [
        household(H1, poverty_status="exited", exit_year=2016),
        household(H2, poverty_attribute="dibao"),
    ]
    third = merge(con, LUONAN, "r3", day="2016-07-03", households=changed, persons=pp)
    assert third.counts["household"]["updated"] == 1
    assert third.counts["household"]["unchanged"] == 1
    assert rows(
        con, f"SELECT poverty_status, exit_year FROM core.household WHERE household_no = '{H1}'"
    ) == [("exited", 2016)]
    assert (
        rows(con, "SELECT household_no, first_seen_at FROM core.household ORDER BY 1") == first_seen
    )
    history = rows(
        con,
        f"SELECT poverty_status, change_kind, closed_reason, valid_to IS NULL FROM core.household_history "
        f"WHERE household_no = '{H1}' ORDER BY valid_from",
    )
    assert history == [("not_exited", "new", "changed", False), ("exited", "changed", None, True)]
    assert count(con, "SELECT count(*) FROM core.person_history") == 2
    runs = rows(con, "SELECT sync_run_id, entity, status FROM ops.sync_run ORDER BY 1, 2")
    assert len(runs) == 6 and {r[2] for r in runs} == {"succeeded"}
    assert count(con, "SELECT count(*) FROM raw.page") == 6
    assert count(con, "SELECT count(*) FROM raw.page WHERE url LIKE '%s3cret%'") == 0


def test_as_of_macros(con):
    merge(
        con,
        LUONAN,
        "r1",
        day="2016-07-01",
        households=[household(H1)],
        persons=[person(H1 + "01", ID1)],
    )
    merge(
        con,
        LUONAN,
        "r2",
        day="2016-07-05",
        households=[household(H1, poverty_status="exited", exit_year=2016)],
        persons=[person(H1 + "01", ID1)],
    )
    merge(
        con,
        LUONAN,
        "r3",
        day="2016-07-09",
        households=[],
        persons=[],
        full_listing={"household", "person"},
        safety_share=1.0,
    )

    def status_on(day):
        return rows(con, f"SELECT poverty_status FROM core.household_as_of(DATE '{day}')")

    assert status_on("2016-06-30") == []
    assert status_on("2016-07-01") == [("not_exited",)]
    assert status_on("2016-07-04") == [("not_exited",)]
    assert status_on("2016-07-05") == [("exited",)]
    assert status_on("2016-07-09") == []  # deleted that day
    assert count(con, "SELECT count(*) FROM core.person_as_of('2016-07-08')") == 1
    assert count(con, "SELECT count(*) FROM core.person_as_of('2016-07-09')") == 0


def test_soft_delete_by_feed_and_revival(con):
    hh = [household(H) for H in (H1, H2, H3)] + [
        household(f"611021101001{i:04d}") for i in range(4, 11)
    ]
    merge(
        con, LUONAN, "r1", households=hh, persons=[person(H1 + "01", ID1), person(H2 + "01", ID2)]
    )
    feed = pl.DataFrame(
        {
            "source_key": [H1],
            "deleted_at": [datetime(2016, 7, 2, 1, tzinfo=UTC)],
        },
        schema={"source_key": pl.String, "deleted_at": pl.Datetime("us", "UTC")},
    )
    result = merge(
        con,
        LUONAN,
        "r2",
        day="2016-07-02",
        households=[],
        persons=[],
        deletions={"household": feed},
    )
    assert result.counts["household"]["deleted"] == 1
    assert result.counts["person"]["deleted"] == 1  # the member went with the household
    assert rows(con, "SELECT household_no FROM core.household WHERE deleted_at IS NOT NULL") == [
        (H1,)
    ]
    assert rows(con, "SELECT person_no FROM core.person WHERE deleted_at IS NOT NULL") == [
        (H1 + "01",)
    ]
    assert (
        count(
            con,
            f"SELECT count(*) FROM core.household_history WHERE household_no = '{H1}' AND valid_to IS NULL",
        )
        == 0
    )
    assert rows(
        con, f"SELECT closed_reason FROM core.person_history WHERE person_no = '{H1}01'"
    ) == [("deleted",)]

    back = merge(con, LUONAN, "r3", day="2016-07-03", households=[household(H1)])
    assert back.counts["household"]["updated"] == 1
    assert rows(con, f"SELECT deleted_at FROM core.household WHERE household_no = '{H1}'") == [
        (None,)
    ]
    kinds = rows(
        con,
        f"SELECT change_kind FROM core.household_history WHERE household_no = '{H1}' ORDER BY valid_from",
    )
    assert kinds == [("new",), ("revived",)]


def test_soft_delete_by_absence_counts_rejected_rows_as_listed(con):
    hh = [household(f"611021101001{i:04d}") for i in range(1, 11)]
    merge(con, LUONAN, "r1", households=hh)
    listed = hh[:9]  # the 10th is gone; the 9th is delivered but rejected this time
    accepted = frame("household", listed[:8])
    validated = {
        "household": V(
            accepted, rejects=issues("household", [(listed[8]["household_no"], "missing_value")])
        )
    }
    result = merge(
        con,
        LUONAN,
        "r2",
        day="2016-07-02",
        households=listed,
        validated=validated,
        full_listing={"household"},
    )
    assert result.counts["household"]["deleted"] == 1
    assert result.counts["household"]["rejected"] == 1
    assert rows(con, "SELECT household_no FROM core.household WHERE deleted_at IS NOT NULL") == [
        ("6110211010010010",)
    ]
    # The rejected record keeps its earlier, accepted version in core.
    assert (
        count(
            con,
            "SELECT count(*) FROM core.household WHERE household_no = '6110211010010009' AND deleted_at IS NULL",
        )
        == 1
    )


def test_safety_stop_rolls_back_everything(con):
    hh = [household(f"611021101001{i:04d}") for i in range(1, 11)]
    merge(con, LUONAN, "r1", households=hh, watermarks={"household": "w1"})
    before = snapshot_state(con)
    counts = {
        t: count(con, f"SELECT count(*) FROM {t}")
        for t in ("raw.page", "ops.sync_run", "ops.reject")
    }
    changed = [household(hh[0]["household_no"], poverty_status="exited", exit_year=2016), *hh[1:7]]
    validated = {
        "household": V(
            frame("household", changed), rejects=issues("household", [("x", "missing_value")])
        )
    }
    with pytest.raises(SafetyStop) as stop:
        merge(
            con,
            LUONAN,
            "r2",
            day="2016-07-02",
            households=changed,
            validated=validated,
            full_listing={"household"},
            watermarks={"household": "w2"},
        )
    assert "3 of 10" in str(stop.value)
    assert snapshot_state(con) == before
    assert {t: count(con, f"SELECT count(*) FROM {t}") for t in counts} == counts
    assert warehouse.watermarks(con, LUONAN.code) == {"household": "w1"}
    # The same sync passes with a looser limit.
    merge(
        con,
        LUONAN,
        "r2",
        day="2016-07-02",
        households=changed,
        validated=validated,
        full_listing={"household"},
        safety_share=0.5,
    )
    assert count(con, "SELECT count(*) FROM core.household WHERE deleted_at IS NOT NULL") == 3


def test_rejects_stay_out_of_core(con):
    hh = [household(H1), household(H2)]
    pp = [person(H1 + "01", ID1), person(H2 + "01", ID2)]
    validated = {
        "household": V(
            frame("household", hh[:1]),
            rejects=issues("household", [(H2, "negative_income")]),
            findings=issues("household", [(H1, "member_count_mismatch")]),
        ),
        "person": V(
            frame("person", pp[:1]), rejects=issues("person", [(H2 + "01", "parent_rejected")])
        ),
    }
    result = merge(con, LUONAN, "r1", households=hh, persons=pp, validated=validated)
    assert rows(con, "SELECT household_no FROM core.household") == [(H1,)]
    assert rows(con, "SELECT person_no FROM core.person") == [(H1 + "01",)]
    assert rows(
        con, "SELECT entity, source_key, rule, county_code, sync_run_id FROM ops.reject ORDER BY 1"
    ) == [
        ("household", H2, "negative_income", "611021", "r1"),
        ("person", H2 + "01", "parent_rejected", "611021", "r1"),
    ]
    assert rows(con, "SELECT source_key, rule FROM ops.finding") == [(H1, "member_count_mismatch")]
    assert (
        result.counts["household"]["rejected"] == 1 and result.counts["household"]["findings"] == 1
    )
    assert warehouse.reject_rate(validated) == pytest.approx(0.5)
    top = warehouse.top_reasons(validated)
    assert {(r["entity"], r["rule"], r["records"]) for r in top} == {
        ("household", "negative_income", 1), ("person", "parent_rejected", 1)}  # fmt: skip


def test_person_key_is_python_hmac(con, monkeypatch):
    key = ("a-test-key-" + "k" * 70).encode()  # longer than a block: hashed first
    monkeypatch.setenv("HUB_PII_KEY", key.hex())  # HUB_PII_KEY is hex
    ids = [
        f"6110211970{m:02d}01{i:03d}{'X' if i % 7 == 0 else i % 10}"
        for m in range(1, 13)
        for i in range(40)
    ]
    pp = [person(f"{H1}{n:02d}", ident) for n, ident in enumerate(ids[:99])]
    merge(con, LUONAN, "r1", households=[household(H1)], persons=pp)
    got = dict(rows(con, "SELECT id_number, person_key FROM core.person"))
    assert got == {i: hmac.new(key, i.encode(), hashlib.sha256).hexdigest() for i in ids[:99]}
    assert warehouse.person_key(ids[0]) == got[ids[0]]
    # Vectorised over many more values, short keys too.
    monkeypatch.setenv("HUB_PII_KEY", "short")
    frame_ = pl.DataFrame({"id_number": ids})
    con.register("ids", frame_.to_arrow())
    pads = warehouse.pii._hmac_pads(b"short")
    sql = rows(con.execute("SELECT 1"), "SELECT 1")  # keep the connection usable
    assert sql == [(1,)]
    result = con.execute(
        "SELECT id_number, sha256($opad || unhex(sha256($ipad || encode(id_number)))) FROM ids",
        pads,
    ).fetchall()
    assert dict(result) == {
        i: hmac.new(b"short", i.encode(), hashlib.sha256).hexdigest() for i in ids
    }


def test_conflicts_within_and_across_counties(con):
    h_a, h_b = "6110211010010001", "6110231010010001"
    # Within one county: validation reports two records with one ID number; both are accepted.
    pp = [person(h_a + "01", ID1), person(h_a + "02", ID1, relation_to_head="son", sex="male")]
    validated = {
        "household": V(frame("household", [household(h_a, member_count=2)])),
        "person": V(
            frame("person", pp),
            conflicts=pl.DataFrame(
                {"id_number": [ID1], "source_key": [h_a + "01"], "other_source_key": [h_a + "02"]}
            ),
        ),
    }
    merge(
        con,
        LUONAN,
        "r1",
        households=[household(h_a, member_count=2)],
        persons=pp,
        validated=validated,
    )
    assert rows(
        con,
        "SELECT kind, county_code_a, source_key_a, source_key_b, winner, resolution FROM ops.conflict",
    ) == [("id_number", "611021", h_a + "01", h_a + "02", "a", "keep_first_seen")]
    key = rows(con, "SELECT key FROM ops.conflict")[0][0]
    assert key == warehouse.person_key(ID1) and ID1 not in key

    # Across counties: 商南 registers a person with the same ID number; 洛南's record was first.
    result = merge(
        con,
        SHANGNAN,
        "r2",
        day="2016-07-02",
        households=[household(h_b)],
        persons=[person(h_b + "01", ID1)],
    )
    assert result.conflicts_open == 2
    assert rows(
        con,
        "SELECT county_code_a, source_key_a, county_code_b, source_key_b, winner FROM ops.conflict "
        "WHERE county_code_b = '611023' ORDER BY source_key_a",
    ) == [
        ("611021", h_a + "01", "611023", h_b + "01", "a"),
        ("611021", h_a + "02", "611023", h_b + "01", "a"),
    ]
    # Re-syncing the same data adds no conflict rows.
    merge(
        con,
        SHANGNAN,
        "r3",
        day="2016-07-03",
        households=[household(h_b)],
        persons=[person(h_b + "01", ID1)],
    )
    assert count(con, "SELECT count(*) FROM ops.conflict") == 3
    # A correction of the ID number resolves the cross-county ones.
    merge(
        con,
        SHANGNAN,
        "r4",
        day="2016-07-04",
        households=[household(h_b)],
        persons=[person(h_b + "01", ID3)],
    )
    assert count(con, "SELECT count(*) FROM ops.conflict WHERE resolved_at IS NULL") == 1

    # A household number claimed by a second county: the claim and its members are rejected.
    measure = {
        "measure_id": "M-611023-1",
        "household_no": h_a,
        "category": "industry",
        "year": 2016,
    }
    claim = merge(
        con,
        SHANGNAN,
        "r5",
        day="2016-07-05",
        households=[household(h_a)],
        persons=[person(h_a + "01", ID2)],
        other={"measure": [measure]},
    )
    assert claim.counts["household"]["rejected"] == 1 and claim.counts["person"]["rejected"] == 1
    assert claim.counts["measure"] == {**claim.counts["measure"], "accepted": 0, "rejected": 1}
    assert count(con, "SELECT count(*) FROM core.measure") == 0
    assert rows(con, f"SELECT county_code FROM core.household WHERE household_no = '{h_a}'") == [
        ("611021",)
    ]
    assert rows(con, f"SELECT id_number FROM core.person WHERE person_no = '{h_a}01'") == [(ID1,)]
    assert rows(
        con,
        "SELECT kind, key, county_code_a, county_code_b, winner, resolution FROM ops.conflict "
        "WHERE kind = 'household_no'",
    ) == [("household_no", h_a, "611021", "611023", "a", "claim_rejected")]
    # The member's person_no is 洛南's too (it extends the household number).
    assert rows(con, "SELECT entity, rule FROM ops.reject WHERE sync_run_id = 'r5' ORDER BY 1") == [
        ("household", "key_owned_by_other_county"),
        ("measure", "parent_rejected"),
        ("person", "key_owned_by_other_county"),
    ]


def test_refuse_sync_writes_only_the_refused_run_and_rejects(con):
    merge(con, LUONAN, "r1", households=[household(H1)], watermarks={"household": "w1"})
    before = snapshot_state(con)
    hh = [household(H1, poverty_status="exited", exit_year=2016), household(H2)]
    validated = {
        "household": V(
            frame("household", hh[:1]),
            rejects=issues("household", [(H2, "missing_value")]),
            findings=issues("household", [(H1, "exit_unsafe_water")]),
        )
    }
    from pipelines.staged import Staged

    staged = Staged(frames={"household": frame("household", hh)}, watermarks={"household": "w2"})
    assert warehouse.reject_rate(validated) == pytest.approx(0.5)
    warehouse.refuse_sync(con, LUONAN, "r2", "full", staged, validated, None, datetime.now(UTC))
    assert snapshot_state(con) == before
    assert rows(
        con,
        "SELECT entity, status, fetched, accepted, rejected FROM ops.sync_run WHERE sync_run_id = 'r2'",
    ) == [("household", "refused", 2, 1, 1)]
    error = rows(con, "SELECT error FROM ops.sync_run WHERE sync_run_id = 'r2'")[0][0]
    assert "50.0%" in error and "missing_value" in error
    assert rows(con, "SELECT source_key, rule FROM ops.reject WHERE sync_run_id = 'r2'") == [
        (H2, "missing_value")
    ]
    assert count(con, "SELECT count(*) FROM ops.finding") == 0
    assert count(con, "SELECT count(*) FROM raw.page WHERE sync_run_id = 'r2'") == 0
    assert warehouse.watermarks(con, LUONAN.code) == {"household": "w1"}
    assert warehouse.latest_reject_rate(con, LUONAN.code) == pytest.approx(0.5)


def test_failures_and_state_files(con, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    warehouse.record_failure(
        con, "run-1", LUONAN.code, "GET http://u:p@host/api?token=abc failed: Bearer abcdefgh"
    )
    error = rows(con, "SELECT status, entity, error FROM ops.sync_run")[0]
    assert (
        error[:2] == ("failed", "*")
        and "abc" not in error[2].replace("abcdefgh", "")
        and "u:p@" not in error[2]
    )
    assert "abcdefgh" not in error[2]

    warehouse.queue_failure("run-2", "sync_luonan", "luonan", "boom")
    warehouse.queue_failure("run-3", "sync_all_counties", None, "bang")
    assert warehouse.record_queued_failures(con) == 2
    assert rows(
        con,
        "SELECT sync_run_id, county_code FROM ops.sync_run WHERE sync_run_id <> 'run-1' ORDER BY 1",
    ) == [("run-2", "611021"), ("run-3", "*")]
    assert warehouse.record_queued_failures(con) == 0

    assert warehouse.read_state(LUONAN) == {}
    path = warehouse.write_state(LUONAN, {"household": "2016-07-01T00:00:00Z"})
    assert path == tmp_path / "home" / "state" / "luonan.json"
    assert warehouse.read_state("luonan") == {"household": "2016-07-01T00:00:00Z"}
    path.write_text("{not json")
    assert warehouse.read_state(LUONAN) == {}


def test_watermarks_commit_with_the_merge(con):
    merge(
        con,
        LUONAN,
        "r1",
        households=[household(H1)],
        watermarks={"bigdata:household": "c1", "person": "c9"},
    )
    assert warehouse.watermarks(con, LUONAN.code) == {"bigdata:household": "c1", "person": "c9"}
    assert rows(
        con, "SELECT watermark_before, watermark_after FROM ops.sync_run WHERE entity = 'household'"
    ) == [(None, "c1")]
    merge(con, LUONAN, "r2", households=[household(H1)], watermarks={"bigdata:household": "c2"})
    assert warehouse.watermarks(con, LUONAN.code)["bigdata:household"] == "c2"
    assert rows(
        con, "SELECT watermark_before, watermark_after FROM ops.sync_run WHERE sync_run_id = 'r2'"
    ) == [("c1", "c2")]


def test_a_rejected_record_is_quarantined_once_per_content(con):
    def sync(run: str, income: float, raw_ref: str) -> None:
        bad = household(H2, income_per_capita=income)
        bad["raw_ref"] = raw_ref  # every sync lands on other pages
        hh = [household(H1), bad]
        validated = {
            "household": V(
                frame("household", hh[:1]), rejects=issues("household", [(H2, "negative_income")])
            )
        }
        merge(con, LUONAN, run, households=hh, validated=validated)

    sync("r1", -5.0, "luonan:r1:1#1")
    sync("r2", -5.0, "luonan:r2:1#1")  # re-sent unchanged: rejected again, not stored again
    assert rows(con, "SELECT sync_run_id FROM ops.quarantine") == [("r1",)]
    assert rows(con, "SELECT sync_run_id FROM ops.reject ORDER BY 1") == [("r1",), ("r2",)]
    sync("r3", -7.0, "luonan:r3:1#1")  # changed content: stored
    assert rows(
        con, "SELECT sync_run_id, record->>'income_per_capita' FROM ops.quarantine ORDER BY 1"
    ) == [("r1", "-5.0"), ("r3", "-7.0")]
    # the same key and content from another county is its own record
    merge(
        con,
        SHANGNAN,
        "s1",
        households=[household(H2, income_per_capita=-5.0)],
        validated={
            "household": V(
                frame("household", []), rejects=issues("household", [(H2, "negative_income")])
            )
        },
    )
    assert count(con, "SELECT count(*) FROM ops.quarantine") == 3


def test_migration_keeps_one_copy_of_each_quarantined_record(tmp_path):
    db = tmp_path / "old.duckdb"
    with warehouse.connect(db) as con:
        con.execute("DELETE FROM ops.schema_migration WHERE version >= 5")
        con.execute("ALTER TABLE ops.quarantine DROP COLUMN record_hash")
        for run, ref in (("r1", "a#1"), ("r2", "b#1"), ("r3", "c#1")):
            record = f'{{"household_no": "{H2}", "income_per_capita": -5.0, "raw_ref": "{ref}"}}'
            con.execute(
                "INSERT INTO ops.quarantine VALUES (?, '611021', 'household', ?, ?, ?, now())",
                [run, H2, ref, record],
            )
    with warehouse.connect(db) as con:  # applies 005 again
        assert rows(con, "SELECT sync_run_id FROM ops.quarantine") == [("r1",)]
