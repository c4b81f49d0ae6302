"""``hub status``: per county, is its data fresh and what happens next.

Read from ``ops.sync_run`` of the live warehouse (read-only), or of the published snapshot while
a sync holds the live file: the last success, the last failure (failed or refused) with its
reason, the lag (time since the last success), the next scheduled run (the schedules of
``pipelines/defs/automation.py``, Beijing time) and the reject rate of the latest sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from rich.table import Table

from seeds.registry import County, counties

BEIJING = ZoneInfo("Asia/Shanghai")

STATUS_SQL = """
WITH runs AS (
    SELECT sync_run_id, county_code, any_value(status) AS status, max(finished_at) AS finished_at,
           sum(accepted) AS accepted, sum(rejected) AS rejected, any_value(error) AS error
    FROM ops.sync_run GROUP BY sync_run_id, county_code
),
success AS (
    SELECT county_code, max(finished_at) AS last_success_at
    FROM runs WHERE status = 'succeeded' GROUP BY county_code
),
failure AS (
    SELECT county_code, finished_at AS last_failure_at, status AS failure_status,
           error AS last_failure_error
    FROM runs WHERE status IN ('failed', 'refused')
    QUALIFY row_number() OVER (PARTITION BY county_code ORDER BY finished_at DESC) = 1
),
latest AS (
    SELECT county_code, rejected / nullif(accepted + rejected, 0) AS reject_rate
    FROM runs WHERE status IN ('succeeded', 'refused')
    QUALIFY row_number() OVER (PARTITION BY county_code
                               ORDER BY finished_at DESC, sync_run_id DESC) = 1
)
SELECT county_code, s.last_success_at, f.last_failure_at, f.failure_status,
       f.last_failure_error, l.reject_rate
FROM (SELECT DISTINCT county_code FROM runs) AS c
LEFT JOIN success AS s USING (county_code)
LEFT JOIN failure AS f USING (county_code)
LEFT JOIN latest AS l USING (county_code)
"""


@dataclass
class CountyStatus:
    county: County
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure: str | None  # "failed: <reason>" / "refused: <reason>"
    lag_hours: float | None
    next_run_at: datetime | None
    next_run: str  # which schedule (or sensor)
    reject_rate: float | None


def _next(cron: str, now: float) -> datetime:
    from dagster._utils.schedules import cron_string_iterator

    return next(cron_string_iterator(now, cron, "Asia/Shanghai"))


def next_scheduled(county: County, now: float | None = None) -> tuple[datetime | None, str]:
    """The county's next scheduled sync and the schedule that launches it."""
    from pipelines.defs.automation import hourly_incremental, nightly_full, polled_hourly

    now = time.time() if now is None else now
    candidates = [(_next(nightly_full.cron_schedule, now), nightly_full.name)]
    if polled_hourly(county):
        candidates.append((_next(hourly_incremental.cron_schedule, now), hourly_incremental.name))
    at, name = min(candidates)
    if not polled_hourly(county):
        name += f" (or {county.slug}_new_export on a new file)"
    return at, name


def read(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> list[CountyStatus]:
    now = now or datetime.now(UTC)
    con.execute("SET TimeZone = 'UTC'")
    rows = {r[0]: r[1:] for r in con.execute(STATUS_SQL).fetchall()}
    out = []
    for county in counties():
        success, failure_at, failure_status, error, rate = rows.get(county.code, (None,) * 5)
        lag = (now - success).total_seconds() / 3600 if success else None
        at, schedule = next_scheduled(county, now.timestamp())
        failure = f"{failure_status}: {_first_line(error)}" if failure_at else None
        out.append(CountyStatus(county, success, failure_at, failure, lag, at, schedule, rate))
    return out


def _first_line(text: str | None) -> str:
    return next(
        (ln.strip() for ln in (text or "").splitlines() if ln.strip()), "no reason recorded"
    )


def beijing(at: datetime | None) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if at else "—"


def table(statuses: list[CountyStatus], source: Path) -> Table:
    t = Table(
        title=f"县区同步状态 sync status (北京时间 Beijing time; from {source})",
        title_justify="left",
    )
    t.add_column("县区 county", no_wrap=True)
    t.add_column("最近成功 last success", no_wrap=True)
    t.add_column("滞后 lag h", justify="right", no_wrap=True)
    t.add_column("最近失败 last failure", no_wrap=True)
    t.add_column("下次运行 next run", no_wrap=True)
    t.add_column("由 by", no_wrap=True)
    t.add_column("拒收率 reject rate", justify="right", no_wrap=True)
    for s in statuses:
        t.add_row(
            f"{s.county.name} {s.county.slug}",
            beijing(s.last_success_at),
            f"{s.lag_hours:.1f}" if s.lag_hours is not None else "never 从未",
            beijing(s.last_failure_at),
            beijing(s.next_run_at),
            s.next_run,
            f"{s.reject_rate:.2%}" if s.reject_rate is not None else "—",
        )
    return t


def failure_lines(statuses: list[CountyStatus]) -> list[str]:
    """One line per county with a recorded failure: when and why (the reason is never cut)."""
    return [
        f"{s.county.name} {s.county.slug} 最近失败 last failure {beijing(s.last_failure_at)}: "
        f"{s.last_failure}"
        for s in statuses
        if s.last_failure
    ]
