"""Leftovers of killed landings and publishes are removed by the next one, never those of a
landing or publish that is still running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import warehouse
from pipelines import landing
from pipelines.landing import LandingWriter, Page
from seeds.registry import county

LUONAN = county("luonan")


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_part_files_of_a_running_landing_are_kept_and_of_a_dead_one_removed(tmp_path):
    running = LandingWriter(LUONAN, root=tmp_path)
    running.write(Page("household", "http://x/1", b"{}", "application/json"))
    live_part = running.dir / "00002-household.json.part"
    live_part.write_bytes(b"{")  # as if mid-write
    dead_dir = tmp_path / "luonan" / "20160101T000000.000000Z-dead00"
    dead_dir.mkdir()
    dead_part = dead_dir / "00001-household.json.part"
    dead_part.write_bytes(b"{")  # a killed landing: no .writing lock held

    assert landing.remove_leftovers(LUONAN, tmp_path) == [dead_part]
    assert live_part.exists()
    running.close()
    assert landing.remove_leftovers(LUONAN, tmp_path) == [live_part]


def test_publish_leftovers_of_dead_publishers_are_removed(tmp_path):
    target = tmp_path / "snapshot.duckdb"
    mine = tmp_path / f".snapshot.duckdb.{os.getpid()}-abc.tmp"
    dead = tmp_path / f".snapshot.duckdb.{_dead_pid()}-def.tmp"
    dead_wal = tmp_path / f"{dead.name}.wal"
    old_anonymous = tmp_path / ".snapshot.duckdb.0123abcd.tmp"
    new_anonymous = tmp_path / ".snapshot.duckdb.4567cdef.tmp"
    for f in (mine, dead, dead_wal, old_anonymous, new_anonymous):
        f.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(old_anonymous, (hour_ago, hour_ago))

    removed = warehouse.remove_publish_leftovers(target)
    assert sorted(removed) == sorted([dead, dead_wal, old_anonymous])
    assert mine.exists() and new_anonymous.exists()
