"""A merge that runs out of DuckDB memory is tried once more with a larger limit
(warehouse.duckdb_bounds.raise_memory_limit; the hostile test of a name of millions of
characters goes through it end to end)."""

from __future__ import annotations

import duckdb

from warehouse.duckdb_bounds import MERGE, MERGE_WRITE, raise_memory_limit


def test_the_limit_is_raised_once():
    con = duckdb.connect()
    con.execute("SET memory_limit = '128MB'")
    assert raise_memory_limit(con, MERGE)
    raised = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert raised != "122.0 MiB"
    assert not raise_memory_limit(con, MERGE)  # already at the retry limit: the error stands
    assert MERGE.retry_memory_limit == "1GB"


def test_a_bound_without_a_retry_limit_keeps_its_error():
    con = duckdb.connect()
    con.execute("SET memory_limit = '128MB'")
    assert not raise_memory_limit(con, MERGE_WRITE)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "122.0 MiB"
