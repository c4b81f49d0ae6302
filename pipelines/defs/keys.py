"""Asset keys and the entities of each county: shared by assets, checks and city assets."""

import dagster as dg

from base import settings
from pipelines.connectors.registry import connector_for
from seeds.registry import County

#: The Dagster pool of every step that opens the live warehouse (limit 1 in dagster.yaml).
POOL = "duckdb_warehouse"

#: The same steps also carry this op tag, which the hub's executor limits to one at a time
#: within a run. The pool still guards across runs; the tag spares steps of one run from
#: polling for the pool slot with Dagster's growing back-off (up to 15 s between tries).
WAREHOUSE_TAG = {"hub/warehouse": "duckdb"}

#: Every landing step carries this op tag; the hub's executor runs at most
#: :data:`LANDINGS_AT_ONCE` of them at once (counties fetched in parallel), so the process slots
#: left over are the merges' (bench/history.md, "The merge chain's gaps").
LANDING_TAG = {"hub/step": "landing"}
LANDINGS_AT_ONCE = 4


def merge_pool(county: County) -> str:
    """The pool of a county's merge step. DuckDB file: :data:`POOL` (one writer). DuckLake:
    the county's own pool ``lake_merge_<slug>`` (limit 1 each by dagster.yaml's
    ``default_limit``), so the seven counties merge at the same time and one county never twice
    at once; the lake's locks order their write transactions (warehouse/lake/locks.py)."""
    return f"lake_merge_{county.slug}" if settings.is_lake() else POOL


def merge_tags(county: County) -> dict[str, str]:
    """The executor tag of a county's merge: on DuckLake one value per county, so the tag limit
    (one at a time per value) no longer serialises the merges of one run."""
    return {"hub/warehouse": f"lake:{county.slug}"} if settings.is_lake() else WAREHOUSE_TAG


def entities_of(county: County) -> tuple[str, ...]:
    """The entities the county's platform delivers (its connector's ``entities``)."""
    return connector_for(county).entities


def landing_key(county: County) -> dg.AssetKey:
    return dg.AssetKey([county.slug, "landing"])


def entity_key(county: County, entity: str) -> dg.AssetKey:
    return dg.AssetKey([county.slug, entity])
