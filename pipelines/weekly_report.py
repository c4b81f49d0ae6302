"""The weekly data-quality letter of one county (数据质量周报), as an .xlsx the clerks open.

Read from the published snapshot (read-only, so a running sync never blocks it): every reject
and finding recorded in the county's syncs during one ISO week (Monday to Sunday, Beijing time)
and the week before.

- sheet ``汇总`` (summary): per rule — Chinese label, level, entity, records this week, last
  week and the change;
- one sheet per entity of the county (贫困户, 贫困人口, …): the records to fix — key, rule,
  column, value, message, where in the landed payload, when last seen.

Every sheet has a frozen, filterable header. ``write_letter`` writes it under
``var/reports/<slug>/``; ``send_letter`` sends it (e-mail attachment) or links it (robots) through
the county's channel. Produced weekly by the ``weekly_quality_letters`` schedule and on demand by
``hub report <county> [--week 2026-W49]``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import xlsxwriter

from base import paths, settings
from pipelines.connectors.registry import connector_for
from schemas.entities import LABELS_ZH
from schemas.rule_labels import label_zh
from seeds.registry import County

BEIJING = ZoneInfo("Asia/Shanghai")
ENTITY_ZH = LABELS_ZH
LEVEL_ZH = {"reject": "拒收（未入库）", "finding": "提示（已入库，请核实）"}
#: a sheet lists at most this many records (Excel's limit is ~1M rows; clerks need the first ones)
MAX_ROWS_PER_SHEET = 100_000


@dataclass(frozen=True)
class Week:
    year: int
    week: int

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def bounds(self) -> tuple[datetime, datetime]:
        start = datetime.combine(self.monday, datetime.min.time(), BEIJING)
        return start, start + timedelta(days=7)

    def previous(self) -> Week:
        y, w, _ = (self.monday - timedelta(days=7)).isocalendar()
        return Week(y, w)

    @classmethod
    def containing(cls, day: date) -> Week:
        y, w, _ = day.isocalendar()
        return cls(y, w)

    @classmethod
    def parse(cls, text: str | None, today: date | None = None) -> Week:
        """``2026-W49``, a date (its week), ``this``, or ``last``/None (the last full week)."""
        today = today or datetime.now(BEIJING).date()
        if text in (None, "", "last"):
            return cls.containing(today - timedelta(days=7))
        if text == "this":
            return cls.containing(today)
        if m := re.fullmatch(r"(\d{4})-?W(\d{1,2})", text.strip(), flags=re.IGNORECASE):
            week = cls(int(m.group(1)), int(m.group(2)))
            week.monday  # noqa: B018 - raises ValueError for a week the year does not have
            return week
        try:
            return cls.containing(date.fromisoformat(text.strip()))
        except ValueError:
            raise ValueError(
                f"--week {text!r}: expected 2026-W49, a date (2026-12-01), 'this' or 'last'"
            ) from None


@dataclass
class Letter:
    county: County
    week: Week
    path: Path
    summary: pl.DataFrame  # rule, label, level, entity, this_week, last_week, change
    records: dict[str, pl.DataFrame]  # entity -> records to fix

    @property
    def open_issues(self) -> int:
        return int(self.summary["this_week"].sum()) if self.summary.height else 0


def entities_of(county: County) -> tuple[str, ...]:
    return connector_for(county).entities


_ISSUES = """
    SELECT 'reject' AS level, * FROM ops.reject WHERE county_code = $county
           AND recorded_at >= $start AND recorded_at < $end
    UNION ALL
    SELECT 'finding' AS level, * FROM ops.finding WHERE county_code = $county
           AND recorded_at >= $start AND recorded_at < $end
