"""`hub demo` as a user runs it: a real subprocess against a real simulator on loopback.

- The run report shows only this run's counties, with their real outcome: a county whose URL
  is wrong is *failed* with its one-line root cause (not the previous run's "succeeded"), the
  exit status is 1, and mart.sync_status shows the failure although no daemon ran.
- `hub status` and `hub rejects` read what the runs left.
- Ctrl-C (SIGINT to the process group, as a terminal sends it) stops the run: exit 130, the
  counties already merged stay merged, the others are untouched, the city step never runs.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from seeds.registry import county
from tests.conftest import serving

pytestmark = pytest.mark.e2e

HUB = Path(sys.executable).parent / "hub"
LUONAN, DANFENG, ZHENAN = county("luonan"), county("danfeng"), county("zhenan")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_WAREHOUSE", "HUB_SNAPSHOT")}
    env.pop("DAGSTER_HOME", None)  # the hub puts it under HUB_HOME
    env.update(HUB_HOME=str(home), HUB_HTTP_BACKOFF="0.01", HUB_HTTP_RETRY_AFTER_MAX="0.05")
    env.update(extra)
    return env


def _hub(home: Path, *args: str, timeout: int = 300, **extra: str):
    return subprocess.run(
        [str(HUB), *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _report_rows(stdout: str) -> dict[str, str]:
    """County name -> its row in the report (after the live progress lines)."""
    rows = {}
    for line in stdout.split("Sync report", 1)[1].splitlines():
        parts = line.split()
        if parts and parts[0].endswith(("县", "区")) and len(parts) > 2:
            rows.setdefault(parts[0], line)
    return rows


def test_report_tells_the_truth_about_this_run(monkeypatch, tmp_path):
    home = tmp_path / "hub"
    with serving(monkeypatch):
        first = _hub(home, "demo", "--county", "luonan", "--county", "danfeng")
        assert first.returncode == 0, first.stdout + first.stderr
        rows = _report_rows(first.stdout)
        assert set(rows) >= {LUONAN.name, DANFENG.name}
        assert "商州区" not in first.stdout, "only this run's counties"
        assert "succeeded" in rows[LUONAN.name] and "full" in rows[LUONAN.name]

        # 洛南 now points at a port nobody listens on
        second = _hub(
            home,
            "demo",
            "--county",
            "luonan",
            "--county",
            "danfeng",
            HUB_LUONAN_URL="http://127.0.0.1:9/luonan",
        )
        assert second.returncode == 1, second.stdout + second.stderr
        rows = _report_rows(second.stdout)
        assert "failed" in rows[LUONAN.name] and "succeeded" not in rows[LUONAN.name]
        assert "succeeded" in rows[DANFENG.name]
        cause = [ln for ln in second.stdout.splitlines() if ln.startswith(f"{LUONAN.name} 失败")]
        assert len(cause) == 1
        assert "luonan" in cause[0] and "/auth/token" in cause[0] and "connection" in cause[0]
        assert "Traceback" not in second.stdout and "SourceError:" not in cause[0]

        # the failure reached ops.sync_run and the mart without any daemon
        with duckdb.connect(str(home / "warehouse" / "snapshot.duckdb"), read_only=True) as con:
            status = dict(
                con.execute(
                    "SELECT slug, last_failure_error FROM mart.sync_status "
                    "WHERE slug IN ('luonan', 'danfeng')"
                ).fetchall()
            )
        assert "/auth/token" in (status["luonan"] or "")
        assert status["danfeng"] is None

        # hub status: per county, the failure and its reason, the next run
        shown = _hub(home, "status", timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "/auth/token" in shown.stdout and "nightly_full_all_counties" in shown.stdout
        assert "hourly_incremental_api_counties" in shown.stdout
        assert "never" in shown.stdout  # counties this home never synced

        # hub rejects: the latest sync's rejects of a county, as CSV with a BOM
        out = tmp_path / "luonan.csv"
        exported = _hub(home, "rejects", "luonan", "-o", str(out), timeout=60)
        assert exported.returncode == 0, exported.stderr
        raw = out.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows_csv = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
        with duckdb.connect(str(home / "warehouse" / "hub.duckdb"), read_only=True) as con:
            expected = con.execute(
                """
                SELECT count(*) FROM ops.reject WHERE sync_run_id = (
                    SELECT max(sync_run_id) FROM ops.sync_run
                    WHERE county_code = '611021' AND status = 'succeeded')
                """
            ).fetchone()[0]
        assert expected > 0 and len(rows_csv) == expected
        assert all(r["规则说明 rule_zh"] and r["规则 rule"] for r in rows_csv)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in rows_csv[0]["规则说明 rule_zh"])

        bad = _hub(home, "rejects", "luonanx", timeout=60)
        assert bad.returncode == 2 and "luonan (611021" in bad.stderr


def test_ctrl_c_stops_cleanly_and_says_what_was_merged(monkeypatch, tmp_path):
    home = tmp_path / "hub"
    with serving(monkeypatch) as simulator:
        # 镇安's platform answers every request slowly: its landing is still running when the
        # other counties have merged.
        simulator.arm_fault("zhenan", "slow", count=1000, seconds=3.0)
        process = subprocess.Popen(
            [str(HUB), "demo", "--county", "luonan", "--county", "zhenan"],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        try:
            state = home / "state" / "luonan.json"  # written once 洛南's merge committed
            deadline = time.monotonic() + 180
            while not state.exists() and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.2)
            assert state.exists(), "洛南县 never merged"
            os.killpg(process.pid, signal.SIGINT)
            stdout, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
            simulator.clear_faults()
    assert process.returncode == 130, stdout + stderr
    interrupted = [ln for ln in stdout.splitlines() if ln.startswith("Interrupted")]
    assert interrupted, stdout
    text = " ".join(stdout.split("Interrupted", 1)[1].split())
    merged, not_merged = text.split("not merged", 1)
    assert LUONAN.name in merged and ZHENAN.name not in merged
    assert ZHENAN.name in not_merged
    assert not (home / "warehouse" / "snapshot.duckdb").exists(), "no city step after Ctrl-C"
    with duckdb.connect(str(home / "warehouse" / "hub.duckdb"), read_only=True) as con:
        counts = dict(
            con.execute("SELECT county_code, count(*) FROM core.household GROUP BY ALL").fetchall()
        )
        statuses = con.execute("SELECT DISTINCT status FROM ops.sync_run").fetchall()
    assert counts.get(LUONAN.code, 0) > 0 and ZHENAN.code not in counts
    assert ("failed",) not in statuses, "an interrupted run is not a county failure"


def test_hub_sync_reports_its_one_county(monkeypatch, tmp_path):
    home = tmp_path / "hub"
    with serving(monkeypatch):
        ok = _hub(home, "sync", "danfeng", "--mode", "full")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        row = _report_rows(ok.stdout)[DANFENG.name]
        assert "succeeded" in row and "full" in row

        # 商州 (battle v2) cannot filter by time: its "incremental" sync re-reads everything,
        # is labelled so, and counts the records that did not change as unchanged
        assert _hub(home, "sync", "shangzhou", "--mode", "full").returncode == 0
        again = _hub(home, "sync", "shangzhou")
        assert again.returncode == 0, again.stdout + again.stderr
        report = " ".join(again.stdout.split("Sync report", 1)[1].split())
        assert "full re-read, changes applied" in report
        numbers = [int(v.replace(",", "")) for v in report.split("applied", 1)[1].split()[:7]]
        fetched, inserted, updated, unchanged, deleted, rejected, _ = numbers
        assert fetched > 0 and (inserted, updated, deleted) == (0, 0, 0)
        assert unchanged + rejected == fetched

        broken = _hub(home, "sync", "danfeng", HUB_DANFENG_URL="http://127.0.0.1:9/danfeng")
        assert broken.returncode == 1
        assert "failed" in _report_rows(broken.stdout)[DANFENG.name]
        assert "127.0.0.1:9/danfeng" in broken.stdout and "Traceback" not in broken.stdout

        # an API platform at a real URL without its credentials is not configured: an error
        unset = _hub(
            home,
            "sync",
            "luonan",
            HUB_LUONAN_URL="http://127.0.0.1:9/luonan",
            HUB_LUONAN_KEY="",
            HUB_LUONAN_SECRET="",
        )
        assert unset.returncode == 1, unset.stdout + unset.stderr
        assert "not configured" in unset.stderr and "HUB_LUONAN_KEY" in unset.stderr
        assert "Traceback" not in unset.stderr
