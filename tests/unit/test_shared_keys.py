"""The merge's search for person_keys two person_nos share, in pieces (warehouse/shared_keys.py):
the pieces together find exactly what one statement over every row finds."""

from __future__ import annotations

import duckdb
import pytest

import warehouse
import warehouse.merge
from tests.unit import test_warehouse_merge as merge_tests
from warehouse.batch import Batch
from warehouse.shared_keys import shared_person_keys


def _tables(con: duckdb.DuckDBPyConnection) -> None:
    """A core with live and deleted persons, and a sync's staged and hash-same persons: keys
    shared within the sync, with core, only by a deleted row, by one person_no twice, by one
    person_no and a missing one, and not at all."""
    con.execute("CREATE SCHEMA core")
    con.execute(
        "CREATE TABLE core.person AS SELECT * FROM (VALUES"
        " ('k1', 'p1', NULL), ('k2', 'p2', NULL), ('k3', 'p3', TIMESTAMPTZ '2020-01-01'),"
        " ('k4', 'p4', NULL), ('k5', 'p5', NULL), ('k5', 'p5', NULL), ('k6', 'p6', NULL),"
        " (NULL, 'p7', NULL), ('k9', 'p9', NULL)) AS t(person_key, person_no, deleted_at)"
    )
    con.execute(
        "CREATE TEMP TABLE _stage_person AS SELECT * FROM (VALUES"
        " ('k1', 'q1'), ('k3', 'q3'), ('k8', 'q8'), ('k8', 'q9'), (NULL, 'q0'), ('k6', 'p6'),"
        " ('k9', NULL))"
        " AS t(person_key, person_no)"
    )
    con.execute(
        "CREATE TEMP TABLE _diff_person AS SELECT * FROM (VALUES"
        " ('k2', 'r2', true), ('k4', 'r4', false), ('k5', 'p5', true)) AS t(core_person_key,"
        " person_no, same)"
    )


def _found(con: duckdb.DuckDBPyConnection, rows: str, monkeypatch) -> tuple[int, set[int]]:
    monkeypatch.setenv("HUB_MERGE_SHARED_KEY_ROWS", rows)
    pieces = shared_person_keys(Batch(con, {}))
    return pieces, {h for (h,) in con.execute("SELECT h FROM _shared_person_key").fetchall()}


def test_pieces_find_exactly_what_one_statement_finds(monkeypatch):
    con = duckdb.connect()
    _tables(con)
    expected = {
        h
        for (h,) in con.execute(
            "SELECT hash(k) FROM (VALUES ('k1'), ('k2'), ('k8')) AS t(k)"
        ).fetchall()
    }
    one, found = _found(con, "1000", monkeypatch)
    assert (one, found) == (1, expected)
    for rows in ("1", "2", "5"):
        pieces, found = _found(con, rows, monkeypatch)
        assert pieces > 1 and found == expected, rows


@pytest.mark.parametrize("rows", ["1", "2"])
def test_id_conflicts_are_the_same_in_pieces(tmp_path, monkeypatch, rows):
    """The merge's ID-number conflicts within and across counties, every piece a row or two
    (the city-wide aggregate forced: a sync this small otherwise takes the sync's own hashes,
    ``merge.PAIRS_OF_SYNC_ROWS``)."""
    monkeypatch.setenv("HUB_MERGE_SHARED_KEY_ROWS", rows)
    monkeypatch.setattr(warehouse.merge, "PAIRS_OF_SYNC_ROWS", 0)
    calls = []
    monkeypatch.setattr(
        warehouse.merge, "shared_person_keys", lambda batch: calls.append(shared_person_keys(batch))
    )
    with warehouse.connect(tmp_path / "hub.duckdb") as con:
        merge_tests.test_conflicts_within_and_across_counties(con)
    assert calls and max(calls) > 1  # the pieces ran, several of them
