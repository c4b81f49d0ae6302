"""Dagster code of the Shangluo poverty data hub."""

import os

#: jemalloc options polars writes into ``_RJEM_MALLOC_CONF`` when it is imported (before any
#: value already there); a process that imported polars hands them on to every process it starts.
POLARS_DEFAULT_DECAY = frozenset({"dirty_decay_ms:500", "muzzy_decay_ms:1000"})
#: Freed pages go back to the system at once.
RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"


def allocator_conf(current: str | None) -> str:
    """``_RJEM_MALLOC_CONF`` for this process and its children: ``current`` with freed pages
    returned at once, unless it already chooses a decay of its own (polars' defaults are not
    a choice: they are there whenever an ancestor imported polars first, e.g. a bench driver
    or a test runner); jemalloc takes the last value of an option."""
    options = [o for o in (current or "").split(",") if o]
    decay = ("dirty_decay_ms:", "muzzy_decay_ms:")
    if any(o.startswith(decay) and o not in POLARS_DEFAULT_DECAY for o in options):
        return current or ""
    return ",".join([*options, RETURN_AT_ONCE])


# polars allocates through its own jemalloc, which by default keeps freed pages for 0.5-1 s
# (polars' own setting) and then only lazily: the merge step's validation still holds its peak
# while DuckDB works, ~60 MB of the step's peak RSS (bench/profiles/merge.md, "Issue 13, fourth
# round"). Read when polars is first imported in a process, so it is set here, before any module
# of the hub imports polars (a step process forked from the forkserver inherits it).
os.environ["_RJEM_MALLOC_CONF"] = allocator_conf(os.environ.get("_RJEM_MALLOC_CONF"))
