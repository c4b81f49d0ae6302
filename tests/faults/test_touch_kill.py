"""kill -9 between the merge's COMMIT and the end of the touch of its unchanged rows
(warehouse/touch.py): the committed sync stays, its touch stays recorded in ops.touch_pending,
and the county's next merge finishes it first; the warehouse then equals a clean run's."""

from __future__ import annotations

import duckdb
import pytest

from base import paths
from seeds.registry import county
from tests.faults.conftest import county_content, home, hub, run_hub, sync_in_process

pytestmark = pytest.mark.faults
LUONAN = county("luonan")
SMALL_PIECES = {"HUB_MERGE_TOUCH_ROWS": "40"}  # several pieces at the test's scale


def _stamps(db) -> dict[str, list[tuple]]:
    """Per core entity table: (sync_run_id's rank among the county's runs, rows) of the live
    rows, so two warehouses with different run ids compare; plus the runs in order."""
    with duckdb.connect(str(db), read_only=True) as con:
        runs = [
            r
            for (r,) in con.execute(
                "SELECT sync_run_id FROM ops.sync_run WHERE county_code = ? AND entity <> '*' "
                "GROUP BY sync_run_id ORDER BY min(started_at)",
                [LUONAN.code],
            ).fetchall()
        ]
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'core' "
                "AND table_name NOT LIKE '%history' AND table_name <> 'region'"
            ).fetchall()
        ]
        out = {}
        for t in tables:
            found = con.execute(
                f"SELECT sync_run_id, count(*) FROM core.{t} WHERE county_code = ? "
                "AND deleted_at IS NULL GROUP BY 1 ORDER BY 1",
                [LUONAN.code],
            ).fetchall()
            out[t] = sorted((runs.index(r), n) for r, n in found)
        return out


def test_kill_9_during_the_touch_then_next_merge_finishes_it_first(
    world, hub_home, tmp_path, monkeypatch
):
    clean = tmp_path / "clean"
    sync_in_process(LUONAN, "full")
    with home(clean):
        sync_in_process(LUONAN, "full")
        sync_in_process(LUONAN, "full")  # the same re-read, not killed

    # an unchanged full re-read, killed after its COMMIT and the touch's first piece
    killed = hub(
        tmp_path, "killed", "sync", "luonan", "--mode", "full", pause_at="touch", env=SMALL_PIECES
    )
    killed.wait_ready()
    killed.kill9()

    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        first, second = (
            r
            for (r,) in con.execute(
                "SELECT sync_run_id FROM ops.sync_run WHERE county_code = ? "
                "GROUP BY 1 ORDER BY min(started_at)",
                [LUONAN.code],
            ).fetchall()
        )
        # the merge committed: its run succeeded, and what its touch still owes is recorded
        assert con.execute(
            "SELECT DISTINCT status FROM ops.sync_run WHERE sync_run_id = ?", [second]
        ).fetchall() == [("succeeded",)]
        pending = con.execute(
            "SELECT sync_run_id, sum(row_count), max(pieces) FROM ops.touch_pending GROUP BY 1"
        ).fetchall()
        assert [r for r, _n, _p in pending] == [second]
        assert pending[0][2] > 1
        left = con.execute(
            "SELECT count(*) FROM ops.touch_pending_key WHERE sync_run_id = ?", [second]
        ).fetchone()[0]
        assert 0 < left < pending[0][1]  # the first piece was done and removed its keys
        stamped = dict(
            con.execute(
                "SELECT sync_run_id, count(*) FROM core.person WHERE county_code = ? GROUP BY 1",
                [LUONAN.code],
            ).fetchall()
        )
        assert stamped.get(first, 0) > 0  # rows not yet touched still name the first sync
    # the county's status says so: the rows still owed, for 洛南 only
    assert _touch_pending_in_sync_status() == {LUONAN.code: left}

    # the next merge of the county (a full re-read again) finishes the pending touch first
    output = run_hub(tmp_path, "next", "sync", "luonan", "--mode", "full")
    assert f"sync {second} committed but the touch" in output
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ops.touch_pending").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM ops.touch_pending_key").fetchone()[0] == 0
    assert _touch_pending_in_sync_status() == {}
    with home(clean):
        sync_in_process(LUONAN, "full")
        clean_db = paths.live_db()

    # nothing else changed: the same content, and every live row names the latest sync (a
    # touch of the killed run finished after the next merge would have left its id behind)
    assert county_content(LUONAN, hub_home) == county_content(LUONAN, clean)
    mine = _stamps(paths.live_db())
    assert mine == _stamps(clean_db)
    assert mine["person"] and all(len(r) == 1 and r[0][0] == 2 for r in mine.values() if r), mine


def _touch_pending_in_sync_status() -> dict[str, int]:
    """mart.sync_status.touch_pending_rows of the counties where it is not 0, marts rebuilt."""
    import warehouse

    with warehouse.connect() as con:
        warehouse.rebuild_marts(con)
        return dict(
            con.execute(
                "SELECT county_code, touch_pending_rows FROM mart.sync_status "
                "WHERE touch_pending_rows <> 0"
            ).fetchall()
        )


def _stamp_counts(con, prefix: str = "") -> dict[str, list[tuple]]:
    """(sync_run_id, last_synced_at, rows) of the county's rows per core entity table."""
    return {
        t: con.execute(
            f"SELECT sync_run_id, last_synced_at, count(*) FROM {prefix}core.{t} "
            "WHERE county_code = ? GROUP BY ALL ORDER BY ALL",
            [LUONAN.code],
        ).fetchall()
        for t in ("household", "person", "measure")
    }


def test_a_snapshot_published_while_a_touch_is_pending_catches_up(
    world, hub_home, tmp_path, monkeypatch
):
    import warehouse
    import warehouse.snapshot_delta as snapshot_delta

    # one county re-read in full is every row of this world: the delta is what is tested here,
    # not the share above which a publish rebuilds instead (REBUILD_SHARE)
    monkeypatch.setattr(snapshot_delta, "REBUILD_SHARE", 2.0)

    sync_in_process(LUONAN, "full")
    warehouse.publish_snapshots()  # the full rebuild later deltas start from
    killed = hub(
        tmp_path, "killed", "sync", "luonan", "--mode", "full", pause_at="touch", env=SMALL_PIECES
    )
    killed.wait_ready()
    killed.kill9()
    # published with the touch half done: the copy says which sync's touch was pending
    assert warehouse.publish_snapshots().mode == "delta"
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as snap:
        assert snap.execute("SELECT count(*) FROM ops.touch_pending").fetchone()[0] > 0

    # the next merge finishes the touch; the next delta brings the rows touched since
    sync_in_process(LUONAN)
    published = warehouse.publish_snapshots()
    assert published.mode == "delta", published.reason
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ops.touch_pending").fetchone()[0] == 0
        live = _stamp_counts(con)
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as snap:
        assert _stamp_counts(snap) == live
