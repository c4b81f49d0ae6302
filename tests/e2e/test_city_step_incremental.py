"""The city step after a real incremental (issue 13u): the analyst snapshot's delta updates in
place only the stamps of the rows a sync merely saw (商州's v2 platform re-reads every record
each day) and still equals a full rebuild, table for table; the marts, rebuilt with the
duplicates ranked once on narrow columns, keep exactly one record per person as the definition
says, and the reconciliation counts the others as duplicates. On both backends: the marts SQL
runs on the DuckDB file and on DuckLake (``-m lake``); the snapshot delta is the file's."""

from __future__ import annotations

import duckdb
import pytest

import warehouse.snapshot_delta as snapshot_delta
from base import paths, settings
from pipelines.defs.city import SNAPSHOT
from seeds.registry import county
from tests.e2e.helpers import sync_city, sync_county
from tests.e2e.test_snapshot_delta import assert_published_is_a_rebuild
from tests.marts_definition import (
    assert_marts_equal_a_full_build,
    assert_marts_keep_one_record_per_person,
)

SHANGZHOU, LUONAN = county("shangzhou"), county("luonan")


def _published(result) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == SNAPSHOT]
    meta = event.materialization.metadata
    return {"mode": meta["analyst_publish"].value, **meta["analyst_delta"].value}


@pytest.mark.e2e
def test_an_incremental_city_step_restamps_the_re_read_and_equals_a_full_rebuild(
    simulator, hub_home, tmp_path, monkeypatch
):
    for c in (SHANGZHOU, LUONAN):
        assert sync_county(c, mode="full").success
    assert sync_city().success
    simulator.advance(days=1)
    for c in (SHANGZHOU, LUONAN):
        assert sync_county(c).success  # 商州: every record again; 洛南: one day of changes

    monkeypatch.setenv("HUB_MERGE_TOUCH_ROWS", "300")  # the restamp in pieces of 300 rows
    # and its join in parts of 500 copy rows (1M at scale 10: snapshot_delta.RESTAMP_JOIN_ROWS)
    monkeypatch.setattr(snapshot_delta, "RESTAMP_JOIN_ROWS", 500)
    result = sync_city()
    assert result.success
    published = _published(result)
    assert published["mode"] == "delta", published
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        (shangzhou_rows,) = con.execute(
            "SELECT count(*) FROM core.person WHERE county_code = ? AND deleted_at IS NULL",
            [SHANGZHOU.code],
        ).fetchone()
        assert_marts_keep_one_record_per_person(con)
    # 商州's re-read rows are restamped in place, not rewritten
    assert published["rows_restamped"] >= shangzhou_rows > 0, published
    assert published["rows_inserted"] < published["rows_restamped"], published

    assert_published_is_a_rebuild(tmp_path)
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as con:
        con.execute(f"ATTACH '{paths.pii_snapshot_db()}' AS pii (READ_ONLY)")
        # the restamped rows carry the live stamps: the analyst sees when 商州 was last synced
        (stale,) = con.execute(
            "SELECT count(*) FROM core.person AS a JOIN pii.core.person AS p USING (person_no) "
            "WHERE a.last_synced_at IS DISTINCT FROM p.last_synced_at "
            "OR a.sync_run_id IS DISTINCT FROM p.sync_run_id"
        ).fetchone()
        assert stale == 0


@pytest.mark.lake
def test_the_marts_on_the_lake_keep_one_record_per_person(
    simulator, hub_home, postgres, monkeypatch
):
    from pipelines.lake import tiers
    from warehouse.lake import extensions

    main = postgres.database("marts_lake")
    postgres.database("marts_lake" + settings.ANALYST_CATALOG_SUFFIX)
    for key in ("HUB_ANALYST_LAKE_CATALOG", "HUB_ANALYST_LAKE_DATA_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", main)
    for c in (SHANGZHOU, LUONAN):
        assert sync_county(c, mode="full").success
    simulator.advance(days=1)
    for c in (SHANGZHOU, LUONAN):
        assert sync_county(c).success
    assert sync_city().success
    con = duckdb.connect()
    try:
        extensions.load(con)
        con.execute(tiers.attach_sql("lake", main, settings.lake_data_path(), read_only=True))
        assert_marts_keep_one_record_per_person(con, "lake.")
    finally:
        con.close()


def _marts_build() -> dict:
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        cur = con.execute("SELECT * FROM marts_state.build")
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))


@pytest.mark.e2e
def test_the_marts_and_the_analyst_file_by_delta_equal_full_builds(simulator, hub_home, tmp_path):
    """mart.person and mart.special_groups are rewritten only for the persons the syncs changed
    (and the aged ones when the data's date moves, the date itself by one UPDATE); the live marts
    and the analyst file then equal full builds, after a month (at this scale the data's latest
    date moves in weeks, not days) and after a re-sync at the same time (it does not; 商州's
    re-read still stamps every row)."""
    for c in (SHANGZHOU, LUONAN):
        assert sync_county(c, mode="full").success
    assert sync_city().success
    assert _marts_build()["mode"] == "full"  # no record before the first build
    for days, moved in ((30, True), (0, False)):
        simulator.advance(days=days)
        for c in (SHANGZHOU, LUONAN):
            assert sync_county(c).success
        result = sync_city()
        assert result.success
        build = _marts_build()
        assert (build["mode"], build["reference_moved"]) == ("delta", moved), build
        published = _published(result)
        assert published["mode"] == "delta", published
        assert {"mart.person", "mart.special_groups"} <= set(published["delta_tables"])
        assert_marts_equal_a_full_build(paths.live_db(), tmp_path)
        assert_published_is_a_rebuild(tmp_path)
        with duckdb.connect(str(paths.live_db()), read_only=True) as con:
            assert_marts_keep_one_record_per_person(con)
            (persons,) = con.execute("SELECT count(*) FROM mart.person").fetchone()
        if moved:  # a day of changes: some persons, far from all, rewritten
            assert 0 < build["changed_persons"] < persons, build
