"""Notifications: each channel's documented format against loopback receivers, exactly once per
failure, repeats rate-limited, never failing a sync, no webhook secret in any log line."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest

import warehouse
from base.errors import RejectThresholdExceeded, SafetyStop, SourceError
from pipelines import notify, sync
from pipelines.notify import dingtalk
from pipelines.notify.channels import channels_for, webhook_kind
from pipelines.notify.messages import failure_notice
from seeds.registry import county
from tests.receivers import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    WECOM_KEY,
    MailReceiver,
    RobotReceiver,
)

LUONAN, SHANGNAN, ZHASHUI = county("luonan"), county("shangnan"), county("zhashui")


@pytest.fixture
def clean_channels(hub_home, monkeypatch):
    """No channel from the developer's environment; the hub home isolates the ledger."""
    import os

    for key in list(os.environ):
        if key.endswith(("_WEBHOOK", "_WEBHOOK_SECRET", "_EMAIL")) or key.startswith("HUB_SMTP_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("HUB_NOTIFY_REPEAT_MINUTES", raising=False)
    return hub_home


@pytest.fixture
def robots(clean_channels):
    with RobotReceiver(dingtalk_secret=DINGTALK_SECRET) as receiver:
        yield receiver


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _failed(c=LUONAN, run_key="run-1", problem="connection failed after 3 retries: refused"):
    error = SourceError(c, "http://127.0.0.1:9/api/v2/households", problem)
    return failure_notice(c, error, step="land", run_id=run_key, run_key=run_key)


def test_wecom_message_is_chinese_names_the_county_cause_next_step_and_run(
    robots, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)  # urllib3 logs the request line at DEBUG
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    monkeypatch.setenv("HUB_DAGSTER_URL", "http://hub.example:3000")
    assert notify.send(_failed())
    assert robots.errors == []
    [text] = robots.texts("wecom")
    assert "洛南县" in text and "611021" in text and "同步失败" in text
    assert "connection failed after 3 retries" in text  # the cause
    assert "下一步" in text and "hub sync luonan" in text  # what to do next
    assert "http://hub.example:3000/runs/run-1" in text  # the run
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/cgi-bin/webhook/send?key=***" in logged and WECOM_KEY not in logged


def test_dingtalk_signed_message_passes_the_robots_signature_check(robots, monkeypatch):
    monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK", robots.dingtalk_url)
    monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK_SECRET", DINGTALK_SECRET)
    reasons = [{"entity": "person", "rule": "id_number_checksum", "records": 40, "message": "x"}]
    error = RejectThresholdExceeded(SHANGNAN, 0.12, 0.05, reasons, rejected=120, total=1000)
    assert notify.send(failure_notice(SHANGNAN, error, step="merge", run_id="r2", run_key="r2"))
    assert robots.errors == []
    [message] = robots.messages
    assert message["kind"] == "dingtalk" and message["query"]["sign"]
    text = message["body"]["markdown"]["text"]
    assert "商南县" in text and "拒收率 12.0%" in text and "身份证号校验位错误" in text
    assert "id_number_checksum" in text and "40 条" in text


def test_dingtalk_signature_is_the_documented_hmac():
    # HMAC-SHA256("<ts>\n<secret>", key=secret), base64, URL-encoded (worked example below).
    import base64
    import hashlib
    import hmac
    from urllib.parse import quote_plus

    ts, secret = 1700000000000, "SECabc"
    expected = quote_plus(
        base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest())
    )
    assert dingtalk.sign(secret, ts) == expected
    url = dingtalk.signed_url("https://oapi.dingtalk.com/robot/send?access_token=t", secret, ts)
    assert url.endswith(f"&timestamp={ts}&sign={expected}")


def test_a_wrong_dingtalk_secret_is_refused_by_the_robot_and_does_not_raise(robots, monkeypatch):
    monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK", robots.dingtalk_url)
    monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK_SECRET", "SECwrong")
    assert notify.send(_failed(SHANGNAN)) is False
    assert robots.errors == ["dingtalk: sign not match"]


