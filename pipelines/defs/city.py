"""City-level assets: the marts and the analyst snapshot, rebuilt from whatever the counties hold.

They run in their own run after the county syncs (the automation condition below, or the
`sync_city` job), so one county failing never stops the marts: they rebuild from what is there
and ``mart.sync_status`` shows the failed county as stale.
"""

import time

import dagster as dg

import warehouse
from base import paths, settings
from pipelines.defs.keys import POOL, WAREHOUSE_TAG, entities_of, entity_key
from pipelines.defs.metadata import frame_markdown
from seeds.registry import counties
from warehouse.batch import frame_of

MARTS = dg.AssetKey(["city", "marts"])
SNAPSHOT = dg.AssetKey(["city", "snapshot"])

# Rebuild once any county has new data and none is mid-sync; a failed county does not block it.
AFTER_COUNTY_SYNCS = (
    dg.AutomationCondition.any_deps_updated() & ~dg.AutomationCondition.any_deps_in_progress()
)


@dg.asset(
    key=MARTS,
    group_name="city",
    deps=[entity_key(c, e) for c in counties() for e in entities_of(c)],
    pool=POOL,
    op_tags=WAREHOUSE_TAG,
    kinds={"duckdb", "sql"},
    description="The mart schema (warehouse/sql/marts/*.sql), rebuilt from core and ops.",
    automation_condition=AFTER_COUNTY_SYNCS,
)
def marts(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    started = time.perf_counter()
    with warehouse.connect() as con:
        tables = warehouse.rebuild_marts(con)
        # not .pl(): it imports pyarrow, ~35 MB the run worker then holds through the snapshot
        status = frame_of(con.sql("SELECT * FROM mart.sync_status ORDER BY county_code"))
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.json(tables),
            "duration_s": round(time.perf_counter() - started, 2),
            "sync_status": dg.MetadataValue.md(frame_markdown(status)),
        }
    )


@dg.asset(
    key=SNAPSHOT,
    group_name="city",
    deps=[MARTS],
    pool=POOL,
    op_tags=WAREHOUSE_TAG,
    kinds={"duckdb"},
    description=(
        "The two published files: the analyst snapshot (`hub sql`; core, ops and mart without "
        "names, ID numbers, phones or birth dates) and the restricted PII snapshot (owner-only), "
        "each built beside its target and renamed into place atomically."
    ),
    automation_condition=dg.AutomationCondition.eager(),
)
def snapshot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    started = time.perf_counter()
    if settings.is_lake():
        return _publish_analyst_lake(started)
    pii, target = paths.pii_snapshot_db(), paths.snapshot_db()
    published = warehouse.publish_snapshots(paths.live_db(), target, pii)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "size_mb": round(target.stat().st_size / 2**20, 1),
            # delta (changed rows only) or full (rebuilt), and why: never a rebuild called a delta
            "analyst_publish": published.mode,
            "analyst_publish_reason": published.reason,
            "analyst_delta": dg.MetadataValue.json(
                {k: v for k, v in published.as_metadata().items() if k not in ("mode", "reason")}
            ),
            "pii_snapshot_path": dg.MetadataValue.path(str(pii)),
            "duration_s": round(time.perf_counter() - started, 2),
            "query": dg.MetadataValue.md('```\nmake sql   # or: hub sql "SELECT …"\n```'),
        }
    )


def _publish_analyst_lake(started: float) -> dg.MaterializeResult:
    """The DuckLake backend publishes no file: it commits the analyst lake (no identifiers) from
    the main lake; the restricted tier is the main lake itself, attached read-only
    (``pipelines.lake.tiers``, docs/analysts.md)."""
    from pipelines.lake import tiers

    published = tiers.publish()
    return dg.MaterializeResult(
        metadata={
            "main_lake_snapshot": published.source_snapshot,
            "analyst_lake_snapshot": published.analyst_snapshot or "unchanged",
            "rewritten": dg.MetadataValue.json(published.rewritten),
            "duration_s": round(time.perf_counter() - started, 2),
            "query": dg.MetadataValue.md('```\nmake sql   # or: hub sql "SELECT …"\n```'),
        }
    )
