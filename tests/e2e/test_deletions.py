"""Deletions on a platform without a deletion feed (battle, 商南): only a full listing reveals
them, by absence. A full sync soft-deletes exactly what left the source (rows kept, history
closed); an incremental sync never deletes; and a listing that is implausibly short is refused
by the safety stop, leaving the warehouse as it was."""

from __future__ import annotations

from datetime import UTC

import dagster as dg
import polars as pl
import pytest

from pipelines.defs.keys import entities_of
from seeds.registry import county
from tests.conftest import serving
from tests.e2e.helpers import (
    failure_messages,
    live,
    simulator_keys,
    source_key_expr,
    sync_county,
    truth,
    warehouse_digest,
    warehouse_keys,
)

pytestmark = pytest.mark.e2e
SHANGNAN = county("shangnan")


@pytest.fixture
def shangnan_platform(monkeypatch):
    """A simulator serving 商南 alone. A one-county world holds the whole city's records at
    the test scale (~1,600 households), so a month of clock brings enough 清退 deletions to
    count, where the seven-county world at this scale brings about one."""
    with serving(monkeypatch, defect_rate=0.01, counties=[SHANGNAN]) as handle:
        yield handle


def _deleted_keys(con, entity: str) -> set[str]:
    return warehouse_keys(con, SHANGNAN, entity, live_only=False) - warehouse_keys(
        con, SHANGNAN, entity
    )


def _rejected(t: pl.DataFrame, entity: str) -> set[str]:
    return set(t.filter((pl.col("entity") == entity) & (pl.col("level") == "reject"))["source_key"])


def test_full_sync_deletes_exactly_what_left_and_incremental_deletes_nothing(
    shangnan_platform, backend
):
    sim = shangnan_platform
    instance = dg.DagsterInstance.ephemeral()
    entities = entities_of(SHANGNAN)
    assert sync_county(SHANGNAN, "full", instance).success

    changes = sim.advance(days=30)
    assert changes["deleted"] > 0, changes

    # Incremental: changed and new records arrive, but nothing can be seen to be gone.
    assert sync_county(SHANGNAN, "incremental", instance).success
    with live() as con:
        for entity in entities:
            assert _deleted_keys(con, entity) == set(), entity
        live_before = {e: warehouse_keys(con, SHANGNAN, e) for e in entities}
        rows_before = {
            e: con.execute(
                f"SELECT count(*) FROM core.{e} WHERE county_code = ?", [SHANGNAN.code]
            ).fetchone()[0]
            for e in entities
        }

    # Full: every live row the listing no longer names is soft-deleted, and nothing else.
    assert sync_county(SHANGNAN, "full", instance).success
    t = truth(sim, SHANGNAN)
    with live() as con:
        for entity in entities:
            source = simulator_keys(sim, SHANGNAN, entity)
            assert _deleted_keys(con, entity) == live_before[entity] - source, entity
            assert warehouse_keys(con, SHANGNAN, entity) == source - _rejected(t, entity), entity
            rows = con.execute(
                f"SELECT count(*) FROM core.{entity} WHERE county_code = ?", [SHANGNAN.code]
            ).fetchone()[0]
            assert rows >= rows_before[entity], f"{entity}: rows were physically removed"
        gone_households = _deleted_keys(con, "household")
        assert gone_households, "the month's 清退 households should be gone from the source"
        for entity in ("household", "person"):
            key = source_key_expr(entity)
            gone = sorted(_deleted_keys(con, entity))
            open_versions, closed_deleted = con.execute(
                f"""SELECT count(*) FILTER (WHERE valid_to IS NULL),
                           count(DISTINCT {key}) FILTER (WHERE closed_reason = 'deleted')
                    FROM core.{entity}_history WHERE {key} IN (SELECT unnest($gone))""",
                {"gone": gone},
            ).fetchone()
            assert open_versions == 0, f"{entity}: a deleted record still has an open version"
            assert closed_deleted == len(gone), entity
        runs = con.execute(
            """SELECT mode, sum(deleted) FROM ops.sync_run WHERE county_code = ?
               GROUP BY sync_run_id, mode ORDER BY max(finished_at)""",
            [SHANGNAN.code],
        ).fetchall()
    assert [r[0] for r in runs] == ["full", "incremental", "full"]
    assert runs[1][1] == 0 and runs[2][1] == sum(
        len(live_before[e] - simulator_keys(sim, SHANGNAN, e)) for e in entities
    )


def test_an_implausibly_short_listing_trips_the_safety_stop(simulator, backend):
    sim = simulator
    instance = dg.DagsterInstance.ephemeral()
    assert sync_county(SHANGNAN, "full", instance).success
    before = warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page"))

    # A sick platform whose cadre listing lost 30% of its rows: to the pipeline this looks
    # exactly like a mass deletion. Edited in the world itself (the simulator has no fault for
    # it), then the platform's rendered pages are dropped so it serves the shorter listing.
    world = sim.world
    with world.lock:
        state = world._state(SHANGNAN.code)
        cadres = state.frames["cadre"]
        live_rows = cadres.filter(pl.col("deleted_at").is_null())
        lost = live_rows["source_key"].head(int(live_rows.height * 0.3) + 1)
        state.frames["cadre"] = cadres.with_columns(
            pl.when(pl.col("source_key").is_in(lost.implode()))
            .then(pl.lit(world.now.astimezone(UTC)).cast(pl.Datetime("ms", "UTC")))
            .otherwise(pl.col("deleted_at"))
            .alias("deleted_at")
        )
    sim.sim.platform(SHANGNAN.code).cache.clear()
    assert len(simulator_keys(sim, SHANGNAN, "cadre")) == live_rows.height - lost.len()

    result = sync_county(SHANGNAN, "full", instance, raise_on_error=False)

    assert not result.success
    message = failure_messages(result)["shangnan_merge"]
    assert "SafetyStop" in message and "商南县" in message, message
    with live() as con:
        held = warehouse_keys(con, SHANGNAN, "cadre")  # the source's minus any it rejected
    gone = len(held & set(lost))
    assert f"safety stop: {gone} of {len(held)} live cadre records" in message, message
    assert "nothing was merged" in message
    assert warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page")) == before
