"""A restored backup never skips a day (issue 11, point 1): the cursors a landing starts from are
the warehouse's, whatever the cache in HUB_HOME/state says."""

from __future__ import annotations

import shutil

import duckdb
import pytest

import warehouse
from base import paths
from base.errors import CursorMismatch
from pipelines import sync
from seeds.registry import county
from tests.faults.conftest import changed, county_content, home, run_hub, sync_in_process
from warehouse import cursors

pytestmark = pytest.mark.faults
LUONAN = county("luonan")


def _modes(hub_home) -> list[str]:
    with duckdb.connect(str(hub_home / "warehouse" / "hub.duckdb"), read_only=True) as con:
        return [
            m
            for (m,) in con.execute(
                "SELECT DISTINCT sync_run_id || ' ' || mode FROM ops.sync_run "
                "WHERE county_code = ? ORDER BY 1",
                [LUONAN.code],
            ).fetchall()
        ]


def test_backup_restore_then_incremental_equals_a_clean_run_without_a_full_sync(
    world, hub_home, tmp_path
):
    clean = tmp_path / "clean"
    backup = tmp_path / "backups" / "day0.duckdb"
    sync_in_process(LUONAN, "full")
    with home(clean):
        sync_in_process(LUONAN, "full")
    out = run_hub(tmp_path, "backup", "backup", str(backup))
    assert "Backed up" in out and backup.exists()

    changed(world)
    sync_in_process(LUONAN)  # applies the month ...
    out = run_hub(tmp_path, "restore", "restore", str(backup))  # ... which the restore undoes
    assert "Cursor cache reset" in out, out
    run_hub(tmp_path, "again", "sync", "luonan")  # must fetch the day again
    with home(clean):
        sync_in_process(LUONAN)

    restored = county_content(LUONAN, hub_home)
    assert restored == county_content(LUONAN, clean)
    with home(tmp_path / "day0"):
        shutil.copytree(backup.parent, tmp_path / "day0" / "warehouse")
        (tmp_path / "day0" / "warehouse" / "day0.duckdb").rename(paths.live_db())
        day0 = county_content(LUONAN, tmp_path / "day0")
    assert restored["ops.watermark"] != day0["ops.watermark"]  # the day was fetched again
    modes = _modes(hub_home)
    assert [m.split()[1] for m in modes] == ["full", "incremental"], modes  # no full sync


def test_a_warehouse_copied_back_by_hand_is_detected_by_the_landing(world, hub_home, tmp_path):
    """No `hub restore`, the cache left a day ahead: the landing sees the file is not the one
    its cache belongs to and starts from the warehouse's own cursors."""
    clean = tmp_path / "clean"
    sync_in_process(LUONAN, "full")
    with home(clean):
        sync_in_process(LUONAN, "full")
    copy = tmp_path / "by-hand.duckdb"
    shutil.copyfile(paths.live_db(), copy)
    changed(world)
    sync_in_process(LUONAN)
    shutil.copyfile(copy, paths.live_db())  # the cache in state/ stays a day ahead

    landed = sync.land(LUONAN)
    assert landed.watermarks_source == "warehouse"
    sync.merge(LUONAN, landed)
    with home(clean):
        sync_in_process(LUONAN)
    assert county_content(LUONAN, hub_home) == county_content(LUONAN, clean)


def test_the_merge_refuses_a_landing_from_cursors_the_warehouse_never_committed(
    world, hub_home, tmp_path
):
    sync_in_process(LUONAN, "full")
    copy = tmp_path / "day0.duckdb"
    shutil.copyfile(paths.live_db(), copy)
    changed(world)
    sync_in_process(LUONAN)
    landed = sync.land(LUONAN)  # from day 1's cursors ...
    shutil.copyfile(copy, paths.live_db())  # ... but the warehouse goes back to day 0
    cursors.forget_commit_record()
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        before = con.execute("SELECT count(*), max(sync_run_id) FROM ops.sync_run").fetchone()

    with pytest.raises(CursorMismatch) as refused:
        sync.merge(LUONAN, landed)
    message = str(refused.value)
    assert LUONAN.name in message and "Nothing was merged" in message, message
    assert "sync the county again" in message, message
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        after = con.execute("SELECT count(*), max(sync_run_id) FROM ops.sync_run").fetchone()
        committed = warehouse.watermarks(con, LUONAN.code)
    assert after == before
    # the cache now holds the warehouse's cursors: the next sync resumes from them
    assert warehouse.read_state(LUONAN) == committed
    assert sync.land(LUONAN).watermarks_before == committed


def test_hub_warehouse_pointed_at_another_file_never_uses_the_cache(
    world, hub_home, tmp_path, monkeypatch
):
    sync_in_process(LUONAN, "full")
    first = paths.live_db()
    assert sync.land(LUONAN).watermarks_source == "cache"  # the cache is the warehouse's

    monkeypatch.setenv("HUB_WAREHOUSE", str(tmp_path / "new.duckdb"))  # a new, empty file
    landed = sync.land(LUONAN)
    assert (landed.mode, landed.watermarks_source, landed.watermarks_before) == ("full", "none", {})
    sync.merge(LUONAN, landed)
    changed(world)
    sync_in_process(LUONAN)  # the new file moves on; the cache follows it

    monkeypatch.setenv("HUB_WAREHOUSE", str(first))  # back to the older file
    landed = sync.land(LUONAN)
    with duckdb.connect(str(first), read_only=True) as con:
        committed = warehouse.watermarks(con, LUONAN.code)
    assert landed.watermarks_source == "warehouse"
    assert landed.watermarks_before == committed
    sync.merge(LUONAN, landed)  # and it merges: the cursors are the file's own
