"""The keys on the DuckDB file: no PRIMARY KEY indexes (a fresh warehouse, and one made with
them rebuilt once by migration 010), and the check before COMMIT that refuses a key held twice
and leaves the file as it was (warehouse/keys.py; the lake's own test: tests/lake)."""

from __future__ import annotations

import hashlib
import logging

import duckdb
import pytest

import warehouse
import warehouse.merge as merge_module
from tests.unit.test_warehouse_fixtures import LUONAN, household, merge, person
from warehouse import keys
from warehouse.statements import MIGRATIONS_DIR, run

H1, H2 = "6110211010010001", "6110211010010002"
ID1, ID2 = "611021197005011234", "611021198001012345"
HOUSEHOLDS = [household(H1), household(H2)]
PERSONS = [person(H1 + "01", ID1, household_no=H1), person(H2 + "01", ID2, household_no=H2)]
WHERE_MINE = "database_name = current_database()"


def _catalog(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """What a rebuild must keep: columns (order, type, NULL-ability, default, comment),
    constraints, table comments, macros."""
    return {
        "columns": con.execute(
            "SELECT schema_name, table_name, column_index, column_name, data_type, is_nullable, "
            f"column_default, comment FROM duckdb_columns() WHERE {WHERE_MINE} ORDER BY ALL"
        ).fetchall(),
        "constraints": con.execute(
            "SELECT schema_name, table_name, constraint_type, constraint_column_names "
            f"FROM duckdb_constraints() WHERE {WHERE_MINE} ORDER BY ALL"
        ).fetchall(),
        "tables": con.execute(
            f"SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE {WHERE_MINE} "
            "ORDER BY ALL"
        ).fetchall(),
        "macros": con.execute(
            f"SELECT schema_name, function_name, comment FROM duckdb_functions() WHERE {WHERE_MINE}"
            " AND NOT internal ORDER BY ALL"
        ).fetchall(),
    }


def _rows(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    tables = con.execute(
        f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {WHERE_MINE} ORDER BY ALL"
    ).fetchall()
    return {
        f"{s}.{t}": con.execute(f"SELECT * FROM {s}.{t} ORDER BY ALL").fetchall()
        for s, t in tables
        if (s, t) != ("ops", "schema_migration")
    }


def _with_keys(path) -> None:
    """A warehouse as the hub made it before migration 010: migrations 001-009 applied as
    written (PRIMARY KEY indexes built) and recorded with their checksums; the later ones too
    (011 on: the tables today's merge writes, which the test's merge needs), except 010."""
    with duckdb.connect(str(path)) as con:
        for file in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            if file.name.startswith("010_"):
                continue
            text = file.read_text(encoding="utf-8")
            con.execute(text)
            params = {
                "version": int(file.name[:3]),
                "file": file.name,
                "checksum": hashlib.sha256(text.encode()).hexdigest(),
            }
            run(con, "ops/catalog.sql", "record_migration", params)


def test_a_fresh_file_warehouse_has_every_keyed_table_and_no_key_index(tmp_path):
    with warehouse.connect(tmp_path / "hub.duckdb") as con:
        tables = {f"{s}.{t}" for s, t, _ in _catalog(con)["tables"]}
        assert set(keys.primary_keys()) <= tables
        assert len(keys.primary_keys()) == 14
        assert not [c for c in _catalog(con)["constraints"] if c[2] in ("PRIMARY KEY", "UNIQUE")]
        assert con.execute("SELECT max(version) FROM ops.schema_migration").fetchone()[0] >= 10


def test_migration_010_rebuilds_a_warehouse_made_with_keys_keeping_rows_columns_comments(
    tmp_path, caplog
):
    old, fresh = tmp_path / "old.duckdb", tmp_path / "fresh.duckdb"
    _with_keys(old)
    with duckdb.connect(str(old)) as con:
        merge(con, LUONAN, "r1", households=HOUSEHOLDS, persons=PERSONS)
        con.execute("INSERT INTO ops.seed VALUES ('divisions', 'abc', now(), 3)")
        before, rows_before = _catalog(con), _rows(con)
    indexed = [c for c in before["constraints"] if c[2] == "PRIMARY KEY"]
    assert len(indexed) == 14
    key_columns = {(s, t, c) for s, t, _, cols in indexed for c in cols}

    with warehouse.connect(old) as con:
        after, rows_after = _catalog(con), _rows(con)
        recorded = con.execute(
            "SELECT name, count(*) FROM ops.schema_migration WHERE version = 10 GROUP BY name"
        ).fetchall()
        as_of = con.execute("SELECT count(*) FROM core.household_as_of('2016-07-01')").fetchone()
    assert recorded == [("010_keys_checked_before_commit.sql", 1)]
    assert rows_before.pop("ops.hub_profile") == [] and rows_after.pop("ops.hub_profile")
    assert rows_after == rows_before and rows_after["core.person"]  # same rows, in every table
    assert as_of == (2,)  # the macros still read the rebuilt history
    # the same columns and comments; the key columns lose only the NOT NULL the key implied
    assert after["columns"] == [
        (*c[:5], True if (c[0], c[1], c[3]) in key_columns else c[5], *c[6:])
        for c in before["columns"]
    ]
    assert after["constraints"] == [
        c
        for c in before["constraints"]
        if c[2] != "PRIMARY KEY" and not (c[2] == "NOT NULL" and (*c[:2], c[3][0]) in key_columns)
    ]
    assert after["tables"] == before["tables"] and after["macros"] == before["macros"]
    # ... which is what a warehouse created today looks like
    with warehouse.connect(fresh) as con:
        assert _catalog(con) == after

    caplog.set_level(logging.WARNING)
    with warehouse.connect(old) as con:  # applied once; its record's checksum still holds
        assert warehouse.migrate(con) == []
    assert "changed after it was applied" not in caplog.text


def test_the_check_refuses_a_key_twice_on_the_file_and_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "hub.duckdb"
    row = "('611021', 'household', '2016-07-01', now(), 'r1')"
    with warehouse.connect(path) as con:
        merge(con, LUONAN, "r1", households=HOUSEHOLDS, persons=PERSONS)
        before = _rows(con)
        with pytest.raises(keys.DuplicateKey) as refused, warehouse.transaction(con):
            con.execute(f"INSERT INTO ops.watermark VALUES {row}, {row}")
            con.execute("INSERT INTO ops.watermark VALUES ('611021', NULL, 'v', now(), 'r1')")
        message = str(refused.value)
        assert "ops.watermark (1 key(s) twice; 1 row(s) with a NULL key column: " in message
        assert "county_code, name)" in message and "611021" not in message
        with warehouse.transaction(con):  # one of them is fine
            con.execute(f"INSERT INTO ops.watermark VALUES {row}")
    with duckdb.connect(str(path), read_only=True) as con:  # what the file holds
        after = _rows(con)
    assert before.pop("ops.watermark") == []
    assert [r[:3] for r in after.pop("ops.watermark")] == [("611021", "household", "2016-07-01")]
    assert after == before


def test_a_merge_that_would_insert_a_key_twice_is_refused_whole(backend, monkeypatch):
    """A statement of the merge inserting a copy of a committed row (an old key, a new row) is
    caught by the merge's scoped check (warehouse.keys.merge_scope), on the file and on the
    lake, and nothing of the merge is written: not its rows, not its run."""
    with warehouse.connect() as con:
        merge(con, LUONAN, "r1", households=HOUSEHOLDS, persons=PERSONS)
        before = _rows(con)
    upsert = merge_module._upsert_entity

    def upsert_and_copy_a_row(batch, spec, rejected):
        counts = upsert(batch, spec, rejected)
        if spec.name == "household":  # a faulty insert: the committed H1 again, seen "now"
            batch.con.execute(
                "INSERT INTO core.household SELECT * REPLACE ($now AS first_seen_at) "
                "FROM core.household WHERE household_no = $no",
                {"now": batch.params["now"], "no": H1},
            )
        return counts

    monkeypatch.setattr(merge_module, "_upsert_entity", upsert_and_copy_a_row)
    changed = [household(H1, member_count=5), household(H2)]
    with warehouse.connect() as con:
        with pytest.raises(keys.DuplicateKey, match=r"core\.household \(1 key\(s\) twice: "):
            merge(con, LUONAN, "r2", day="2016-07-02", households=changed, persons=PERSONS)
        assert _rows(con) == before
