"""The skip paths of an incremental merge (issue 13, bench/profiles/merge.md "Incremental
merge"): a re-read with nothing changed writes nothing but the touch and reports honest counts;
the ID-number pairs of a sync with few accepted persons are the same as those of the grouping
over every live person; the per-row checks of rows scattered over many chunks are made in one
batch and keep each failure's row position. Real DuckDB files, the merge's own functions; the
statements run are recorded by wrapping the real ``statements.run`` (it still runs)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

import schemas.validate_chunks as chunks
import warehouse
import warehouse.batch
import warehouse.merge
import warehouse.touch
from tests.unit import test_warehouse_merge as merge_tests
from tests.unit.test_merge_hash_diff import sync_once, world
from tests.unit.test_warehouse_fixtures import frame, person


@pytest.fixture
def statements(monkeypatch) -> list[tuple[str, str]]:
    """(file, name) of every named statement the merge runs, in order."""
    ran: list[tuple[str, str]] = []
    real = warehouse.statements.run

    def recording(con, file, name, params=None, **identifiers):
        ran.append((file, name))
        return real(con, file, name, params, **identifiers)

    for module in (warehouse.batch, warehouse.merge, warehouse.touch):
        for attr in ("run", "run_statement"):
            if getattr(module, attr, None) is real:
                monkeypatch.setattr(module, attr, recording)
    return ran


def core_state(path) -> dict[str, list[tuple]]:
    """What an unchanged re-read must leave as it was: every core row but the two columns the
    touch writes, the history, and the touch's own bookkeeping (empty after it)."""
    with warehouse.connect(path) as con:
        state = {
            t: con.execute(
                f"SELECT * EXCLUDE (last_synced_at, sync_run_id) FROM {t} ORDER BY ALL"
            ).fetchall()
            for t in ("core.household", "core.person")
        }
        for t in ("core.household_history", "core.person_history", "ops.touch_pending_key"):
            state[t] = con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
    return state


def test_an_unchanged_re_read_writes_nothing_but_the_touch(tmp_path, statements):
    sync_once(tmp_path, "r1", world())
    before = core_state(tmp_path / "hub.duckdb")
    statements.clear()

    result, _, _, core, _ = sync_once(tmp_path, "r2", world(), day=2)

    # no statement that writes a changed row ran: nothing was staged
    ran = set(statements)
    written = {s for s in ran if s[0] in ("30_history.sql", "40_upsert.sql")}
    assert written == set()
    assert ("20_claims.sql", "claims") not in ran
    assert ("20_claims.sql", "household_conflicts") not in ran
    assert ("20_claims.sql", "drop_claims") not in ran  # no claim was rejected
    assert ("10_stage.sql", "drop_rejected") not in ran  # nothing was rejected
    # ... but the rows were touched: in the transaction, as they are few (warehouse/touch.py;
    # the pieces after the COMMIT leave the same: tests/unit/test_small_merge_cost.py)
    assert ("45_touch.sql", "touch_same") in ran
    assert core_state(tmp_path / "hub.duckdb") == before
    assert set(core["household"].values()) == set(core["person"].values()) == {"r2"}

    # honest counts, in the result and in ops.sync_run
    expected = {"household": 2, "person": 3}
    for entity, n in expected.items():
        counts = result.counts[entity]
        assert (counts["fetched"], counts["accepted"], counts["unchanged"]) == (n, n, n)
        assert counts["inserted"] == counts["updated"] == counts["rejected"] == 0
    with warehouse.connect(tmp_path / "hub.duckdb") as con:
        recorded = con.execute(
            "SELECT entity, fetched, accepted, inserted, updated, unchanged FROM ops.sync_run "
            "WHERE sync_run_id = 'r2' ORDER BY entity"
        ).fetchall()
    assert recorded == [(e, n, n, 0, 0, n) for e, n in sorted(expected.items())]


def test_a_changed_row_after_an_unchanged_re_read_still_takes_the_full_path(tmp_path, statements):
    sync_once(tmp_path, "r1", world())
    sync_once(tmp_path, "r2", world(), day=2)
    statements.clear()
    changed = world(**{"6110211010010001": {"income_per_capita": 9000.0}})
    result, _, _, _, history = sync_once(tmp_path, "r3", changed, day=3)
    assert ("40_upsert.sql", "upsert") in statements
    assert ("30_history.sql", "close_changed") in statements
    counts = result.counts["household"]
    assert (counts["updated"], counts["unchanged"]) == (1, 1)
    assert history == {"6110211010010001": 2, "6110211010010002": 1}


@pytest.fixture
def con(tmp_path):
    with warehouse.connect(tmp_path / "hub.duckdb") as c:
        yield c


@pytest.mark.parametrize("pairs_of_sync", [True, False], ids=["sync's hashes", "every person"])
def test_id_pairs_are_the_same_either_way(con, statements, monkeypatch, pairs_of_sync):
    """The conflicts scenario of test_warehouse_merge (within a county, across counties, a
    re-sync of the same persons, a correction) gives the same conflicts whichever way the
    candidate hashes are grouped."""
    monkeypatch.setattr(warehouse.merge, "PAIRS_OF_SYNC_ROWS", 10**9 if pairs_of_sync else -1)
    merge_tests.test_conflicts_within_and_across_counties(con)
    ran = {name for file, name in statements if file == "60_conflicts.sql"}
    chosen, other = "shared_person_keys_of_sync", "shared_person_keys"
    if not pairs_of_sync:
        chosen, other = other, chosen
    assert chosen in ran and other not in ran


def test_rows_to_check_of_many_chunks_are_checked_at_once(per_row_checked):
    """Rows 1, 6 and 11 to check (the rest unchanged), chunks of 5 rows: one check of 3 rows,
    and each failure keeps its row's position in the whole frame."""
    ids = ["611021197005011234"] * 12
    ids[6] = "not-an-id-number"  # a reject at position 6
    ids[3] = "also-not-one"  # ... and at 3, unchanged: never checked
    persons = frame(
        "person",
        [
            person(f"61102110100100{i:02d}01", id_number, sex="male", birth_date=date(1970, 5, 1))
            for i, id_number in enumerate(ids)
        ],
    )
    unchanged = pl.Series("_row", [r for r in range(12) if r not in (1, 6, 11)], pl.UInt32)
    failures = chunks.row_failures("person", persons.lazy(), unchanged, None, chunk_rows=5)
    assert per_row_checked == [3]
    assert set(failures["_row"].to_list()) == {6}

    # the same rows checked with no batching across chunks (chunks of 1 row) fail the same
    per_row_checked.clear()
    alone = chunks.row_failures("person", persons.lazy(), unchanged, None, chunk_rows=1)
    assert per_row_checked == [1, 1, 1]
    assert alone.sort("_row", "rule").equals(failures.sort("_row", "rule"))
