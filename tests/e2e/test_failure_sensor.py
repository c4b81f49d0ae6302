"""The run-failure sensor records every failed run, whatever started it.

Runs that `hub demo` (or any script) executes in its own process belong to no code location;
the daemon evaluates the sensor inside the code location's repository. A sensor that watched
only its own location skipped exactly the runs `make demo` starts. Here the sensor is ticked as
the daemon ticks it (cursor kept between ticks, its repository named) over a real failed run.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from base import paths
from pipelines.defs.automation import record_sync_failures
from seeds.registry import county
from tests.e2e.helpers import live, sync_city, sync_county

pytestmark = pytest.mark.e2e

LUONAN = county("luonan")


def _tick(instance, cursor: str | None) -> str | None:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_name="__repository__",  # what the daemon's context names
        sensor_name=record_sync_failures.name,
    )
    data = record_sync_failures.evaluate_tick(context)
    return data.cursor


def _queued() -> list[dict]:
    queue = paths.hub_home() / "state" / "failures.jsonl"
    if not queue.exists():
        return []
    return [json.loads(line) for line in queue.read_text("utf-8").splitlines() if line]


def test_a_failed_run_started_outside_the_code_location_is_recorded(
    simulator, hub_home, fast_retries
):
    instance = dg.DagsterInstance.ephemeral()
    cursor = _tick(instance, None)  # the first tick only places the cursor

    simulator.arm_fault(LUONAN.code, "html200", count=1000)
    failed = sync_county(LUONAN, instance=instance, raise_on_error=False)
    assert not failed.success
    assert instance.get_run_by_id(failed.run_id).remote_job_origin is None  # as hub demo's

    cursor = _tick(instance, cursor)
    queued = _queued()
    assert [(q["run_id"], q["county"]) for q in queued] == [(failed.run_id, "luonan")]
    assert "HTML page instead of JSON" in queued[0]["error"]

    # A run its user interrupted (hub demo marks it canceled) is no county failure.
    again = sync_county(LUONAN, instance=instance, raise_on_error=False)
    instance.report_run_canceled(instance.get_run_by_id(again.run_id), message="Ctrl-C")
    _tick(instance, cursor)
    assert [q["run_id"] for q in _queued()] == [failed.run_id]

    simulator.clear_faults()
    assert sync_city(instance).success  # a warehouse step records the queue
    with live() as con:
        error = con.execute(
            "SELECT last_failure_error FROM mart.sync_status WHERE slug = 'luonan'"
        ).fetchone()[0]
    assert "HTML page instead of JSON" in error
