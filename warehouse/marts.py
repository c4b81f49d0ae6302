"""The marts: ``warehouse/sql/marts/NN_*.sql``, rebuilt in order in one transaction.

They run within the city step's DuckDB bound (``CITY``, warehouse/duckdb_bounds.py) at any
scale, so a mart statement holds nothing that cannot spill: distinct rows are counted, never
``count(DISTINCT …)`` under ``GROUPING SETS`` (one in-memory distinct table per set), and the
CSV seeds are read through ``seed_csv`` (:data:`SEED_CSV`)."""

from __future__ import annotations

import logging

import duckdb

import warehouse.mart_delta as mart_delta
from base import paths
from warehouse.duckdb_bounds import CITY, bound, retry_out_of_memory
from warehouse.keys import NO_KEYED_TABLE
from warehouse.statements import MARTS_DIR, literal, run
from warehouse.statements import q as _q
from warehouse.transaction import transaction

log = logging.getLogger(__name__)

#: The mart files read the seed CSVs (codes, the county registry, the reported figures) with
#: ``seed_csv(path)``: all columns as text, with a 1 MiB buffer, since ``read_csv``'s default
#: buffer is 30.5 MiB whatever the file's size, a third of CITY's limit (bench/history.md, "The
#: city step at 96 MB").
SEED_CSV = (
    "CREATE OR REPLACE TEMP MACRO seed_csv(path) AS TABLE "
    "SELECT * FROM read_csv(path, all_varchar = true, buffer_size = 1048576)"
)


def rebuild_marts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Run ``warehouse/sql/marts/*.sql`` in order in one transaction; returns the mart tables.

    Mart files document each table with COMMENT ON and each column once; a column left without
    a comment takes the comment of the same-named column in core, else elsewhere in mart."""
    from seeds.registry import registry_path

    con.execute(f"SET VARIABLE hub_seeds = {literal(paths.SEEDS)}")
    con.execute(f"SET VARIABLE hub_registry = {literal(registry_path())}")  # HUB_REGISTRY: counties
    con.execute(SEED_CSV)
    _set_connection_states(con)
    bound(con, CITY)  # the city step stays within a few hundred MB; DuckDB spills beyond

    def rebuild() -> list[tuple[str]]:
        with transaction(con, NO_KEYED_TABLE):  # mart tables have no keys (warehouse.keys)
            # mart.person and mart.special_groups: only the changed persons' rows rewritten
            # when the previous build's record allows (warehouse.mart_delta)
            build = mart_delta.plan(con)
            for file in sorted(MARTS_DIR.glob("[0-9][0-9]_*.sql")):
                mart_delta.run_file(con, file.read_text(encoding="utf-8"), build)
            _inherit_column_comments(con)
            mart_delta.record(con, build)
            log.info("marts: kept tables %s (%s)", build.mode, build.reason)
            return run(con, "ops/catalog.sql", "mart_tables").fetchall()

    # a mart statement that cannot spill (a distinct count) may outgrow CITY's limit at a
    # scale not measured: the rolled-back rebuild runs once more at its retry limit
    tables = retry_out_of_memory(con, CITY, rebuild)
    return [f"mart.{t}" for (t,) in tables]


def _set_connection_states(con: duckdb.DuckDBPyConnection) -> None:
    """``hub_connections``: slug -> configured / simulated / not configured, for
    mart.sync_status (the settings are the process's, not the warehouse's)."""
    from base.settings import connection_state  # the process settings, not the warehouse
    from seeds.registry import counties

    states = {c.slug: connection_state(c) for c in counties()}
    con.execute(
        "SET VARIABLE hub_connections = MAP(?::VARCHAR[], ?::VARCHAR[])",
        [list(states), list(states.values())],
    )


def _inherit_column_comments(con: duckdb.DuckDBPyConnection) -> None:
    missing = run(con, "ops/catalog.sql", "uncommented_mart_columns").fetchall()
    for table, column, comment in missing:  # catalogue metadata: a few dozen statements
        con.execute(f"COMMENT ON COLUMN mart.{_q(table)}.{_q(column)} IS {literal(comment)}")
