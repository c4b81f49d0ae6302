"""A county's rejected records as a CSV a county admin opens in Excel (UTF-8 with BOM).

The merge step writes the file of every sync it merges or refuses (named in the
materialization metadata as ``rejects_csv``); ``hub rejects <county>`` writes the latest one
again from the warehouse on demand. Columns are labelled in Chinese and English, and each rule
carries its Chinese label (``schemas/rules.py``) next to its stable English name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from base import paths
from schemas.rules import MERGE_REJECTS, RULES
from seeds.registry import County
from warehouse.batch import frame_of

#: How long `hub status` / `hub rejects` wait for a sync to release the live file before they
#: read the published snapshot instead.
READ_WAIT_S = 3.0

#: ops.reject column -> CSV header (Chinese first; the English name stays for tools).
HEADERS = {
    "entity": "实体 entity",
    "source_key": "来源主键 source_key",
    "rule": "规则 rule",
    "rule_zh": "规则说明 rule_zh",
    "column_name": "字段 column_name",
    "value": "值 value",
    "message": "说明 message",
    "raw_ref": "原始位置 raw_ref",
}


def latest_sync(con: duckdb.DuckDBPyConnection, county: County) -> str | None:
    """The county's latest merged or refused sync (the one whose rejects county admins fix)."""
    row = con.execute(
        """
        SELECT sync_run_id FROM ops.sync_run
        WHERE county_code = ? AND status IN ('succeeded', 'refused') AND entity <> '*'
        ORDER BY finished_at DESC, sync_run_id DESC LIMIT 1
        """,
        [county.code],
    ).fetchone()
    return row[0] if row else None


def frame(con: duckdb.DuckDBPyConnection, county: County, sync_id: str) -> pl.DataFrame:
    """Every reject of one sync, one row per record and rule, with the rule's Chinese label."""
    df = frame_of(  # through the Arrow C stream: no pyarrow import in the merge step
        con.sql(
            """
            SELECT entity, source_key, rule, column_name, value, message, raw_ref
            FROM ops.reject WHERE county_code = ? AND sync_run_id = ?
            ORDER BY entity, source_key, rule
            """,
            params=[county.code, sync_id],
        )
    )
    labels = {**{n: r.label_zh for n, r in RULES.items()}, **MERGE_REJECTS}
    df = df.with_columns(
        pl.col("rule").replace_strict(labels, default=pl.col("rule")).alias("rule_zh")
    )
    return df.select(list(HEADERS)).rename(HEADERS)


def default_path(county: County, sync_id: str) -> Path:
    return paths.hub_home() / "rejects" / county.slug / f"{county.slug}-rejects-{sync_id}.csv"


def write_csv(df: pl.DataFrame, out: Path) -> Path:
    """UTF-8 with a byte-order mark, so Excel shows the Chinese text instead of mojibake.
    Owner-only: the values are the county's own records (ID numbers and names included), which
    the county admin needs to fix them."""
    from base import settings

    if out.parent.is_relative_to(paths.hub_home()):
        settings.private_dir(out.parent)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    df.write_csv(tmp, include_bom=True)
    tmp.chmod(settings.PRIVATE_FILE)
    tmp.replace(out)
    return out


def export(
    con: duckdb.DuckDBPyConnection, county: County, sync_id: str, out: Path | None = None
) -> tuple[Path, int]:
    """Write one sync's rejects of ``county``; returns the file and its number of rows."""
    df = frame(con, county, sync_id)
    return write_csv(df, out or default_path(county, sync_id)), df.height


@contextmanager
def readable() -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """The live warehouse read-only (holding its shared lock, so no sync starts writing while
    we read), or the published snapshot while a sync holds the live file."""
    from base import settings
    from warehouse import lock as warehouse_lock

    if settings.is_lake():  # DuckLake: readers see its latest committed snapshot, no lock
        import warehouse

        with warehouse.connect(read_only=True) as con:
            yield con, Path(settings.redact_dsn(settings.lake_catalog()))
        return
    live = paths.live_db()
    if live.exists():
        try:
            with warehouse_lock.hold(live, shared=True, purpose="read", timeout=READ_WAIT_S):
                con = duckdb.connect(str(live), read_only=True)
                try:
                    yield con, live
                finally:
                    con.close()
                return
        except warehouse_lock.WarehouseBusy:
            pass
    snapshot = paths.snapshot_db()
    if not snapshot.exists():
        raise FileNotFoundError(
            f"no readable warehouse at {live} or {snapshot}: run `make demo` (or a county sync) "
            "first"
        )
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        yield con, snapshot
    finally:
        con.close()


def export_sync(county: County, sync_id: str, con=None) -> str | None:
    """The merge step's copy of one sync's rejects (None when it had none). Call from a step in
    the warehouse pool: it opens the live file, or reads through ``con`` when given (the merge
    step's one connection for its rejects and checks)."""
    import warehouse

    if con is not None:
        df = frame(con, county, sync_id)
    else:
        with warehouse.connect() as own:
            df = frame(own, county, sync_id)
    if df.height == 0:
        return None
    return str(write_csv(df, default_path(county, sync_id)))
