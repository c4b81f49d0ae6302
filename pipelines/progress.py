"""One live line per county while a Dagster run syncs them: landing (pages, records), merging,
done or failed.

The steps run in other processes, so this watches what they leave behind rather than asking
them: the run's step events in the Dagster instance, and the county's landing directory (the
page journal grows as pages arrive; the staged frames appear once they are normalised). It only
reads, so it cannot slow a step down or change what it does.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from base import paths
from pipelines.landing import PARTIAL
from seeds.registry import County

POLL_SECONDS = 0.5


def _landing_dir(county: County, since: float) -> Path | None:
    """The newest landing directory of ``county`` created after ``since`` (this run's)."""
    root = paths.landing_dir() / county.slug
    if not root.exists():
        return None
    dirs = [d for d in root.iterdir() if d.is_dir() and d.stat().st_mtime >= since - 1]
    return max(dirs, key=lambda d: d.name) if dirs else None


def _pages(landing: Path) -> int:
    manifest = landing / "manifest.json"
    try:
        if manifest.exists():
            return len(json.loads(manifest.read_text("utf-8"))["pages"])
        with (landing / PARTIAL).open("rb") as f:
            return sum(1 for _ in f)
    except (OSError, ValueError, KeyError):
        return 0


def _records(landing: Path) -> int | None:
    """Rows normalised from this landing, once its staged frames exist."""
    import pyarrow.parquet as pq

    staged = landing / "staged"
    if not (staged / "staged.json").exists():
        return None
    try:
        return sum(pq.read_metadata(f).num_rows for f in staged.glob("frame.*.parquet"))
    except OSError:
        return None


class RunProgress:
    """Live lines for the counties of the run of ``job_name`` started after now."""

    def __init__(self, console: Console, instance, job_name: str, selected: list[County]):
        self.console = console
        self.instance = instance
        self.job_name = job_name
        self.selected = selected
        self.started = time.time()
        self.run_id: str | None = None
        self.lines = {c.slug: "waiting 等待" for c in selected}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub-progress", daemon=True)
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> RunProgress:
        self._live.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # a last look must not hide the run's outcome
            self._update()
        self._live.update(self._render())
        self._live.__exit__(*exc)
        self.console.print()

    def _render(self) -> Table:
        t = Table.grid(padding=(0, 2))
        t.add_column()
        t.add_column()
        for c in self.selected:
            t.add_row(c.name, self.lines[c.slug])
        return t

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._update()
            except Exception:  # the instance may be busy (sqlite); try again next tick
                continue
            self._live.update(self._render())

    def _find_run(self) -> str | None:
        import dagster as dg

        runs = self.instance.get_runs(filters=dg.RunsFilter(job_name=self.job_name), limit=1)
        if runs and runs[0].run_id and self._created(runs[0]) >= self.started - 1:
            return runs[0].run_id
        return None

    def _created(self, run) -> float:
        record = self.instance.get_run_record_by_id(run.run_id)
        return record.create_timestamp.timestamp() if record else 0.0

    def _update(self) -> None:
        if self.run_id is None:
            self.run_id = self._find_run()
            if self.run_id is None:
                return
        steps: dict[str, str] = {}
        for record in self.instance.all_logs(self.run_id):
            event = record.dagster_event
            if event is None or not event.step_key:
                continue
            kind = event.event_type_value
            if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                steps[event.step_key] = kind
        for c in self.selected:
            self.lines[c.slug] = self._line(c, steps)

    def _line(self, county: County, steps: dict[str, str]) -> str:
        landing = steps.get(f"{county.slug}__landing")
        merge = steps.get(f"{county.slug}_merge")
        if "STEP_FAILURE" in (landing, merge):
            return "[red]failed 失败[/red] (see the report below)"
        if merge == "STEP_SUCCESS":
            return "[green]done 完成[/green]"
        if merge == "STEP_START":
            return "merging 合并中 …"
        if merge == "STEP_SKIPPED" or landing == "STEP_SKIPPED":
            return "[yellow]skipped 未运行[/yellow]"
        if landing is None:
            return "waiting 等待"
        directory = _landing_dir(county, self.started)
        pages = _pages(directory) if directory else 0
        records = _records(directory) if directory else None
        if landing == "STEP_SUCCESS":
            return f"landed 已取回: {pages:,} pages, {records or 0:,} records; waiting to merge 等待合并"
        if records is not None:
            return f"landing 取回中: {pages:,} pages, {records:,} records normalised"
        return f"landing 取回中: {pages:,} pages"
