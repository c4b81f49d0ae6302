"""One asset group per county, generated from the registry (``seeds/counties.csv``).

Each group has a ``landing`` asset (fetch every page, outside the warehouse pool so counties
fetch in parallel) and one asset per entity the platform delivers, materialised together by a
single step in the ``duckdb_warehouse`` pool that normalises, validates and merges the landed
sync in one transaction.
"""

import os

import dagster as dg

import warehouse
from base.errors import RejectThresholdExceeded
from pipelines import rejects, sync
from pipelines.connectors.registry import connector_for
from pipelines.defs import checks
from pipelines.defs.keys import (
    LANDING_TAG,
    entities_of,
    entity_key,
    landing_key,
    merge_pool,
    merge_tags,
)
from pipelines.defs.metadata import landing_metadata, merge_metadata
from pipelines.modes import FULL_REREAD, FULL_REREAD_ZH, filters_by_time
from schemas.validate import table_schema
from seeds.registry import County, counties
from warehouse.duckdb_bounds import MERGE, bound

LANDING_NICENESS = 10


class SyncConfig(dg.Config):
    # "full" re-lists everything, which is what finds deletions on battle platforms
    mode: str = "incremental"


class MergeConfig(dg.Config):
    # the largest share of a county's live records of one entity one sync may delete; raise it
    # only to accept a real mass deletion that the safety stop refused
    safety_share: float = warehouse.DEFAULT_SAFETY_SHARE


def freshness(county: County) -> dg.FreshnessPolicy:
    """API counties sync hourly, so a few hours is late; workbooks arrive about weekly (the
    windows are the connector's)."""
    connector = connector_for(county)
    return dg.FreshnessPolicy.time_window(
        fail_window=connector.freshness_fail, warn_window=connector.freshness_warn
    )


def county_tags(county: County) -> dict[str, str]:
    return {"county": county.slug, "platform": county.kind, "county_code": county.code}


def county_description(county: County) -> str:
    """The county, its platform (the connector's label), and what an incremental sync is."""
    description = (
        f"{county.name} {county.name_en} ({county.code}) — {connector_for(county).label}, "
        f"version {county.version}. Connection: HUB_{county.slug.upper()}_URL/_KEY/_SECRET "
        "(when unset: the bundled simulator in the demo profile; in production the county is "
        "not configured and never simulated)."
    )
    return description + reread_note(county)


def reread_note(county: County) -> str:
    """A platform that cannot filter by time re-reads everything on an "incremental" sync."""
    if filters_by_time(county):
        return ""
    return (
        f" 增量同步：{FULL_REREAD_ZH}（平台不能按时间筛选）. Incremental syncs: "
        f"{FULL_REREAD} (the platform cannot filter by time)."
    )


def landing_priority(county: County) -> dict[str, str]:
    """A platform that cannot filter by time re-reads everything on every sync (商州's v2: the
    longest landing of an incremental by far), so its landing starts first, whatever its name's
    place in the plan, and the other counties merge while it lands (the merges, one at a time,
    still go first: priority 10)."""
    return {} if filters_by_time(county) else {"dagster/priority": "1"}


def build_county(county: County) -> list[dg.AssetsDefinition]:
    description, reread = county_description(county), reread_note(county)
    owners = [county.owner] if county.owner else []

    @dg.asset(
        key=landing_key(county),
        group_name=county.slug,
        description=f"Every page fetched from {description}, stored as received before parsing.",
        owners=owners,
        tags=county_tags(county),
        kinds={"python", county.kind},
        op_tags={"county": county.slug, **LANDING_TAG, **landing_priority(county)},
    )
    def landing(context: dg.AssetExecutionContext, config: SyncConfig) -> sync.Landed:
        # Fetching is throughput work; the merges (one at a time) are a sync's critical path,
        # so on a busy machine this step yields the CPU to them.
        os.nice(LANDING_NICENESS)
        landed = sync.land(county, config.mode)
        context.add_output_metadata(landing_metadata(county, landed))
        return landed

    specs = [
        dg.AssetSpec(
            entity_key(county, entity),
            deps=[landing_key(county)],
            group_name=county.slug,
            description=f"core.{entity} rows of {county.name} ({county.code}), validated and merged."
            + reread,
            owners=owners,
            tags=county_tags(county),
            kinds={"duckdb", "pandera"},
            freshness_policy=freshness(county),
            metadata={"dagster/column_schema": table_schema(entity), "table": f"core.{entity}"},
        )
        for entity in entities_of(county)
    ]

    # The checks run in the merge step itself: it already holds the pool slot, and a separate
    # check step per county would queue for the single DuckDB writer a second time.
    @dg.multi_asset(
        name=f"{county.slug}_merge",
        specs=specs,
        check_specs=checks.check_specs(county),
        pool=merge_pool(county),
        # The merges are the serial part of a sync: start each one as soon as its landing is done.
        op_tags={"county": county.slug, "dagster/priority": "10", **merge_tags(county)},
        ins={"landed": dg.AssetIn(landing_key(county))},
    )
    def merge(context: dg.AssetExecutionContext, config: MergeConfig, landed: sync.Landed):
        try:
            merged = sync.merge(
                county,
                landed,
                safety_share=config.safety_share,
                orchestrator_run=context.run.run_id,
            )
        except RejectThresholdExceeded as refused:
            csv = rejects.export_sync(county, landed.sync_id)
            yield checks.refused_check(county, refused, csv)
            raise
        # one connection after the merge for its rejects file and its checks (each open takes
        # the warehouse lock and reads the catalogue: bench/history.md, "Where the time goes"),
        # read-only: they write nothing, so the open skips the migrations check, the profile,
        # the region seed and the queued failures, and the close the commit record
        with warehouse.connect(read_only=True) as con:
            bound(con, MERGE)  # one thread as the merge: a second cost CPU-s on these small queries
            csv = rejects.export_sync(county, merged.sync_id, con)
            for entity in entities_of(county):
                yield dg.MaterializeResult(
                    asset_key=entity_key(county, entity),
                    metadata=merge_metadata(county, entity, merged, csv),
                )
            yield from checks.evaluate(county, con)

    return [landing, merge]


def county_assets() -> list[dg.AssetsDefinition]:
    return [a for c in counties() for a in build_county(c)]
