"""Done-when of the notifications: a county URL at a dead port and HUB_LUONAN_WEBHOOK at a
loopback robot → the demo's run (``sync_all_counties`` through Dagster, as ``make demo`` runs
it) delivers exactly one Chinese WeCom-format message naming 洛南县 and the cause; the
run-failure sensor seeing the same run afterwards sends nothing more."""

from __future__ import annotations

import io
import os
import socket

import dagster as dg
import pytest
from rich.console import Console

from seeds.registry import counties
from tests.receivers import RobotReceiver

pytestmark = pytest.mark.e2e


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_run_with_a_dead_county_sends_one_chinese_wecom_message(
    simulator, hub_home, fast_retries, monkeypatch
):
    from pipelines import cli, demo
    from pipelines.defs.automation import record_sync_failures

    for key in list(os.environ):
        if key.endswith(("_WEBHOOK", "_WEBHOOK_SECRET", "_EMAIL")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DAGSTER_HOME", str(hub_home / "dagster"))
    monkeypatch.setenv("HUB_LUONAN_URL", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("HUB_HTTP_RETRIES", "1")
    with RobotReceiver() as robot:
        monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robot.wecom_url)
        cli._dagster_home()
        quiet = Console(file=io.StringIO())
        run = demo.run_counties(quiet, "sync_all_counties_job", list(counties()), "full")
        run_id = run.run_id
        assert [o.county.slug for o in run.outcomes if o.status != "succeeded"] == ["luonan"]
        assert not run.interrupted

        assert robot.errors == []
        [message] = robot.messages
        assert message["kind"] == "wecom" and message["body"]["msgtype"] == "markdown"
        text = message["body"]["markdown"]["content"]
        assert "洛南县" in text and "同步失败" in text
        assert "connection failed" in text and "127.0.0.1" in text  # the cause
        assert "下一步" in text and f"/runs/{run_id}" in text

        # the daemon's run-failure sensor sees the same run: still one message
        instance = dg.DagsterInstance.get()
        failure = next(
            e for e in instance.all_logs(run_id) if e.dagster_event_type == "PIPELINE_FAILURE"
        )
        record_sync_failures(
            dg.build_run_status_sensor_context(
                sensor_name="record_sync_failures",
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(run_id),
                dagster_event=failure.dagster_event,
            ).for_run_failure()
        )
        assert len(robot.messages) == 1


def test_a_sync_whose_reject_rate_more_than_doubled_notifies_once(simulator, hub_home, monkeypatch):
    from datetime import UTC, datetime, timedelta

    import warehouse
    from pipelines import sync
    from seeds.registry import county

    luonan = county("luonan")
    with RobotReceiver() as robot:
        monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robot.wecom_url)
        first = sync.merge(luonan, sync.land(luonan, "full"))
        rejected = sum(c.get("rejected", 0) for c in first.counts.values())
        assert rejected >= 10 and robot.messages == []  # no history yet: nothing to compare
        with warehouse.connect() as con:  # a clean week before: 0.1 % rejected
            con.execute(
                "INSERT INTO ops.sync_run BY NAME SELECT '20000101T000000.000000Z-0' AS sync_run_id, "
                "$county AS county_code, 'person' AS entity, $at AS started_at, "
                "$at AS finished_at, 'succeeded' AS status, 100 AS rejected, 99900 AS accepted",
                {"county": luonan.code, "at": datetime.now(UTC) - timedelta(days=2)},
            )
        second = sync.merge(luonan, sync.land(luonan, "full"))
    [text] = robot.texts()
    assert "洛南县 拒收率较近7天翻倍" in text and second.sync_id in text