def test_email_goes_over_smtp_in_chinese(clean_channels, monkeypatch):
    with MailReceiver() as mail:
        monkeypatch.setenv("HUB_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("HUB_SMTP_PORT", str(mail.port))
        monkeypatch.setenv("HUB_SMTP_FROM", "hub@shangluo.test")
        monkeypatch.setenv("HUB_ZHASHUI_EMAIL", "clerk@zhashui.test, head@zhashui.test")
        assert notify.send(_failed(ZHASHUI))
    [(rcpt, msg)] = mail.messages
    assert sorted(rcpt) == ["clerk@zhashui.test", "head@zhashui.test"]
    assert "柞水县 同步失败" in msg["Subject"]
    body = msg.get_body(("plain",)).get_content()
    assert "柞水县（611026）" in body and "下一步" in body


def test_city_channel_receives_every_county_and_routing_follows_the_settings(robots, monkeypatch):
    monkeypatch.setenv("HUB_CITY_WEBHOOK", robots.wecom_url)
    assert [t.kind for t in channels_for(SHANGNAN)] == ["wecom"]
    monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK", f"dingtalk:{robots.base}/hook?access_token=x")
    assert [t.kind for t in channels_for(SHANGNAN)] == ["dingtalk", "wecom"]
    assert webhook_kind("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")[0] == "wecom"
    assert webhook_kind("https://oapi.dingtalk.com/robot/send?access_token=t")[0] == "dingtalk"
    with pytest.raises(ValueError):
        webhook_kind("https://example.org/somewhere")


def test_one_failure_is_notified_once_whoever_reports_it(robots, monkeypatch):
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    assert notify.send(_failed(run_key="run-7"))
    # the run-failure sensor reports the same run afterwards: no second message
    assert notify.run_failed("luonan", "run-7", "洛南县 (611021, luonan): …: refused") is False
    assert len(robots.messages) == 1


def test_repeats_are_rate_limited_and_the_next_message_counts_them(robots, monkeypatch):
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    t0 = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    # an hourly schedule failing all night with the same cause (ports and counts differ)
    sent = [
        notify.send(
            _failed(run_key=f"run-{h}", problem=f"refused on port {9000 + h}"),
            now=t0 + timedelta(hours=h),
        )
        for h in range(8)
    ]
    assert sent == [True, False, False, False, False, False, True, False]  # 6 h window
    assert "此前 5 次相同通知已按频率限制省略" in robots.texts()[1]
    # another problem of the same county is news at once
    other = _failed(run_key="run-x", problem="HTML page instead of JSON")
    assert notify.send(other, now=t0 + timedelta(hours=7, minutes=30))
    assert len(robots.messages) == 3


def test_a_failing_channel_never_fails_the_sync_and_never_logs_the_key(
    clean_channels, monkeypatch, caplog, fast_retries
):
    dead = _dead_port()
    monkeypatch.setenv("HUB_LUONAN_URL", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("HUB_HTTP_RETRIES", "0")
    monkeypatch.setenv(
        "HUB_LUONAN_WEBHOOK", f"http://127.0.0.1:{dead}/cgi-bin/webhook/send?key={WECOM_KEY}"
    )
    monkeypatch.setenv(
        "HUB_CITY_WEBHOOK", f"http://127.0.0.1:{dead}/robot/send?access_token={DINGTALK_TOKEN}"
    )
    monkeypatch.setenv("HUB_CITY_WEBHOOK_SECRET", DINGTALK_SECRET)
    caplog.set_level(logging.DEBUG)
    # the sync's own error comes out unchanged; the notification's failure is only logged
    with pytest.raises(SourceError, match="洛南县"):
        sync.land(LUONAN, "full")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "notification to wecom robot at 127.0.0.1 failed" in logged
    assert "notification to dingtalk robot at 127.0.0.1 failed" in logged
    for secret in (WECOM_KEY, DINGTALK_TOKEN, DINGTALK_SECRET):
        assert secret not in logged


def test_hub_sync_path_notifies_a_failed_land_once(robots, monkeypatch, fast_retries):
    monkeypatch.setenv("HUB_LUONAN_URL", f"http://127.0.0.1:{_dead_port()}")
    monkeypatch.setenv("HUB_HTTP_RETRIES", "0")
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    with pytest.raises(SourceError):
        sync.land(LUONAN, "full")
    [text] = robots.texts()
    assert "洛南县" in text and "下载（landing）" in text and "本地同步" in text


def test_safety_stop_says_how_to_raise_the_limit(robots, monkeypatch):
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    error = SafetyStop(LUONAN, "household", 500, 1000, 0.2)
    assert notify.send(failure_notice(LUONAN, error, step="merge", run_id=None, run_key="k"))
    [text] = robots.texts()
    assert "安全停止" in text and "500/1000" in text and "--safety-share" in text


def _runs(con, rows):
    for run, finished, rejected, accepted, status in rows:
        con.execute(
            "INSERT INTO ops.sync_run BY NAME SELECT ? AS sync_run_id, '611021' AS county_code, "
            "'person' AS entity, ? AS started_at, ? AS finished_at, ? AS status, "
            "? AS rejected, ? AS accepted",
            [run, finished, finished, status, rejected, accepted],
        )


def test_reject_rate_more_than_doubled_against_the_last_seven_days(robots, monkeypatch):
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    now = datetime.now(UTC)
    with warehouse.connect() as con:
        _runs(
            con,
            [
                ("old", now - timedelta(days=9), 500, 500, "succeeded"),  # outside the week
                ("a", now - timedelta(days=3), 20, 980, "succeeded"),  # 2 %
                ("b", now - timedelta(days=1), 20, 980, "succeeded"),  # 2 %
            ],
        )
        # 4 % is exactly double: not more than doubled
        assert notify.reject_spike(con, LUONAN, "c", 40, 1000) is None
        spike = notify.reject_spike(con, LUONAN, "d", 45, 1000)
        assert notify.reject_spike(con, LUONAN, "e", 5, 100) is None  # too few to be news
    assert spike is not None and notify.send(spike)
    [text] = robots.texts()
    assert "拒收率较近7天翻倍" in text and "4.5%" in text and "2.0%" in text


def test_a_county_past_its_freshness_window_is_notified_once_per_stale_spell(robots, monkeypatch):
    monkeypatch.setenv("HUB_LUONAN_WEBHOOK", robots.wecom_url)
    monkeypatch.setenv("HUB_ZHASHUI_WEBHOOK", robots.wecom_url)
    warehouse.write_state(LUONAN, {"x": "1"})
    warehouse.write_state(ZHASHUI, {"file": "f"})
    now = datetime.now(UTC)
    assert notify.stale_counties(now + timedelta(hours=2)) == []
    later = now + timedelta(hours=7)  # API counties: 6 h; workbooks: 8 days
    assert notify.stale_counties(later) == ["luonan"]
    assert notify.stale_counties(later + timedelta(minutes=10)) == ["luonan"]
    [text] = robots.texts()
    assert "洛南县 数据超过6小时未更新" in text
    assert notify.stale_counties(now + timedelta(days=9)) == ["luonan", "zhashui"]
    assert "柞水县" in robots.texts()[-1] and "上传新的导出文件" in robots.texts()[-1]


def test_notice_without_county_goes_to_the_city(robots, monkeypatch):
    monkeypatch.setenv("HUB_CITY_WEBHOOK", robots.wecom_url)
    assert notify.run_failed(None, "run-z", "DagsterExecutionInterruptedError")
    assert "全市" in robots.texts()[0]


def test_runbook_and_cli_agree_on_the_safety_stop():
    from typer.testing import CliRunner

    from base.paths import REPO
    from pipelines.cli import app

    help_text = CliRunner().invoke(app, ["sync", "--help"], env={"COLUMNS": "200"}).output
    assert "--safety-share" in help_text
    runbook = (REPO / "docs" / "engineering" / "runbook.md").read_text(encoding="utf-8")
    stop = runbook[runbook.index("**`SafetyStop`**") : runbook.index("**`StaleReplay`**")]
    assert "--safety-share" in stop and "cannot" not in stop
    assert "hub sync --safety-share" in str(SafetyStop(LUONAN, "household", 5, 10, 0.2))