"""


def _issues(con, county: County, week: Week) -> pl.DataFrame:
    start, end = week.bounds()
    return con.execute(_ISSUES, {"county": county.code, "start": start, "end": end}).pl()


def _counts(issues: pl.DataFrame) -> pl.DataFrame:
    """Distinct records per (level, entity, rule): a record re-judged by several syncs once."""
    return issues.group_by("level", "entity", "rule").agg(
        pl.struct("source_key").n_unique().cast(pl.Int64).alias("records")
    )


def build(con, county: County, week: Week) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    this, last = _issues(con, county, week), _issues(con, county, week.previous())
    keys = ["level", "entity", "rule"]
    summary = (
        _counts(this)
        .rename({"records": "this_week"})
        .join(_counts(last).rename({"records": "last_week"}), on=keys, how="full", coalesce=True)
        .with_columns(pl.col("this_week").fill_null(0), pl.col("last_week").fill_null(0))
        .with_columns((pl.col("this_week") - pl.col("last_week")).alias("change"))
        .sort(["level", "this_week", "entity", "rule"], descending=[True, True, False, False])
    )
    records = {}
    for entity in entities_of(county):
        records[entity] = (
            this.filter(pl.col("entity") == entity)
            .sort("recorded_at", descending=True)
            .unique(["source_key", "rule"], keep="first", maintain_order=True)
            .sort(["level", "rule", "source_key"], descending=[True, False, False])
            .head(MAX_ROWS_PER_SHEET)
        )
    return summary, records


def _trend(change: int) -> str:
    return "持平" if change == 0 else (f"↑ 增加 {change}" if change > 0 else f"↓ 减少 {-change}")


#: The sheets' columns: (header, width).
SUMMARY_COLUMNS = [
    ("问题", 34), ("规则", 28), ("级别", 20), ("对象", 12), ("本周记录数", 12), ("上周记录数", 12),
    ("周环比", 14),
]  # fmt: skip
RECORD_COLUMNS = [
    ("记录编号", 22), ("问题", 30), ("规则", 26), ("级别", 20), ("字段", 16), ("值", 22),
    ("说明", 60), ("原始数据位置", 40), ("最后出现", 17),
]  # fmt: skip


def _summary_rows(summary: pl.DataFrame) -> list[list]:
    return [
        [
            label_zh(r["rule"]),
            r["rule"],
            LEVEL_ZH.get(r["level"], r["level"]),
            ENTITY_ZH.get(r["entity"], r["entity"]),
            r["this_week"],
            r["last_week"],
            _trend(r["change"]),
        ]
        for r in summary.iter_rows(named=True)
    ]


def write_xlsx(path: Path, county: County, week: Week, summary, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    start, end = week.bounds()
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_urls": False})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    title = wb.add_format({"bold": True, "font_size": 14})
    text = wb.add_format({"num_format": "@"})  # keys stay text: 户编号 are 16 digits

    def sheet(name: str, columns: list[tuple[str, int]], rows: list[list], note: str):
        ws = wb.add_worksheet(name)
        ws.write(0, 0, note, title)
        for c, (header, width) in enumerate(columns):
            ws.write(1, c, header, head)
            ws.set_column(c, c, width, text)
        for r, row in enumerate(rows, start=2):
            for c, value in enumerate(row):
                ws.write_string(r, c, "" if value is None else str(value))
        ws.freeze_panes(2, 0)  # title and header stay in view
        ws.autofilter(1, 0, max(1, len(rows) + 1), len(columns) - 1)

    period = f"{start:%Y-%m-%d} 至 {(end - timedelta(days=1)):%Y-%m-%d}"
    sheet(
        "汇总",
        SUMMARY_COLUMNS,
        _summary_rows(summary),
        f"{county.name}数据质量周报 {week.label}（{period}，北京时间）",
    )
    for entity, df in records.items():
        rows = [
            [
                r["source_key"],
                label_zh(r["rule"]),
                r["rule"],
                LEVEL_ZH.get(r["level"]),
                r["column_name"],
                r["value"],
                r["message"],
                r["raw_ref"],
                f"{r['recorded_at'].astimezone(BEIJING):%Y-%m-%d %H:%M}",
            ]
            for r in df.iter_rows(named=True)
        ]
        note = f"{ENTITY_ZH.get(entity, entity)}：本周需要核实或修正的记录 {len(rows)} 条"
        sheet(
            ENTITY_ZH.get(entity, entity),
            RECORD_COLUMNS,
            rows,
            note if rows else f"{ENTITY_ZH.get(entity, entity)}：本周没有问题记录",
        )
    wb.close()
    os.replace(tmp, path)


def report_path(county: County, week: Week) -> Path:
    return (
        paths.hub_home() / "reports" / county.slug / f"{county.name}数据质量周报_{week.label}.xlsx"
    )


def write_letter(county: County, week: Week, snapshot: Path | None = None) -> Letter:
    """Build and write the county's letter for ``week`` from the snapshot (on the DuckLake
    backend: from the analyst lake, ``pipelines.lake.tiers``)."""
    if snapshot is None and settings.is_lake():
        from pipelines.lake import tiers

        with tiers.analyst_connection() as con:
            summary, records = build(con, county, week)
    else:
        snapshot = Path(snapshot or paths.snapshot_db())
        if not snapshot.exists():
            raise FileNotFoundError(
                f"no snapshot at {snapshot}: run a sync first (make demo, or the sync_city job)"
            )
        with duckdb.connect(str(snapshot), read_only=True) as con:
            summary, records = build(con, county, week)
    path = report_path(county, week)
    write_xlsx(path, county, week, summary, records)
    return Letter(county, week, path, summary, records)


def letter_notice(letter: Letter):
    """The letter as a notification: the file for e-mail, a summary and a link for robots."""
    from pipelines.notify.messages import Notice

    top = letter.summary.filter(pl.col("this_week") > 0).head(5)
    base = os.environ.get("HUB_REPORT_URL")
    link = (
        f"{base.rstrip('/')}/{letter.county.slug}/{letter.path.name}" if base else str(letter.path)
    )
    lines = [
        ("县区", f"{letter.county.name}（{letter.county.code}）"),
        ("周次", letter.week.label),
        ("本周问题记录", f"{letter.open_issues} 条"),
    ]
    if top.height:
        lines.append(
            (
                "主要问题",
                "；".join(
                    f"{label_zh(r['rule'])} {r['this_week']} 条（{_trend(r['change'])}）"
                    for r in top.iter_rows(named=True)
                ),
            )
        )
    return Notice(
        county=letter.county,
        kind="weekly_report",
        title=f"{letter.county.name} 数据质量周报 {letter.week.label}",
        lines=lines,
        next_step="请打开周报，按各工作表列出的记录在县平台上逐条核实、修正；修正后下次同步即可消除。",
        link=link,
        key=f"report:{letter.county.slug}:{letter.week.label}",
        signature=f"weekly_report:{letter.county.slug}:{letter.week.label}",
        attachments=[str(letter.path)],
    )


def send_letter(letter: Letter) -> bool:
    from pipelines import notify

    return notify.send(letter_notice(letter))
