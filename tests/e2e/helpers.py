"""Helpers for end-to-end tests: run real Dagster materializations and read the warehouse."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg
import duckdb
import polars as pl
import requests

from base import paths, settings
from schemas.columns import KEYS
from seeds.registry import County


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
    """The live warehouse: the DuckDB file, or the lake on the DuckLake backend."""
    if settings.is_lake():
        import warehouse

        with warehouse.connect(read_only=read_only) as con:
            yield con
        return
    con = duckdb.connect(str(paths.live_db()), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def live_households(con, county_code: str) -> int:
    """The county's households not soft-deleted, in whatever ``con`` reads (the warehouse, a
    snapshot, the lake)."""
    return con.execute(
        "SELECT count(*) FROM core.household WHERE county_code = ? AND deleted_at IS NULL",
        [county_code],
    ).fetchone()[0]


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


# --- failure paths ------------------------------------------------------------------------------


def failure_messages(result) -> dict[str, str]:
    """step key -> the message of the exception that failed it (the hub's own error, not
    Dagster's wrapper), for every failed step of an in-process run."""
    out = {}
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None and error.cls_name.startswith("Dagster"):
                error = error.cause
            out[event.step_key] = error.message.strip()
    return out


def core_tables(con) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'core' ORDER BY table_name"
    ).fetchall()
    return [f"core.{t}" for (t,) in rows]


def table_digest(con, table: str) -> tuple[int, str | None]:
    """Row count and MD5 of every row of ``table`` (all columns, order-independent): equal
    digests mean the table did not change at all, timestamps included."""
    return con.execute(
        f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), chr(10) ORDER BY CAST(t AS VARCHAR))) "
        f"FROM {table} AS t"
    ).fetchone()


def warehouse_digest(extra: tuple[str, ...] = ("ops.watermark",)) -> dict[str, tuple]:
    """Digest of every core table plus ``extra`` tables of the live warehouse."""
    with live() as con:
        return {t: table_digest(con, t) for t in (*core_tables(con), *extra)}


def content_digest(county: County) -> dict[str, object]:
    """What one county's data says, independent of when or by which run it was written: per
    core table the (key, row_hash, deleted) triples, the rejected (entity, key, rule) and the
    committed watermarks. Two syncs of the same source state must give equal digests."""
    out: dict[str, object] = {}
    with live() as con:
        for table in core_tables(con):
            entity = table.split(".", 1)[1]
            if entity.endswith("_history"):
                key = source_key_expr(entity.removesuffix("_history"))
                rows = con.execute(
                    f"SELECT {key}, row_hash, valid_to IS NULL FROM {table} WHERE county_code = ?",
                    [county.code],
                ).fetchall()
            else:
                rows = con.execute(
                    f"SELECT {source_key_expr(entity)}, row_hash, deleted_at IS NULL "
                    f"FROM {table} WHERE county_code = ?",
                    [county.code],
                ).fetchall()
            out[table] = sorted(rows)
        out["ops.reject"] = sorted(
            con.execute(
                "SELECT DISTINCT entity, source_key, rule FROM ops.reject WHERE county_code = ?",
                [county.code],
            ).fetchall()
        )
        out["ops.watermark"] = sorted(
            con.execute(
                "SELECT name, value FROM ops.watermark WHERE county_code = ?", [county.code]
            ).fetchall()
        )
    return out


def landing_syncs(county: County) -> set[str]:
    """The sync ids landed for ``county`` so far (one directory each)."""
    root = paths.landing_dir() / county.slug
    return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()


def run_failure_sensor(instance, result) -> None:
    """Evaluate the hub's run-failure sensor on a failed in-process run, as the daemon would."""
    from pipelines.defs.automation import record_sync_failures

    failure = next(
        e for e in instance.all_logs(result.run_id) if e.dagster_event_type == "PIPELINE_FAILURE"
    )
    record_sync_failures(
        dg.build_run_status_sensor_context(
            sensor_name="record_sync_failures",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=failure.dagster_event,
        ).for_run_failure()
    )
