"""A Dagster run killed while it holds the warehouse pool (issue 11, point 2): the next run is
told what is going on and proceeds, instead of waiting forever."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from base import paths
from pipelines.cli import _dagster_home
from pipelines.defs.keys import POOL
from seeds.registry import county
from tests.faults.conftest import hub, sync_in_process, wait_for
from warehouse import lock as warehouse_lock

pytestmark = pytest.mark.faults
LUONAN = county("luonan")


def test_dagster_yaml_monitors_runs_and_frees_slots_of_ended_runs():
    config = yaml.safe_load((paths.REPO / "dagster.yaml").read_text())
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["free_slots_after_run_end_seconds"] <= 120


def test_a_run_killed_holding_the_pool_does_not_block_the_next_run(world, hub_home, tmp_path):
    sync_in_process(LUONAN, "full")
    instance = dg.DagsterInstance.from_config(str(_dagster_home()))  # as `hub demo` sets it up
    env = {"HUB_POOL_WAIT_WARN": "1", "HUB_POOL_WATCH_INTERVAL": "1"}
    # Hold the warehouse lock so the first run's marts step, once it has the pool slot,
    # stays inside it (waiting for the lock) until we kill the run.
    blocker = warehouse_lock.hold(paths.live_db(), purpose="test blocker", timeout=5)
    blocker.__enter__()
    try:
        first = hub(tmp_path, "first", "dagster-job", "sync_city_job", env=env)
        claimed = lambda: instance.event_log_storage.get_concurrency_info(POOL).claimed_slots  # noqa: E731
        wait_for(lambda: claimed(), 90, "the first run never took the pool slot", first)
        (dead_run,) = {s.run_id for s in claimed()}

        second = hub(tmp_path, "second", "dagster-job", "sync_city_job", env=env)
        said = "has waited"
        wait_for(lambda: said in second.output(), 60, "the second run never said it waits", second)
        first.kill9()  # the run's process and its step processes, as a crash would
    finally:
        blocker.__exit__(None, None, None)

    assert second.finish(timeout=120) == 0, second.output()
    out = second.output()
    assert f"for the {POOL} pool" in out, out
    assert f"Run {dead_run}" in out and "marked failed" in out, out
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots == []
    assert Path(paths.snapshot_db()).exists()


def test_the_daemon_sensor_frees_the_slot_of_a_killed_run(world, hub_home, tmp_path):
    """While `make ui` runs, the sensor `free_dead_runs` (every minute) does what `hub demo`
    does before it starts."""
    from pipelines.run_health import free_dead_runs

    sync_in_process(LUONAN, "full")
    instance = dg.DagsterInstance.from_config(str(_dagster_home()))
    blocker = warehouse_lock.hold(paths.live_db(), purpose="test blocker", timeout=5)
    blocker.__enter__()
    try:
        first = hub(tmp_path, "first", "dagster-job", "sync_city_job")
        claimed = lambda: instance.event_log_storage.get_concurrency_info(POOL).claimed_slots  # noqa: E731
        wait_for(lambda: claimed(), 90, "the run never took the pool slot", first)
        (dead_run,) = {s.run_id for s in claimed()}
        first.kill9()
    finally:
        blocker.__exit__(None, None, None)
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.STARTED  # the bug

    skipped = free_dead_runs(dg.build_sensor_context(instance=instance))
    assert dead_run in skipped.skip_message and "marked failed" in skipped.skip_message
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert claimed() == []
