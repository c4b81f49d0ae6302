"""洛南县 end to end: simulator over HTTP → Dagster materialization → DuckDB, exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from seeds.registry import county
from tests.e2e.helpers import live, simulator_keys, sync_county, truth, warehouse_keys

pytestmark = pytest.mark.e2e
LUONAN = county("luonan")
ENTITIES = ("household", "person", "measure", "loan", "project", "cadre", "household_cadre")


def _rejected(truth_df: pl.DataFrame, entity: str) -> set[str]:
    return set(
        truth_df.filter((pl.col("entity") == entity) & (pl.col("level") == "reject"))["source_key"]
    )


def _snapshot(con) -> dict[str, object]:
    """Everything a no-op sync must leave unchanged."""
    out = {}
    for entity in ("region", *ENTITIES):
        out[entity] = con.execute(
            f"SELECT count(*), sum(hash(row_hash)), count(deleted_at) FROM core.{entity}"
        ).fetchone()
    for table in ("household_history", "person_history"):
        out[table] = con.execute(f"SELECT count(*) FROM core.{table}").fetchone()
    return out


def test_full_sync_holds_exactly_source_minus_truth(simulator, backend):
    result = sync_county(LUONAN)
    assert result.success
    t = truth(simulator, LUONAN)
    assert t.height > 0, "the simulator injected no defects at this scale"
    with live() as con:
        for entity in ENTITIES:
            source = simulator_keys(simulator, LUONAN, entity)
            rejected = _rejected(t, entity)
            assert warehouse_keys(con, LUONAN, entity) == source - rejected, entity
            quarantined = {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT source_key FROM ops.reject WHERE county_code = ? AND entity = ?",
                    [LUONAN.code, entity],
                ).fetchall()
            }
            assert quarantined == rejected & source, entity
        runs = con.execute(
            "SELECT count(*) FROM ops.sync_run WHERE county_code = ? AND status = 'succeeded'",
            [LUONAN.code],
        ).fetchone()[0]
        assert runs >= len(ENTITIES)
        watermarks = con.execute(
            "SELECT count(*) FROM ops.watermark WHERE county_code = ?", [LUONAN.code]
        ).fetchone()[0]
        assert watermarks >= len(ENTITIES)
    # Materialization metadata carries the counts a county admin reads in the UI.
    materializations = {
        tuple(m.asset_key.path): m.metadata
        for m in result.asset_materializations_for_node("luonan_merge")
    }
    household = materializations[("luonan", "household")]
    assert household["accepted"].value == len(simulator_keys(simulator, LUONAN, "household")) - len(
        _rejected(t, "household") & simulator_keys(simulator, LUONAN, "household")
    )


def test_resync_without_changes_changes_nothing(simulator, hub_home):
    assert sync_county(LUONAN).success
    with live() as con:
        before = _snapshot(con)
    assert sync_county(LUONAN).success
    with live() as con:
        after = _snapshot(con)
    assert after == before


def test_incremental_sync_picks_up_exactly_the_changes(simulator, backend):
    assert sync_county(LUONAN).success
    # A month of clock: at test scale a single day often brings no change in one county.
    changes = simulator.advance(days=30)
    assert changes["registered"] + changes["exited"] + changes["deleted"] > 0, changes
    incremental = sync_county(LUONAN, mode="incremental")
    assert incremental.success
    # the checks hold after an incremental sync too (records rejected earlier are not resent)
    failed = [
        (e.asset_key.to_user_string(), e.check_name)
        for e in incremental.get_asset_check_evaluations()
        if not e.passed and e.check_name != "no_new_conflicts"
    ]
    assert failed == []
    t = truth(simulator, LUONAN)
    with live() as con:
        mode = con.execute(
            "SELECT DISTINCT mode FROM ops.sync_run WHERE county_code = ? ORDER BY started_at DESC LIMIT 1",
            [LUONAN.code],
        ).fetchone()[0]
        assert mode == "incremental"
        fetched, live_rows = con.execute(
            """SELECT r.fetched, (SELECT count(*) FROM core.household WHERE county_code = r.county_code)
               FROM ops.sync_run r WHERE county_code = ? AND entity = 'household'
               ORDER BY started_at DESC LIMIT 1""",
            [LUONAN.code],
        ).fetchone()
        assert 0 < fetched < live_rows / 2, (
            "an incremental sync fetches the changes, not everything"
        )
        for entity in ("household", "person"):
            source = simulator_keys(simulator, LUONAN, entity)
            assert warehouse_keys(con, LUONAN, entity) == source - _rejected(t, entity), entity
        # What the simulator deleted is soft-deleted, not gone.
        world = simulator.world
        with world.lock:
            deleted = world.records(LUONAN.code, "household", include_deleted=True).filter(
                pl.col("deleted_at").is_not_null()
            )["source_key"]
        if len(deleted):
            got = con.execute(
                "SELECT count(*) FROM core.household WHERE deleted_at IS NOT NULL AND county_code = ?",
                [LUONAN.code],
            ).fetchone()[0]
            assert got >= len(set(deleted) - _rejected(t, "household"))


def test_replay_from_raw_without_the_source(simulator, hub_home):
    """A landed sync merges again without the platform; an older one is refused."""
    from base.errors import StaleReplay
    from pipelines import sync

    first = sync.land(LUONAN, "full")
    second = sync.land(LUONAN, "full")
    simulator.stop()  # from here on the source is unreachable
    sync.merge(LUONAN, second)
    with live() as con:
        before = _snapshot(con)
    with pytest.raises(StaleReplay, match="older than the last merged sync"):
        sync.merge(LUONAN, first)
    shutil.rmtree(Path(second.staged_path))  # replay re-normalises from the landed pages
    sync.merge(LUONAN, second)
    with live() as con:
        assert _snapshot(con) == before


def test_a_landing_that_failed_is_never_merged(simulator, hub_home, fast_retries):
    """Pages fetched before a failure stay on disk, marked incomplete; merging them is refused
    (a partial full listing would otherwise look like mass deletions)."""
    from base.errors import SourceError
    from pipelines import sync
    from pipelines.landing import read_manifest

    simulator.arm_fault(LUONAN.code, "html200", count=1000, entity="person")
    with pytest.raises(SourceError):
        sync.land(LUONAN, "full")
    (manifest_path,) = Path(hub_home, "landing", "luonan").glob("*/manifest.json")
    manifest = read_manifest(manifest_path)
    assert not manifest.complete and manifest.pages, "what was fetched is kept"
    partial = sync.Landed(
        LUONAN.code, manifest.sync_id, "full", str(manifest_path),
        str(manifest_path.parent / "staged"), len(manifest.pages), 0, 0.0, {},
    )  # fmt: skip
    with pytest.raises(SourceError, match="did not complete"):
        sync.merge(LUONAN, partial)
