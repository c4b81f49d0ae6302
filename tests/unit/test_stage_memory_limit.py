"""A merge transaction run below 96 MB (an operator's ``HUB_MERGE_WRITE_MEMORY_LIMIT``) still runs
its stage statements (which read every column of the staged Parquet files) at
``WIDE_STATEMENT_LIMIT``'s 96 MB: at 80 MB ``stage person`` of 洛南's first load at scale 10 ran
out (bench/profiles/merge.md, "The checkpoint after the transaction"). A real landing from the
simulator on loopback, merged by the real merge; no timing."""

from __future__ import annotations

import duckdb

from pipelines import sync
from seeds.registry import county
from tests.conftest import serving
from warehouse import batch as batch_module
from warehouse.duckdb_bounds import WIDE_STATEMENT_LIMIT, at_least, merge_write_limit, size_bytes


def _limit(con: duckdb.DuckDBPyConnection) -> int:
    return size_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])


def test_a_transaction_at_80mb_runs_its_stage_statements_at_96mb(hub_home, monkeypatch):
    monkeypatch.delenv("HUB_MERGE_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("HUB_MERGE_WRITE_MEMORY_LIMIT", "80MB")
    with serving(monkeypatch):
        landed = sync.land(county("luonan"), "full")

    limits: dict[str, set[int]] = {}
    run = batch_module.run_statement

    def watched(con, file, name, params=None, **identifiers):
        if file.startswith(("10_", "20_", "30_", "40_", "50_", "60_", "70_")):
            limits.setdefault(f"{file}:{name}", set()).add(_limit(con))
        return run(con, file, name, params, **identifiers)

    monkeypatch.setattr(batch_module, "run_statement", watched)
    sync.merge(county("luonan"), landed)

    assert limits["10_stage.sql:stage"] == {_mib(WIDE_STATEMENT_LIMIT)}
    transaction = [s for name, s in limits.items() if name.startswith(("30_", "40_", "60_"))]
    assert (
        set().union(*transaction) == {_mib("80MB")} == {_mib(merge_write_limit(duckdb.connect()))}
    )


def _mib(limit: str) -> int:
    """A limit as DuckDB holds it (``80MB`` is shown and kept as 76.2 MiB)."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    return _limit(con)


def test_at_least_raises_the_usual_limit_only_and_restores_it():
    con = duckdb.connect()
    con.execute("SET memory_limit = '80MB'")
    for _ in range(3):  # back to exactly 80 MB each time, not to its rounded display
        with at_least(con, "96MB", "80MB"):
            assert _limit(con) == _mib("96MB")
        assert _limit(con) == _mib("80MB")
    con.execute("SET memory_limit = '1GB'")  # a retry's limit
    with at_least(con, "96MB", "80MB"):
        assert _limit(con) == _mib("1GB")
    con.execute("SET memory_limit = '512MB'")  # an operator's (the lake's) larger limit
    with at_least(con, "96MB", "512MB"):
        assert _limit(con) == _mib("512MB")
