"""What operators read is labelled in Chinese and says what really happens."""

from __future__ import annotations

import re

import duckdb

import warehouse
from pipelines.defs import checks
from pipelines.defs.metadata import LABELS_ZH
from pipelines.modes import FULL_REREAD, mode_label, mode_label_zh
from pipelines.report import CountyOutcome, exit_code, interrupted_line
from seeds.registry import counties, county

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_a_platform_that_cannot_filter_by_time_is_labelled_full_reread():
    shangzhou = county("shangzhou")
    assert (shangzhou.kind, shangzhou.version) == ("battle", "2")
    assert mode_label(shangzhou, "incremental") == FULL_REREAD == "full re-read, changes applied"
    assert mode_label_zh(shangzhou, "incremental") == "全量重读，仅应用变化"
    assert mode_label(shangzhou, "full") == "full"
    others = [c for c in counties() if c is not shangzhou]
    assert all(mode_label(c, "incremental") == "incremental" for c in others)


def test_the_battle_client_and_the_label_agree():
    from pipelines.sources import client_for

    settings = {"url": "http://127.0.0.1:9", "key": "k", "secret": "s"}
    for c in counties():
        if c.kind == "battle":
            client = client_for(c, settings)
            assert client.supports_incremental == (mode_label(c, "incremental") == "incremental")


def test_every_check_and_metadata_key_has_a_chinese_label():
    for c in counties():
        for spec in checks.check_specs(c):
            assert CJK.search(spec.description.split(" — ")[0]), spec.name
    assert all(CJK.search(label) for label in LABELS_ZH.values())


def test_pipeline_connections_draw_no_progress_bar(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
    # explicitly off, whatever the client's default (it differs on a terminal)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = true")
    warehouse.quiet(con)
    assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False


def test_exit_code_and_the_interrupted_line():
    luonan, zhenan = county("luonan"), county("zhenan")
    ok = CountyOutcome(luonan, "succeeded")
    assert exit_code([ok]) == 0
    assert exit_code([ok, CountyOutcome(zhenan, "skipped")]) == 0
    assert exit_code([ok, CountyOutcome(zhenan, "refused")]) == 1
    assert exit_code([ok, CountyOutcome(zhenan, "failed")]) == 1
    line = interrupted_line([ok, CountyOutcome(zhenan, "skipped")])
    merged, not_merged = line.split("not merged")
    assert "洛南县" in merged and "镇安县" not in merged and "镇安县" in not_merged


def test_the_ui_describes_shangzhous_incremental_sync_as_a_full_reread():
    from pipelines.defs.counties import build_county

    for c in counties():
        landing, merge = build_county(c)
        descriptions = [landing.descriptions_by_key[k] for k in landing.keys] + [
            merge.descriptions_by_key[k] for k in merge.keys
        ]
        rereads = [FULL_REREAD in d and "全量重读" in d for d in descriptions]
        assert all(rereads) if c.slug == "shangzhou" else not any(rereads), c.slug


def test_hub_ui_binds_the_interface_asked_for():
    from pipelines.cli import dagster_dev_command

    assert dagster_dev_command(3000)[-4:] == ["-h", "127.0.0.1", "-p", "3000"]
    assert dagster_dev_command(3100, "10.0.0.12")[-4:] == ["-h", "10.0.0.12", "-p", "3100"]
