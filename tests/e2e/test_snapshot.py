"""The analyst snapshot is never blocked by a sync, and a reader that keeps it open through one
keeps a consistent view."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from base import paths
from seeds.registry import county
from tests.e2e.helpers import sync_city, sync_county

pytestmark = pytest.mark.e2e
LUONAN = county("luonan")
COUNT = "SELECT count(*) FROM core.household WHERE county_code = '611021'"


def _count_in_new_process() -> int:
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "sql", "--csv", COUNT],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.splitlines()[1])


def test_reader_keeps_its_snapshot_open_through_a_sync(simulator, hub_home):
    assert sync_county(LUONAN).success
    assert sync_city().success
    reader = duckdb.connect(str(paths.snapshot_db()), read_only=True)
    try:
        before = reader.execute(COUNT).fetchone()[0]
        simulator.advance(days=60)  # new registrations and 清退 deletions
        assert sync_county(LUONAN, mode="full").success
        assert sync_city().success  # publishes a new snapshot under the open reader
        assert reader.execute(COUNT).fetchone()[0] == before  # same file, same answer
        assert reader.execute("SELECT count(*) FROM mart.county_summary").fetchone()[0] > 0
    finally:
        reader.close()
    with duckdb.connect(str(paths.live_db()), read_only=True) as live:
        now = live.execute(COUNT).fetchone()[0]
    assert now != before, "the simulated two months changed nothing"
    assert _count_in_new_process() == now  # a new reader sees the new snapshot


def test_reconciliation_holds_after_an_incremental_sync(simulator, backend):
    """Records quarantined by the first sync are not resent by an incremental one; the
    reconciliation still accounts for them."""
    import warehouse
    from seeds.registry import county as find

    synced = [find("luonan"), find("shangnan")]
    held = """
        SELECT figure_id, warehouse_value - accounted_difference FROM mart.reconciliation
        WHERE figure_id SIMILAR TO '(households|persons)_(total|general|dibao|tekun)'
        ORDER BY figure_id"""

    def source_holds(mode: str) -> list:
        for c in synced:
            assert sync_county(c, mode=mode).success
        with warehouse.connect() as con:
            warehouse.rebuild_marts(con)
            return con.execute(held).fetchall()

    first = source_holds("full")
    assert sum(v for _, v in first) > 0
    assert source_holds("incremental") == first
