"""What the DuckLake backend adds to the warehouse: the key check that stands in for PRIMARY
KEY, and a transaction retried whole when DuckLake refuses its commit."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import warehouse
from warehouse import keys
from warehouse.lake import retry

pytestmark = pytest.mark.lake


@pytest.fixture
def lake(lake_dsn, hub_home, monkeypatch):
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", lake_dsn)
    with warehouse.connect() as con:
        yield con


def test_the_lake_has_the_warehouse_without_keys_and_the_check_keeps_them(lake):
    tables = {
        f"{s}.{t}"
        for s, t in lake.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    assert set(keys.primary_keys()) <= tables
    indexed_keys = lake.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchone()[0]
    assert indexed_keys == 0
    row = "('611021', 'household', '2016-07-01', now(), 'r1')"
    duplicate = pytest.raises(keys.DuplicateKey, match=r"ops\.watermark .*county_code, name")
    with duplicate, warehouse.transaction(lake):
        lake.execute(f"INSERT INTO ops.watermark VALUES {row}, {row}")
    assert lake.execute("SELECT count(*) FROM ops.watermark").fetchone()[0] == 0
    with warehouse.transaction(lake):  # one of them is fine
        lake.execute(f"INSERT INTO ops.watermark VALUES {row}")
    assert lake.execute("SELECT count(*) FROM ops.watermark").fetchone()[0] == 1


def _conflicting_write(other) -> None:
    """Another writer (outside the hub's lock) commits a change to ops.watermark."""
    other.execute("UPDATE ops.watermark SET value = value || '+'")


def test_a_commit_conflict_runs_the_transaction_again(lake, monkeypatch, caplog):
    lake.execute("INSERT INTO ops.watermark VALUES ('611021', 'household', 'v', now(), 'r1')")
    attempts = []
    with warehouse.connect() as other:

        def work():
            lake.execute("BEGIN")
            try:
                lake.execute("UPDATE ops.watermark SET sync_run_id = 'r2'")
                if not attempts:
                    _conflicting_write(other)  # commits first: this COMMIT will conflict
                attempts.append(1)
                lake.execute("COMMIT")
            except BaseException:
                warehouse.rollback(lake)
                raise

        retry.retry_conflicts(work, "test write")
    assert len(attempts) == 2
    assert "DuckLake commit conflict (attempt 1 of 6)" in caplog.text
    assert lake.execute("SELECT value, sync_run_id FROM ops.watermark").fetchall() == [("v+", "r2")]


def test_conflicts_on_every_attempt_end_in_a_clear_error(lake, monkeypatch):
    monkeypatch.setenv("HUB_LAKE_COMMIT_RETRIES", "1")
    lake.execute("INSERT INTO ops.watermark VALUES ('611021', 'household', 'v', now(), 'r1')")
    with warehouse.connect() as other:

        def work():
            lake.execute("BEGIN")
            try:
                lake.execute("UPDATE ops.watermark SET sync_run_id = 'r2'")
                _conflicting_write(other)
                lake.execute("COMMIT")
            except BaseException:
                warehouse.rollback(lake)
                raise

        with pytest.raises(retry.CommitConflicts, match="refused the commit 2 times"):
            retry.retry_conflicts(work, "test write")
    assert lake.execute("SELECT sync_run_id FROM ops.watermark").fetchall() == [("r1",)]


def test_the_lake_spills_under_hub_home_not_the_working_directory(lake, hub_home, tmp_path):
    """DuckDB's default temp directory for an in-memory instance is ``.tmp`` in the working
    directory: a merge past its memory limit would leave warehouse rows in the user's folder."""
    spill = Path(lake.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.parent == hub_home / "tmp" / "duckdb"
    assert stat.S_IMODE(spill.parent.stat().st_mode) == 0o700
    limit = lake.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    lake.execute("SET memory_limit = '16MB'")
    try:  # a sort ten times the limit: it spills, and only there
        lake.execute(
            "CREATE TEMP TABLE big AS SELECT md5(i::VARCHAR) AS h FROM range(2000000) r(i)"
        )
        spilled = lake.execute("SELECT count(*) FROM duckdb_temporary_files()").fetchone()[0]
        assert spilled > 0 and spill.is_dir()
        assert all(
            Path(p).parent == spill
            for (p,) in lake.execute("SELECT path FROM duckdb_temporary_files()").fetchall()
        )
    finally:
        lake.execute("DROP TABLE IF EXISTS big")
        lake.execute(f"SET memory_limit = '{limit}'")


def test_lake_writes_get_the_lake_memory_default(lake, tmp_path, monkeypatch):
    """DuckLake's writes into wide tables need more memory than the file's 128 MB: the lake demo's
    marts ran out of it at scale 1.0. The lake default applies to lake connections only."""
    import duckdb

    from warehouse import staged_rows
    from warehouse.duckdb_bounds import CITY, MERGE, bound
    from warehouse.lake.catalog import WRITE_MEMORY_LIMIT

    monkeypatch.delenv("HUB_CITY_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("HUB_MERGE_MEMORY_LIMIT", raising=False)

    def limit(con) -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    file = duckdb.connect(str(tmp_path / "file.duckdb"))
    before = limit(lake)
    try:
        for apply, file_limit in (
            (lambda con: bound(con, CITY), CITY.memory_limit),
            (staged_rows.limit_memory, MERGE.memory_limit),
        ):
            apply(lake)
            apply(file)
            assert limit(lake) == limit(duckdb.connect(config={"memory_limit": WRITE_MEMORY_LIMIT}))
            assert limit(file) == limit(duckdb.connect(config={"memory_limit": file_limit}))
    finally:
        file.close()
        lake.execute(f"SET memory_limit = '{before}'")
        lake.execute("SET threads = 2")
