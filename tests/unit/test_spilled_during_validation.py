"""While validation runs, the diff's temp tables are out of DuckDB's memory (issue 13, the merge
step's peak RSS): ``warehouse.staged_rows.spilled`` on a real DuckDB file connection."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.duckdb_bounds import MERGE, bound, merge_write_limit
from warehouse.staged_rows import SPILLED_LIMIT, spilled

MIB = 1 << 20


def in_memory_tables(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(bytes in memory, bytes in temporary storage) of DuckDB's temp tables."""
    row = con.execute(
        "SELECT memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
        "WHERE tag = 'IN_MEMORY_TABLE'"
    ).fetchone()
    return row[0], row[1]


@pytest.fixture
def merge_connection(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(f"SET temp_directory = '{tmp_path / 'tmp'}'")
    bound(con, MERGE)  # the merge's limit, as staged_rows.limit_memory sets it
    yield con
    con.close()


def test_the_diff_tables_leave_memory_while_validation_runs(merge_connection, tmp_path):
    con = merge_connection
    # a diff table of ~60 MB: held in the buffer pool, below the merge's limit
    con.execute(
        "CREATE TEMP TABLE _diff_person AS SELECT range AS _row, "
        "md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS source_key FROM range(600000)"
    )
    held, _ = in_memory_tables(con)
    assert held > 40 * MIB
    with spilled(con) as temp:
        during, written = in_memory_tables(con)
        assert during <= duckdb_size(SPILLED_LIMIT)
        assert written > 0  # out to the temp directory, not dropped
        # where validation's temporary files go: DuckDB's temp directory, which it spilled to
        assert temp == tmp_path / "tmp" and temp.is_dir()
    # the merge's transaction runs at MERGE_WRITE's limit, and reads every row back
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == write_limit(con)
    assert con.execute("SELECT count(DISTINCT source_key) FROM _diff_person").fetchone()[0] == (
        600000
    )


def test_a_pool_that_cannot_shrink_keeps_its_limit(merge_connection):
    """A keyed table's index (ART, which DuckDB keeps in memory) in the pool: entering and
    leaving ``spilled`` fails nothing; the transaction's limit is set afterwards."""
    con = merge_connection
    con.execute("CREATE TABLE keyed (k VARCHAR PRIMARY KEY)")
    con.execute("INSERT INTO keyed SELECT md5(range::VARCHAR) FROM range(100000)")
    with spilled(con):
        assert con.execute("SELECT count(*) FROM keyed").fetchone()[0] == 100000
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == write_limit(con)


def write_limit(con: duckdb.DuckDBPyConnection) -> str:
    """The transaction's limit as DuckDB reports it (in MiB)."""
    other = duckdb.connect()
    other.execute(f"SET memory_limit = '{merge_write_limit(con)}'")
    return other.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def duckdb_size(text: str) -> int:
    number, unit = text[:-2], text[-2:]
    return int(number) * {"MB": 1000 * 1000, "GB": 1000 * 1000 * 1000}[unit]


def test_the_transaction_limit_follows_the_settings(merge_connection, monkeypatch):
    con = merge_connection
    monkeypatch.delenv("HUB_MERGE_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("HUB_MERGE_WRITE_MEMORY_LIMIT", raising=False)
    assert merge_write_limit(con) == "96MB"
    monkeypatch.setenv("HUB_MERGE_MEMORY_LIMIT", "1GB")  # an operator's merge limit holds
    assert merge_write_limit(con) == "1GB"
    monkeypatch.setenv("HUB_MERGE_WRITE_MEMORY_LIMIT", "200MB")
    assert merge_write_limit(con) == "200MB"
