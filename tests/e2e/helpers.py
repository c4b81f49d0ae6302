"""Helpers for end-to-end tests: run real Dagster materializations and read the warehouse."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg
import duckdb
import polars as pl
import requests

from pipelines import paths
from pipelines.registry import County
from schemas.columns import KEYS


def sync_county(county: County, mode: str = "incremental", instance=None, raise_on_error=True):
    """Materialize one county's group (landing + merge) through Dagster, in process."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def(f"sync_{county.slug}")
    run_config = {"ops": {f"{county.slug}__landing": {"config": {"mode": mode}}}}
    return job.execute_in_process(
        run_config=run_config,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def sync_city(instance=None):
    from pipelines.definitions import defs

    return defs.resolve_job_def("sync_city").execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral()
    )


@contextmanager
def live(read_only: bool = True):
    con = duckdb.connect(str(paths.live_db()), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def source_key_expr(entity: str) -> str:
    cols = KEYS[entity]
    return cols[0] if len(cols) == 1 else " || ':' || ".join(cols)


def warehouse_keys(con, county: County, entity: str, live_only: bool = True) -> set[str]:
    where = "AND deleted_at IS NULL" if live_only else ""
    rows = con.execute(
        f"SELECT {source_key_expr(entity)} FROM core.{entity} WHERE county_code = ? {where}",
        [county.code],
    ).fetchall()
    return {r[0] for r in rows}


def truth(simulator, county: County) -> pl.DataFrame:
    url = simulator.url.rstrip("/") + f"/_sim/truth?county={county.code}"
    rows = requests.get(url, timeout=30).json()
    schema = {
        "county_code": pl.String,
        "entity": pl.String,
        "source_key": pl.String,
        "rule": pl.String,
        "level": pl.String,
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def simulator_keys(simulator, county: County, entity: str) -> set[str]:
    """Keys of the records the simulator currently serves for ``entity`` (visible and live)."""
    world = simulator.world
    with world.lock:
        df = world.records(county.code, entity)
    visible = "first_visible_at" if "first_visible_at" in df.columns else "visible_at"
    now = pl.lit(world.now).dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    df = df.filter(pl.col(visible) <= now)
    return set(df["source_key"].to_list())
