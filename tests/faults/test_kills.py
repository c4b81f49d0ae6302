"""kill -9 at each phase of a sync: the next sync leaves the warehouse equal to a clean run's,
and the leftovers of the killed process are removed."""

from __future__ import annotations

import duckdb
import pytest

from base import paths
from seeds.registry import county
from tests.e2e.helpers import live_households
from tests.faults.conftest import changed, county_content, home, hub, run_hub, sync_in_process
from warehouse.connection import wal_path

pytestmark = pytest.mark.faults
LUONAN = county("luonan")


@pytest.mark.parametrize("phase", ["landing", "merge", "checkpoint", "publish"])
def test_kill_9_then_next_sync_equals_a_clean_run(world, hub_home, tmp_path, phase):
    clean = tmp_path / "clean"
    sync_in_process(LUONAN, "full")  # the fault is in the next sync, run as a real `hub sync`
    with home(clean):
        sync_in_process(LUONAN, "full")
    changed(world)

    killed = hub(tmp_path, "killed", "sync", "luonan", pause_at=phase)
    killed.wait_ready()
    killed.kill9()
    leftovers = {
        "landing": lambda: list((hub_home / "landing" / "luonan").glob("*/*.part")),
        "merge": lambda: [],
        # committed into the WAL, not checkpointed: the next open replays it
        "checkpoint": lambda: [
            w for w in [wal_path(paths.live_db())] if w.exists() and w.stat().st_size
        ],
        "publish": lambda: [
            f
            for d in {paths.snapshot_db().parent, paths.pii_snapshot_db().parent}
            for f in d.glob(".*.tmp*")
        ],
    }[phase]
    if phase != "merge":
        assert leftovers(), f"the kill during {phase} left nothing behind to clean up"

    run_hub(tmp_path, "next", "sync", "luonan")
    with home(clean):
        sync_in_process(LUONAN)

    assert county_content(LUONAN, hub_home) == county_content(LUONAN, clean)
    assert leftovers() == []
    # the snapshot published by the next sync is whole and current
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as snap:
        published = live_households(snap, LUONAN.code)
    live = county_content(LUONAN, hub_home)["core.household"]
    assert published == sum(1 for _key, _hash, alive in live if alive)
