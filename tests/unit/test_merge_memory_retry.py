"""A merge that runs out of DuckDB memory is tried once more with a larger limit
(warehouse.staged_rows.raise_memory_limit; the hostile test of a name of millions of
characters goes through it end to end)."""

from __future__ import annotations

import duckdb

from warehouse.staged_rows import RETRY_MEMORY_LIMIT, raise_memory_limit


def test_the_limit_is_raised_once():
    con = duckdb.connect()
    con.execute("SET memory_limit = '128MB'")
    assert raise_memory_limit(con)
    raised = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert raised != "122.0 MiB"
    assert not raise_memory_limit(con)  # already at RETRY_MEMORY_LIMIT: the error stands
    assert RETRY_MEMORY_LIMIT == "1GB"
