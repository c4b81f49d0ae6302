"""Seeding ``core.region`` from the NBS division list in ``seeds/divisions`` (when it changes).

The list is reference data (:mod:`seeds.divisions`); writing it into the warehouse is the
warehouse's job, so it lives here, called from :func:`warehouse.connection.connect`.
"""

from __future__ import annotations

import polars as pl

from seeds import divisions
from warehouse.batch import load_frame
from warehouse.entities import merge_entities
from warehouse.keys import KeyScope
from warehouse.statements import run
from warehouse.transaction import transaction

SEED_SQL = "ops/region_seed.sql"

SEED_RUN = "seed:divisions"


def seed_regions(con, hash_fields: str | None = None) -> int:
    """Insert every known division that ``core.region`` lacks (never overwrites what a
    platform sent). Runs when the list changed since the last seeding; returns rows added.
    ``hash_fields``: core.region's row_hash fields (``warehouse.entities``); by default read
    from the catalogue, only when there is something to seed (every read-write open checks)."""
    digest = divisions.checksum()
    done = run(con, SEED_SQL, "seeded", {"digest": digest}).fetchone()[0]
    if done:
        return 0
    if hash_fields is None:
        hash_fields = merge_entities(con)["region"].identifiers()["hash_fields"]
    rows = divisions.known().with_columns(
        pl.lit(None, pl.Boolean).alias("is_poor_village"),
        pl.lit(None, pl.Int32).alias("poor_village_exit_year"),
    )
    load_frame(con, "_divisions", rows)  # no pyarrow in a step process (warehouse.batch)
    try:
        # the divisions and their seed record: small tables, checked whole (warehouse.keys)
        with transaction(con, KeyScope({"core.region": None, "ops.seed": None})):
            params = {"seed_run": SEED_RUN, "digest": digest}
            ids = {"divisions": "_divisions", "hash_fields": hash_fields}
            added = run(con, SEED_SQL, "insert_missing", params, **ids).fetchone()[0]
            run(con, SEED_SQL, "record_seed", {**params, "added": added})
    finally:
        con.execute("DROP TABLE IF EXISTS temp._divisions")
    return int(added)
