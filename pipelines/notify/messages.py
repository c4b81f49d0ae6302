"""What a notification says: Chinese text naming the county, the cause, what to do next and a
link to the run. Channel modules only format it (WeCom/DingTalk markdown, e-mail text)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pipelines.connectors.registry import connector_for
from schemas.rule_labels import label_zh

BEIJING = ZoneInfo("Asia/Shanghai")
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
HUB_NAME = "商洛市脱贫攻坚数据中心"


@dataclass
class Notice:
    county: object | None  # pipelines.registry.County; None: a run not tied to one county
    kind: str  # failed / refused / stale / reject_spike / weekly_report
    title: str  # one line, e.g. "洛南县 同步失败"
    lines: list[tuple[str, str]]  # (label, text) rows of the message body
    next_step: str
    link: str | None  # the run in the Dagster UI, or where the file is
    key: str  # one notification per key, ever (the ledger)
    signature: str  # repeats of one problem are rate-limited on this
    attachments: list[str] = field(default_factory=list)  # files for e-mail
    suppressed_before: int = 0

    @property
    def county_name(self) -> str:
        return getattr(self.county, "name", None) or "全市"

    def text_lines(self) -> list[str]:
        """The body as plain lines (e-mail; the robots add markdown)."""
        out = [f"{label}：{text}" for label, text in self.lines]
        out.append(f"下一步：{self.next_step}")
        if self.link:
            out.append(f"运行记录：{self.link}")
        if self.suppressed_before:
            out.append(f"（此前 {self.suppressed_before} 次相同通知已按频率限制省略）")
        out.append(f"时间：{datetime.now(BEIJING):%Y-%m-%d %H:%M}（北京时间）")
        return out


def run_link(run_id: str | None) -> str | None:
    if not run_id:
        return None
    base = (os.environ.get("HUB_DAGSTER_URL") or DEFAULT_DAGSTER_URL).rstrip("/")
    return f"{base}/runs/{run_id}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _signature_of(text: str) -> str:
    """The same problem seen again: numbers (ports, counts, ids, times) do not make it new."""
    return re.sub(r"\d+", "#", _one_line(text, 160))


def _county_lines(county) -> list[tuple[str, str]]:
    if county is None:
        return [("县区", "全市（未能归属到某个县区的运行）")]
    return [("县区", f"{county.name}（{county.code}）")]


def _reasons(reasons) -> str:
    parts = []
    for r in list(reasons)[:5]:
        if isinstance(r, dict):
            entity = r.get("entity")
            parts.append(f"{label_zh(r['rule'])}（{entity}.{r['rule']}）{r.get('records', '')} 条")
        else:
            rule, count = r
            parts.append(f"{label_zh(rule)}（{rule}）{count} 条")
    return "；".join(parts) or "无"


def failure_notice(county, error, *, step: str | None, run_id: str | None, run_key: str) -> Notice:
    """A sync that failed or refused. ``error``: the exception, or the message the run-failure
    sensor saw (the same exception's text)."""
    slug = getattr(county, "slug", None) or "city"
    name = getattr(county, "name", None) or "全市"
    rerun = (
        f"修复后在 Dagster 中重新运行 sync_{slug}，或在服务器上运行 hub sync {slug}"
        if county is not None
        else "修复后重新运行该作业"
    )
    cause = _one_line(error if isinstance(error, str) else _message(error))
    kind, title, reasons, next_step = _what_failed(error, cause, name, slug, rerun)
    lines = [*_county_lines(county), *reasons]
    if step:
        lines.append(
            ("失败步骤", {"land": "下载（landing）", "merge": "校验与入库（merge）"}[step])
        )
    return Notice(
        county=county,
        kind=kind,
        title=title,
        lines=lines,
        next_step=next_step,
        link=run_link(run_id) or f"本地同步（hub sync），编号 {run_key}",
        key=f"run:{slug}:{run_key}",
        signature=f"{kind}:{slug}:{_signature_of(cause)}",
    )


def _what_failed(
    error, cause: str, name: str, slug: str, rerun: str
) -> tuple[str, str, list[tuple[str, str]], str]:
    """(kind, title, reason lines, next step) of a failure notice: a sync refused on its reject
    rate or by the deletion safety stop (told by the exception, or by its text from the
    sensor), or one that failed."""
    from base.errors import RejectThresholdExceeded, SafetyStop

    if isinstance(error, RejectThresholdExceeded) or (
        isinstance(error, str) and "above the county's threshold" in error
    ):
        reasons = [("原因", cause)]
        if isinstance(error, RejectThresholdExceeded):
            counts = f"（{error.rejected}/{error.total} 条）" if error.rejected is not None else ""
            reasons = [
                (
                    "原因",
                    f"拒收率 {error.rate:.1%}{counts} 超过本县阈值 {error.threshold:.1%}，本次数据未入库",
                ),
                ("主要原因", _reasons(error.top_reasons)),
            ]
        next_step = (
            "请按主要原因在县平台上修正记录（逐条记录见每周数据质量报告或 ops.reject），"
            f"修正后重新同步；{rerun}。"
        )
        return "refused", f"{name} 同步被拒绝：拒收率超过阈值", reasons, next_step
    if isinstance(error, SafetyStop) or (isinstance(error, str) and "safety stop" in error):
        reasons = [("原因", cause)]
        if isinstance(error, SafetyStop):
            reasons = [
                (
                    "原因",
                    f"本次同步将删除 {error.disappearing}/{error.live} 条 {error.entity} 记录，"
                    f"超过允许的 {error.limit_share:.0%}，本次数据未入库",
                )
            ]
        next_step = (
            "请先核实县平台是否确实删除了这些记录（常见原因是平台只返回了部分数据）；"
            "若删除属实，请工程师提高上限后重新合并："
            f"hub sync {slug} --mode full --safety-share 0.6。"
        )
        return "refused", f"{name} 同步被拒绝：删除数量异常（安全停止）", reasons, next_step
    next_step = (
        f"请检查县平台是否可以访问、接口地址和账号密钥是否有效、上传的文件是否完整；{rerun}。"
    )
    return "failed", f"{name} 同步失败", [("原因", cause)], next_step


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def spike_notice(county, rate, baseline, syncs, sync_run_id, run_id) -> Notice:
    return Notice(
        county=county,
        kind="reject_spike",
        title=f"{county.name} 拒收率较近7天翻倍",
        lines=[
            *_county_lines(county),
            ("原因", f"本次同步拒收率 {rate:.1%}，近 7 天 {syncs} 次同步平均 {baseline:.1%}"),
            ("同步批次", sync_run_id),
        ],
        next_step="请查看本次同步的拒收记录（ops.reject 或每周数据质量报告），在县平台上修正。",
        link=run_link(run_id) or f"同步批次 {sync_run_id}",
        key=f"spike:{county.slug}:{sync_run_id}",
        signature=f"reject_spike:{county.slug}",
    )


def freshness_window(county) -> timedelta:
    """The fail window of the county's freshness (its connector's, which the assets' freshness
    policy in pipelines/defs/counties.py uses too)."""
    return connector_for(county).freshness_fail


def stale_notice(county, last: datetime, window: timedelta, now: datetime) -> Notice:
    hours = (now - last).total_seconds() / 3600
    late = f"{hours / 24:.1f} 天" if hours >= 48 else f"{hours:.1f} 小时"
    limit = f"{window.days}天" if window.days else f"{window.seconds // 3600}小时"
    what = connector_for(county).stale_hint_zh
    return Notice(
        county=county,
        kind="stale",
        title=f"{county.name} 数据超过{limit}未更新",
        lines=[
            *_county_lines(county),
            (
                "原因",
                f"最近一次成功同步在 {last.astimezone(BEIJING):%Y-%m-%d %H:%M}，已过 {late}，"
                f"超过时效要求 {limit}",
            ),
        ],
        next_step=f"{what}；恢复后同步会自动进行，也可在 Dagster 中运行 sync_{county.slug}。",
        link=run_link(None)
        or (os.environ.get("HUB_DAGSTER_URL") or DEFAULT_DAGSTER_URL).rstrip("/")
        + f"/assets/{county.slug}",
        key=f"stale:{county.slug}:{last.isoformat()}",
        signature=f"stale:{county.slug}",
    )
