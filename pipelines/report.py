"""The run report of ``hub demo`` and every ``hub`` command that syncs: what THIS run did.

One row per county the run was asked to sync (and only those): its status — succeeded,
failed, refused, skipped or not configured — what the sync really was (``modes.mode_label``),
its counts (fetched, inserted, updated, unchanged, deleted, rejected, findings) and, when it
did not succeed, the one-line root cause. Nothing is read from earlier runs: the rows come from
this run's own Dagster events (or, for ``hub sync``, from the merge's own result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines.modes import mode_label
from seeds.registry import County

COUNTS = ("fetched", "inserted", "updated", "unchanged", "deleted", "rejected", "findings")
COUNT_ZH = {
    "fetched": "取回",
    "inserted": "新增",
    "updated": "更新",
    "unchanged": "未变",
    "deleted": "删除",
    "rejected": "拒收",
    "findings": "警告",
}
STATUS_ZH = {
    "succeeded": "成功",
    "failed": "失败",
    "refused": "拒绝合并",
    "skipped": "未运行",
    "not configured": "未配置",
}
STATUS_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "refused": "bold red",
    "skipped": "yellow",
    "not configured": "yellow",
}
#: Statuses that make the command exit non-zero.
FAILING = ("failed", "refused")
INTERRUPTED = "interrupted (Ctrl-C) before this county's merge committed"


@dataclass
class CountyOutcome:
    county: County
    status: str  # succeeded / failed / refused / skipped / not configured
    mode: str | None = None  # the mode the sync ran in (a first sync is always full)
    counts: dict[str, int] = field(default_factory=dict)
    cause: str | None = None  # one line, for everything but succeeded
    seconds: float | None = None
    sync_id: str | None = None  # the landing's sync id (= ops.sync_run.sync_run_id of its merge)

    @property
    def merged(self) -> bool:
        return self.status == "succeeded"

    @property
    def mode_text(self) -> str:
        return mode_label(self.county, self.mode) if self.mode else ""


def one_line(message: str | None, limit: int = 400) -> str:
    """The first line of an error message, shortened: the root cause, not the stack."""
    line = next((ln.strip() for ln in (message or "").splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def sum_counts(per_entity: Iterable[Mapping[str, object]]) -> dict[str, int]:
    out = dict.fromkeys(COUNTS, 0)
    for counts in per_entity:
        for name in COUNTS:
            value = counts.get(name)
            if isinstance(value, int | float):
                out[name] += int(value)
    return out


def exit_code(outcomes: Iterable[CountyOutcome]) -> int:
    """1 when any county failed or was refused, else 0."""
    return 1 if any(o.status in FAILING for o in outcomes) else 0


def table(outcomes: list[CountyOutcome], title: str) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("县区\ncounty", no_wrap=True)
    t.add_column("状态\nstatus", no_wrap=True)
    t.add_column("方式\nmode", no_wrap=True)
    for name in COUNTS:
        t.add_column(f"{COUNT_ZH[name]}\n{name}", justify="right", no_wrap=True)
    t.add_column("秒\ns", justify="right", no_wrap=True)
    for o in outcomes:
        status = Text(f"{STATUS_ZH[o.status]} {o.status}", style=STATUS_STYLE[o.status])
        counts = [f"{o.counts[n]:,}" if n in o.counts else "" for n in COUNTS]
        seconds = f"{o.seconds:.1f}" if o.seconds is not None else ""
        t.add_row(o.county.name, status, o.mode_text, *counts, seconds)
    return t


def causes(outcomes: list[CountyOutcome]) -> list[str]:
    """One line per county that did not succeed: its root cause."""
    return [
        f"{o.county.name} {STATUS_ZH[o.status]} {o.status}: {o.cause}"
        for o in outcomes
        if o.status != "succeeded" and o.cause
    ]


def print_report(console: Console, outcomes: list[CountyOutcome], title: str) -> None:
    console.print(table(outcomes, title))
    for line in causes(outcomes):
        console.print(Text(line, style="red" if line.split(":")[0].endswith(FAILING) else ""))


def interrupted_line(outcomes: list[CountyOutcome]) -> str:
    """What an interrupted run did and did not merge (each county's merge is one transaction)."""
    merged = [o.county.name for o in outcomes if o.merged]
    not_merged = [o.county.name for o in outcomes if not o.merged]
    return (
        "Interrupted (Ctrl-C) 已中断: "
        f"merged 已合并: {', '.join(merged) or 'none 无'}; "
        f"not merged 未合并 (their data is as before 数据未变): {', '.join(not_merged) or 'none 无'}. "
        "The city step (marts, snapshot) did not run 未重建市级汇总和快照."
    )


# ---------------------------------------------------------------------------------------------
# From a Dagster run of county syncs (sync_all_counties, a county job, the schedules' jobs)


def root_error(error):
    """The hub's own error under Dagster's wrappers."""
    while error is not None and error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error


def _interrupt(error) -> bool:
    names = set()
    while error is not None:
        names.add(error.cls_name)
        error = error.cause
    return bool(
        names
        & {"DagsterExecutionInterruptedError", "KeyboardInterrupt", "ChildProcessCrashException"}
    )


def from_dagster_run(
    instance, run_id: str, selected: list[County], mode: str | None = None
) -> list[CountyOutcome]:
    """The outcome of each selected county in one Dagster run, from that run's events only."""
    by_step: dict[str, list] = {}
    times: dict[str, list[float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key:
            by_step.setdefault(event.step_key, []).append(event)
            slug = event.step_key.removesuffix("__landing").removesuffix("_merge")
            times.setdefault(slug, []).append(record.timestamp)
    outcomes = [_county_outcome(c, by_step, mode) for c in selected]
    for o in outcomes:
        stamps = times.get(o.county.slug)
        if o.merged and stamps:  # from the landing's start to the merge's end
            o.seconds = max(stamps) - min(stamps)
    return outcomes


def _county_outcome(county: County, by_step: dict[str, list], mode: str | None) -> CountyOutcome:
    """``mode``: the mode asked for; the landing's metadata says the mode it really ran in."""
    landing = by_step.get(f"{county.slug}__landing", [])
    merge = by_step.get(f"{county.slug}_merge", [])
    sync_id = None
    for event in landing:
        if event.is_step_materialization:
            meta = event.step_materialization_data.materialization.metadata
            mode = _value(meta.get("mode"))
            sync_id = _value(meta.get("sync_run_id"))
    outcome = CountyOutcome(county, "skipped", mode=mode, cause="not run 未运行", sync_id=sync_id)
    for step in (landing, merge):
        failure = next((e for e in step if e.is_step_failure), None)
        if failure is not None:
            error = failure.step_failure_data.error
            if _interrupt(error):
                outcome.cause = INTERRUPTED
                return outcome
            root = root_error(error)
            refused = root is not None and root.cls_name == "RejectThresholdExceeded"
            unset = root is not None and root.cls_name == "NotConfigured"  # production profile
            outcome.status = "refused" if refused else "not configured" if unset else "failed"
            outcome.cause = one_line(_without_class(root) if root else "step failed")
            if refused:
                outcome.counts = _refused_counts(merge)
            return outcome
    if any(e.is_step_success for e in merge):
        materialized = [
            e.step_materialization_data.materialization.metadata
            for e in merge
            if e.is_step_materialization
        ]
        outcome.status, outcome.cause = "succeeded", None
        outcome.counts = sum_counts({k: _value(v) for k, v in m.items()} for m in materialized)
    elif landing or merge:
        outcome.cause = INTERRUPTED
    return outcome


def confirm_commits(outcomes: list[CountyOutcome], db) -> None:
    """A merge commits before its step reports success (checks and the rejects file follow), so
    an interrupted step may have merged: ask the warehouse, whose word is final."""
    import duckdb

    pending = {o.sync_id: o for o in outcomes if not o.merged and o.sync_id}
    if not pending:
        return
    try:
        con = duckdb.connect(str(db), read_only=True)
    except (duckdb.Error, OSError):
        return  # another writer holds it: keep what the events say
    with con:
        placeholders = ", ".join("?" for _ in pending)
        rows = con.execute(
            f"""
            SELECT sync_run_id, sum(fetched), sum(inserted), sum(updated), sum(unchanged),
                   sum(deleted), sum(rejected), sum(findings)
            FROM ops.sync_run
            WHERE status = 'succeeded' AND sync_run_id IN ({placeholders})
            GROUP BY sync_run_id
            """,
            list(pending),
        ).fetchall()
    for sync_id, *counts in rows:
        outcome = pending[sync_id]
        outcome.status, outcome.cause = "succeeded", None
        outcome.counts = {n: int(v or 0) for n, v in zip(COUNTS, counts, strict=True)}


def _without_class(error) -> str:
    """Dagster's message of an exception starts with ``module.Class: ``; the hub's own
    messages already say what happened where."""
    message = error.message.strip()
    head, sep, rest = message.partition(": ")
    return rest if sep and head.split(".")[-1] == error.cls_name else message


def _refused_counts(merge_events: list) -> dict[str, int]:
    for event in merge_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            meta = event.event_specific_data.metadata
            if "rejected" in meta:
                return {
                    "fetched": int(_value(meta["records"])),
                    "rejected": int(_value(meta["rejected"])),
                }
    return {}


def _value(entry):
    """The plain value of a Dagster metadata entry (or the value itself)."""
    return getattr(entry, "value", entry)
