"""Automation (pipelines/defs/automation.py): the workbook sensors launch a sync exactly when a
new export is in the index, the run-failure sensor gets every failure into ops.sync_run without
ever opening the warehouse itself, and the schedules are on, at their times."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import requests

from seeds.registry import counties, county
from tests.e2e.helpers import failure_messages, live, run_failure_sensor, sync_city, sync_county

pytestmark = pytest.mark.e2e
LUONAN, ZHASHUI = county("luonan"), county("zhashui")


def _defs():
    from pipelines.definitions import defs

    return defs


def _tick(sensor, instance):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance))


def _index(simulator, c) -> list[str]:
    creds = simulator.credentials(c.slug)
    response = requests.get(
        f"{simulator.base_url(c.slug)}/exports/index.json",
        auth=(creds["key"], creds["secret"]),
        timeout=30,
    )
    response.raise_for_status()
    return [f["name"] for f in response.json()["files"]]


def test_workbook_sensor_requests_a_run_only_for_a_new_export(simulator, hub_home):
    instance = dg.DagsterInstance.ephemeral()
    sensor = _defs().resolve_sensor_def("zhashui_new_export")
    (first,) = _index(simulator, ZHASHUI)

    # Nothing synced yet: the file in the index is new.
    tick = _tick(sensor, instance)
    assert [r.run_key for r in tick.run_requests] == [f"zhashui:{first}"]

    assert sync_county(ZHASHUI, "incremental", instance).success
    with live() as con:
        committed = con.execute(
            "SELECT value FROM ops.watermark WHERE county_code = ? AND name = 'file'",
            [ZHASHUI.code],
        ).fetchone()
    assert committed == (first,)
    tick = _tick(sensor, instance)
    assert tick.run_requests == [] and first in tick.skip_message

    # The clerk uploads a new export: one run for it, whatever the number of ticks.
    made = requests.post(f"{simulator.url}/_sim/export?county={ZHASHUI.code}", timeout=30)
    made.raise_for_status()
    (export,) = made.json()["exports"]
    for _ in range(2):
        (request,) = _tick(sensor, instance).run_requests
        assert request.run_key == f"zhashui:{export['name']}"
        assert request.tags["county"] == "zhashui" and request.tags["export"] == export["name"]
    assert sensor.job_name == "sync_zhashui"


def test_run_failure_is_queued_then_recorded_by_the_next_warehouse_step(
    simulator, hub_home, fast_retries
):
    instance = dg.DagsterInstance.ephemeral()
    simulator.arm_fault(LUONAN.code, "html200", count=1000)
    result = sync_county(LUONAN, "full", instance, raise_on_error=False)
    assert not result.success
    error = failure_messages(result)["luonan__landing"]

    run_failure_sensor(instance, result)

    # The sensor only queued it: the warehouse is single-writer and sensors never open it.
    queue = hub_home / "state" / "failures.jsonl"
    (entry,) = [json.loads(line) for line in queue.read_text("utf-8").splitlines()]
    assert entry["run_id"] == result.run_id and entry["county"] == "luonan"
    assert entry["error"] == error  # the hub's own message, not Dagster's "Error occurred …"
    assert not hub_home.joinpath("warehouse", "hub.duckdb").exists()

    # The next step that opens the warehouse (here the marts) records it.
    assert sync_city(instance).success
    assert not queue.exists()
    with live() as con:
        rows = con.execute(
            "SELECT county_code, entity, status, error FROM ops.sync_run WHERE sync_run_id = ?",
            [result.run_id],
        ).fetchall()
        last_failure = con.execute(
            "SELECT last_failure_error FROM mart.sync_status WHERE county_code = ?",
            [LUONAN.code],
        ).fetchone()[0]
    assert rows == [(LUONAN.code, "*", "failed", error)]
    assert "洛南县" in error and "HTML page instead of JSON" in error
    creds = simulator.credentials(LUONAN.slug)
    assert creds["secret"] not in error and creds["key"] not in error
    assert last_failure == error


def test_schedules_and_sensors_are_on_at_their_documented_times():
    defs = _defs()
    api = [c for c in counties() if c.kind in ("bigdata", "battle")]
    expected = {
        # name: (cron in Beijing time, job, mode of every county it syncs)
        "hourly_incremental_api_counties": ("5 * * * *", "sync_api_counties", "incremental"),
        "nightly_full_all_counties": ("30 2 * * *", "sync_all_counties", "full"),
        "city_marts_after_syncs": ("45 * * * *", "sync_city", None),
        "weekly_quality_letters_monday": ("0 8 * * 1", "weekly_quality_letters", None),
    }
    assert {s.name for s in defs.schedules} == set(expected)
    for name, (cron, job, mode) in expected.items():
        schedule = defs.resolve_schedule_def(name)
        assert schedule.cron_schedule == cron, name
        assert schedule.execution_timezone == "Asia/Shanghai", name
        assert schedule.job_name == job, name
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, name
        (request,) = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
        ops = request.run_config.get("ops", {})
        if mode is None:
            assert ops == {}
            continue  # (the weekly letters' op config defaults to last week, sent)
        synced = api if mode == "incremental" else list(counties())
        assert ops == {f"{c.slug}__landing": {"config": {"mode": mode}} for c in synced}, name

    sensors = {s.name: s for s in defs.sensors}
    workbook = {f"{c.slug}_new_export" for c in counties() if c.kind == "workbook"}
    assert set(sensors) == {
        "record_sync_failures",
        "city_after_county_syncs",
        "notify_stale_counties",
        "free_dead_runs",
        *workbook,
    }
    for sensor in sensors.values():
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
