"""Two writers (issue 11, point 5): the second waits for the warehouse lock, saying whom it waits
for, then proceeds; one that gives up is recorded in ops.sync_run."""

from __future__ import annotations

import re

import duckdb
import pytest

import warehouse
from base import paths
from seeds.registry import county
from tests.e2e.helpers import live_households
from tests.faults.conftest import hub, run_hub, wait_for

pytestmark = pytest.mark.faults
LUONAN, SHANGNAN = county("luonan"), county("shangnan")


def _live_households(code: str) -> int:
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        return live_households(con, code)


def test_second_writer_waits_naming_the_holder_then_proceeds(world, hub_home, tmp_path):
    run_hub(tmp_path, "init", "sync", "shangnan", "--mode", "full")
    first = hub(tmp_path, "first", "sync", "luonan", "--mode", "full", pause_at="merge", go=True)
    first.wait_ready()  # inside its merge transaction, holding the warehouse lock
    second = hub(tmp_path, "second", "sync", "shangnan")

    waiting = re.compile(rf"waiting for the warehouse .* held by luonan merge .*PID {first.pid}")
    wait_for(
        lambda: waiting.search(second.output()),
        60,
        "second writer never said whom it waits for",
        second,
    )
    assert second.popen.poll() is None  # still waiting, not failed
    first.release()

    assert first.finish() == 0, first.output()
    assert second.finish() == 0, second.output()
    assert "got the warehouse lock" in second.output()
    assert _live_households(LUONAN.code) > 0 and _live_households(SHANGNAN.code) > 0


def test_a_writer_that_gives_up_is_recorded_in_sync_run(world, hub_home, tmp_path):
    run_hub(tmp_path, "init", "sync", "shangnan", "--mode", "full")
    first = hub(tmp_path, "first", "sync", "luonan", "--mode", "full", pause_at="merge", go=True)
    first.wait_ready()
    second = hub(tmp_path, "second", "sync", "shangnan", env={"HUB_WAREHOUSE_LOCK_TIMEOUT": "1"})
    assert second.finish() != 0
    out = second.output()
    assert "is busy" in out and "luonan merge" in out and f"PID {first.pid}" in out, out
    assert "Could not set lock" not in out
    first.release()
    assert first.finish() == 0, first.output()

    with warehouse.connect() as con:  # the next writer records the queued failure
        rows = con.execute(
            "SELECT status, error FROM ops.sync_run WHERE county_code = ? AND entity = '*'",
            [SHANGNAN.code],
        ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "failed", rows
    assert "busy" in rows[0][1] and "luonan merge" in rows[0][1], rows


def test_a_writer_waits_for_the_snapshot_copy_which_stays_readable(world, hub_home, tmp_path):
    """The snapshot copy keeps writers out for its duration (a copy taken under a writer was
    unreadable 1 time in 111): the writer waits, then both finish and the snapshot opens."""
    run_hub(tmp_path, "init", "sync", "shangnan", "--mode", "full")
    publish = hub(tmp_path, "publish", "sync", "shangnan", pause_at="publish", go=True)
    publish.wait_ready()  # half-way through the byte copy, holding the lock shared
    writer = hub(tmp_path, "writer", "sync", "luonan", "--mode", "full")
    waiting = re.compile(
        rf"waiting for the warehouse .* held by consistent copy .*PID {publish.pid}"
    )
    wait_for(
        lambda: waiting.search(writer.output()), 60, "the writer did not wait for the copy", writer
    )
    publish.release()
    assert publish.finish() == 0, publish.output()
    assert writer.finish() == 0, writer.output()
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as snap:
        counties = {
            c for (c,) in snap.execute("SELECT DISTINCT county_code FROM core.household").fetchall()
        }
    assert counties == {LUONAN.code, SHANGNAN.code}
