"""The bound on the city step's DuckDB connections (marts, the analyst and PII snapshots)."""

from __future__ import annotations

import os

import duckdb

from warehouse.lake.catalog import WRITE_MEMORY_LIMIT, is_lake

#: DuckDB's memory for the city step's connections (``HUB_CITY_MEMORY_LIMIT``, DuckDB units):
#: beyond it, sorts and joins spill to the temp directory beside the file. A step process starts
#: at ~220 MB (the preloaded code location); 128 MB of DuckDB keeps it under 400 MB.
MEMORY_LIMIT = "128MB"
#: DuckDB threads of those connections (``HUB_CITY_THREADS``): one thread used 30-50 % fewer
#: CPU seconds and less memory than two for the marts and the snapshots on this 2-core machine
#: (bench/README.md, "The city step").
THREADS = 1


def bound_memory(con: duckdb.DuckDBPyConnection) -> None:
    """Bound DuckDB's memory and threads on a city-step connection (marts, snapshots)."""
    default = WRITE_MEMORY_LIMIT if is_lake(con) else MEMORY_LIMIT
    limit = os.environ.get("HUB_CITY_MEMORY_LIMIT", "").strip() or default
    threads = int(os.environ.get("HUB_CITY_THREADS", "").strip() or THREADS)
    con.execute("SET memory_limit = '" + limit.replace("'", "''") + "'")
    con.execute(f"SET threads = {threads}")
