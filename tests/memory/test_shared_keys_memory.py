"""The merge's search for person_keys two person_nos share stays within a small DuckDB limit
when the city's persons outgrow it (warehouse/shared_keys.py): no timing, DuckDB's own bound.

At scale 10 the one statement (every live person of the city plus the sync's accepted ones,
``GROUP BY hash HAVING min(person_no) <> max(person_no)``) ran out of the merge transaction's
96 MB once a second county was in core, and the merge was redone at 1 GB (bench/profiles/
merge.md, "商南 and 柞水 at scale 10"). Here 450,000 synthetic persons (300,000 in core,
150,000 staged) at a 16 MB limit, in a transaction as in the merge: measured on this machine,
the old statement and the new one in a single piece both run out of memory at 16 MB (the old
one fits at 32 MB), while pieces of 100,000 rows (five) fit, and so did pieces of 150,000 at
16 MB and 100,000 at 12 MB. The pieces must find exactly the hashes one statement finds with
room to spare.
"""

from __future__ import annotations

import duckdb
import pytest

from warehouse.batch import Batch
from warehouse.shared_keys import shared_person_keys

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("memory")]

CORE, STAGED, LIMIT = 300_000, 150_000, "16MB"


def _persons(con: duckdb.DuckDBPyConnection) -> None:
    """core.person: 300,000 live persons, 1,000 keys held by two person_nos; the sync's staged
    persons: 150,000, each key also held in core by another person_no."""
    con.execute("CREATE SCHEMA core")
    con.execute(
        "CREATE TABLE core.person AS SELECT sha256(CAST(i % $keys AS VARCHAR)) AS person_key,"
        " 'P61102' || lpad(CAST(i AS VARCHAR), 14, '0') AS person_no,"
        " NULL::TIMESTAMPTZ AS deleted_at FROM range($n) AS t(i)",
        {"keys": CORE - 1_000, "n": CORE},
    )
    con.execute(
        "CREATE TEMP TABLE _stage_person AS SELECT sha256(CAST(i AS VARCHAR)) AS person_key,"
        " 'S61102' || lpad(CAST(i AS VARCHAR), 14, '0') AS person_no FROM range($n) AS t(i)",
        {"n": STAGED},
    )
    con.execute(
        "CREATE TEMP TABLE _diff_person AS SELECT person_key AS core_person_key, person_no,"
        " true AS same FROM _stage_person LIMIT 0"
    )
    con.execute("CHECKPOINT")


def _hashes(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {h for (h,) in con.execute("SELECT h FROM _shared_person_key").fetchall()}


def test_shared_keys_fit_a_small_limit_in_pieces(tmp_path, monkeypatch):
    con = duckdb.connect(str(tmp_path / "persons.duckdb"))
    con.execute(f"SET temp_directory = '{tmp_path / 'spill'}'")
    con.execute("SET threads = 1")
    _persons(con)
    con.execute(f"SET memory_limit = '{LIMIT}'")
    con.execute("BEGIN")
    monkeypatch.setenv("HUB_MERGE_SHARED_KEY_ROWS", "100000")
    assert shared_person_keys(Batch(con, {})) == 5
    pieces = _hashes(con)
    con.execute("ROLLBACK")

    con.execute("SET memory_limit = '512MB'")  # one piece, with room: the same hashes
    monkeypatch.setenv("HUB_MERGE_SHARED_KEY_ROWS", str(10 * (CORE + STAGED)))
    assert shared_person_keys(Batch(con, {})) == 1
    assert pieces == _hashes(con) and len(pieces) == STAGED
