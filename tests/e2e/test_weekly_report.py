"""The weekly data-quality letter: a real sync's rejects and findings, from the snapshot, as an
.xlsx with a summary (Chinese labels, week-on-week trend) and one sheet per entity listing the
records to fix; written by `hub report` and by the Dagster job, sent through the channels."""

from __future__ import annotations

import os
import re
import zipfile
from datetime import date, timedelta

import dagster as dg
import fastexcel
import pytest
from typer.testing import CliRunner

import warehouse
from base import paths
from pipelines import sync
from pipelines.weekly_report import ENTITY_ZH, Week, entities_of
from seeds.registry import counties, county
from tests.receivers import MailReceiver, RobotReceiver

pytestmark = pytest.mark.e2e
SHANGNAN = county("shangnan")


@pytest.fixture
def synced(simulator, hub_home, monkeypatch):
    for key in list(os.environ):
        if key.endswith(("_WEBHOOK", "_WEBHOOK_SECRET", "_EMAIL")) or key.startswith("HUB_SMTP_"):
            monkeypatch.delenv(key)
    sync.merge(SHANGNAN, sync.land(SHANGNAN, "full"))
    with warehouse.connect() as con:
        # last week: the same rejects of one rule, one record fewer (a trend to show)
        entity, rule = con.execute(
            "SELECT entity, rule FROM ops.reject ORDER BY entity, rule LIMIT 1"
        ).fetchone()
        con.execute(
            """
            INSERT INTO ops.reject
            SELECT * REPLACE (recorded_at - INTERVAL 7 DAY AS recorded_at) FROM ops.reject
            WHERE entity = $entity AND rule = $rule
            QUALIFY row_number() OVER (ORDER BY source_key) > 1
            """,
            {"entity": entity, "rule": rule},
        )
        expected = dict(
            con.execute(
                """
                SELECT rule, count(DISTINCT source_key) FROM (
                  SELECT rule, source_key FROM ops.reject WHERE recorded_at > now() - INTERVAL 1 DAY
                  UNION ALL
                  SELECT rule, source_key FROM ops.finding WHERE recorded_at > now() - INTERVAL 1 DAY)
                GROUP BY rule
                """
            ).fetchall()
        )
    warehouse.publish_snapshot(paths.live_db(), paths.snapshot_db())
    return expected, entity, rule


def _frozen_rows(xlsx, sheet_index: int) -> str | None:
    with zipfile.ZipFile(xlsx) as z:
        xml = z.read(f"xl/worksheets/sheet{sheet_index + 1}.xml").decode()
    pane = re.search(r"<pane [^>]*ySplit=\"(\d+)\"[^>]*state=\"frozen\"", xml)
    return pane.group(1) if pane else None


def test_hub_report_writes_the_letter(synced):
    from pipelines.cli import app

    expected, entity, rule = synced
    assert expected, "the simulator injects defects at test scale"
    result = CliRunner().invoke(app, ["report", "shangnan", "--week", "this"])
    assert result.exit_code == 0, result.output
    week = Week.parse("this")
    path = paths.hub_home() / "reports" / "shangnan" / f"商南县数据质量周报_{week.label}.xlsx"
    assert path.exists() and str(path.name) in result.output.replace("\n", "")

    book = fastexcel.read_excel(path.read_bytes())
    assert book.sheet_names == ["汇总", *[ENTITY_ZH[e] for e in entities_of(SHANGNAN)]]
    for i in range(len(book.sheet_names)):
        assert _frozen_rows(path, i) == "2", book.sheet_names[i]  # title + header stay in view

    summary = book.load_sheet("汇总", header_row=1).to_polars()
    assert summary.columns == ["问题", "规则", "级别", "对象", "本周记录数", "上周记录数", "周环比"]
    got: dict[str, int] = {}
    for r in summary.iter_rows(named=True):
        got[r["规则"]] = got.get(r["规则"], 0) + int(float(r["本周记录数"]))
    assert got == expected  # every rule, every distinct record, nothing invented
    assert all(re.search(r"[\u4e00-\u9fff]", label) for label in summary["问题"].to_list())
    [row] = [
        r
        for r in summary.iter_rows(named=True)
        if r["规则"] == rule and r["对象"] == ENTITY_ZH[entity] and r["级别"].startswith("拒收")
    ]
    assert int(float(row["上周记录数"])) == int(float(row["本周记录数"])) - 1
    assert row["周环比"] == "↑ 增加 1"

    sheet = book.load_sheet(ENTITY_ZH[entity], header_row=1).to_polars()
    assert sheet.columns[:3] == ["记录编号", "问题", "规则"]
    listed = summary.filter(summary["对象"] == ENTITY_ZH[entity])
    assert sheet.height == sum(int(float(v)) for v in listed["本周记录数"].to_list())
    assert sheet["记录编号"].null_count() == 0 and sheet["说明"].null_count() == 0


def test_the_letter_is_sent_by_email_and_linked_to_the_robot(synced, monkeypatch):
    from pipelines.weekly_report import send_letter, write_letter

    with MailReceiver() as mail, RobotReceiver() as robot:
        monkeypatch.setenv("HUB_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("HUB_SMTP_PORT", str(mail.port))
        monkeypatch.setenv("HUB_SHANGNAN_EMAIL", "clerk@shangnan.test")
        monkeypatch.setenv("HUB_SHANGNAN_WEBHOOK", robot.wecom_url)
        monkeypatch.setenv("HUB_REPORT_URL", "https://hub.example/reports")
        letter = write_letter(SHANGNAN, Week.parse("this"))
        assert send_letter(letter)
        assert not send_letter(letter)  # one letter per county and week
    [(_, msg)] = mail.messages
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == letter.path.name
    assert attachment.get_content() == letter.path.read_bytes()
    [text] = robot.texts()
    assert "商南县 数据质量周报" in text and "主要问题" in text
    assert f"https://hub.example/reports/shangnan/{letter.path.name}" in text


def test_weekly_job_writes_every_countys_letter(synced):
    from pipelines.definitions import defs

    job = defs.resolve_job_def("weekly_quality_letters")
    run_config = {"ops": {"weekly_letters": {"config": {"week": "this", "send": False}}}}
    assert job.execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral()
    ).success
    written = sorted(p.parent.name for p in (paths.hub_home() / "reports").glob("*/*.xlsx"))
    assert written == sorted(c.slug for c in counties())
    schedule = defs.resolve_schedule_def("weekly_quality_letters_monday")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 8 * * 1", "Asia/Shanghai")


def test_week_parsing():
    today = date(2026, 12, 6)  # a Sunday, ISO week 49
    assert Week.parse("this", today).label == "2026-W49"
    assert Week.parse(None, today).label == "2026-W48"  # the last full week
    assert Week.parse("2026-w01").monday == date(2025, 12, 29)
    assert Week.parse("2026-12-01").label == "2026-W49"
    assert Week.parse("2026-W49").previous().label == "2026-W48"
    start, end = Week.parse("2026-W49").bounds()
    assert str(start) == "2026-11-30 00:00:00+08:00" and end - start == timedelta(days=7)
    with pytest.raises(ValueError, match="expected 2026-W49"):
        Week.parse("next year")
    with pytest.raises(ValueError):
        Week.parse("2026-W54")
