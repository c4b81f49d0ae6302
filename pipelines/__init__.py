"""Dagster code of the Shangluo poverty data hub."""

import os

# polars allocates through its own jemalloc, which by default keeps freed pages for ~10 s: the
# merge step's validation then still holds its peak while DuckDB works, ~35 MB of the step's
# peak RSS (bench/profiles/merge.md). Freed pages go back at once instead. Read when polars is
# first imported, so it is set here, before any module of the hub imports polars; a value
# already in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
