"""Seeding ``core.region`` from the NBS division list in ``seeds/divisions`` (when it changes).

The list is reference data (:mod:`seeds.divisions`); writing it into the warehouse is the
warehouse's job, so it lives here, called from :func:`warehouse.connection.connect`.
"""

from __future__ import annotations

import polars as pl

from seeds import divisions

SEED_RUN = "seed:divisions"


def seed_regions(con, hash_fields: str) -> int:
    """Insert every known division that ``core.region`` lacks (never overwrites what a
    platform sent). Runs when the list changed since the last seeding; returns rows added."""
    digest = divisions.checksum()
    done = con.execute(
        "SELECT count(*) FROM ops.seed WHERE name = 'divisions' AND checksum = ?", [digest]
    ).fetchone()[0]
    if done:
        return 0
    rows = divisions.known().with_columns(
        pl.lit(None, pl.Boolean).alias("is_poor_village"),
        pl.lit(None, pl.Int32).alias("poor_village_exit_year"),
    )
    con.register("_divisions", rows.to_arrow())
    try:
        con.execute("BEGIN")
        added = con.execute(
            f"""
            INSERT INTO core.region BY NAME
            SELECT code, level, name, parent_code, is_poor_village, poor_village_exit_year,
                   is_statistical_unit, county_code, 'seed' AS source_platform,
                   code AS source_key, now() AS first_seen_at, now() AS last_synced_at,
                   '{SEED_RUN}' AS sync_run_id,
                   md5(to_json(struct_pack({hash_fields}))) AS row_hash
            FROM _divisions d
            WHERE NOT EXISTS (SELECT 1 FROM core.region r WHERE r.code = d.code)
            """
        ).fetchone()[0]
        con.execute(
            "INSERT OR REPLACE INTO ops.seed VALUES ('divisions', ?, now(), ?)", [digest, added]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_divisions")
    return int(added)
