"""Asset keys and the entities of each county: shared by assets, checks and city assets."""

import dagster as dg

from pipelines.connectors.registry import connector_for
from seeds.registry import County

#: The Dagster pool of every step that opens the live warehouse (limit 1 in dagster.yaml).
POOL = "duckdb_warehouse"

#: The same steps also carry this op tag, which the hub's executor limits to one at a time
#: within a run. The pool still guards across runs; the tag spares steps of one run from
#: polling for the pool slot with Dagster's growing back-off (up to 15 s between tries).
WAREHOUSE_TAG = {"hub/warehouse": "duckdb"}


def entities_of(county: County) -> tuple[str, ...]:
    """The entities the county's platform delivers (its connector's ``entities``)."""
    return connector_for(county).entities


def landing_key(county: County) -> dg.AssetKey:
    return dg.AssetKey([county.slug, "landing"])


def entity_key(county: County, entity: str) -> dg.AssetKey:
    return dg.AssetKey([county.slug, entity])
