"""Shared parts of the end-to-end benchmarks: the simulator, throw-away homes, memory sampling,
and running Dagster jobs in a worker process.

Every measured sync runs in a fresh worker process (``python bench/_common.py run ...``)
with its own HUB_HOME and DAGSTER_HOME: Dagster's multiprocess executor forks its step
processes from a forkserver that keeps the environment it started with, so one process
cannot run two syncs against two different homes. The simulator serves from a thread of the
driver process, so its memory and CPU are not counted as the hub's.

Nothing is written into the repository: homes are temp directories (deleted afterwards
unless ``--keep``), results go to ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# The simulator (driver side)
# ---------------------------------------------------------------------------------------------


def start_simulator(seed: int = 7, scale: float = 1.0, slugs: list[str] | None = None):
    """The simulator in a thread of this process, its counties generated and their listings
    rendered before any clock starts (a county's world is built on first access and each
    listing on its first request, which would otherwise be timed as the platform's serving)."""
    sys.path.insert(0, str(REPO))
    from seeds.registry import counties
    from simulator.embedded import start_in_thread

    started = time.perf_counter()
    sim = start_in_thread(seed=seed, scale=scale)
    for county in counties():
        if slugs is None or county.slug in slugs:
            with sim.world.lock:
                sim.world.records(county.code, "household")
    sim.prepare(slugs)  # rendering a county builds its world: only the counties asked for
    print(
        f"simulator {sim.url} (seed {seed}, scale {scale}) ready in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return sim


# ---------------------------------------------------------------------------------------------
# Memory of the process tree below this process, sampled from /proc (psutil is not installed)
# ---------------------------------------------------------------------------------------------


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:", "RssFile:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def _cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (its own threads, not its children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, depth) of every process below ``root`` (its children have depth 1)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: fields follow the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [(root, 0)]
    while todo:
        parent, depth = todo.pop()
        for child in children.get(parent, []):
            out.append((child, depth + 1))
            todo.append((child, depth + 1))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


PSS_EVERY = 4  # TreeMemory: the tree's PSS on every 4th sample (once a second)


@dataclass
class TreeMemory:
    """Peak memory of every process below ``root`` while the sampler runs.

    Below the driver: the worker (depth 1: it orchestrates the run), the executor's forkserver
    (depth 2) and the step processes it forks (depth 3 and more).
    ``peak_mb(depth)``: the largest peak RSS (VmHWM, kept by the kernel, so a peak between two
    samples is not missed as long as the process is sampled once before it exits).
    ``peak_tree_pss_mb``: the largest sum of PSS over the tree at one sample, taken once a
    second (pages that forked step processes share with the forkserver are counted once, split
    among the sharers).
    ``file_kb``: a process's file-backed resident pages (RssFile: the mapped code of Python,
    polars, DuckDB…, shared page cache) at the sample that saw its peak rise. How many of them
    a process maps depends on the kernel (how much it maps around a fault), not on the hub:
    the same code's steps peaked 296–311 MB at scale 1 on one machine of this kind and
    359–366 MB on another (bench/history.md, "This machine's RSS").
    """

    root: int = field(default_factory=os.getpid)
    interval: float = 0.25
    hwm_kb: dict[int, int] = field(default_factory=dict)
    file_kb: dict[int, int] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    peak_tree_pss_kb: int = 0
    samples: int = 0
    cpu_s: float = 0.0  # the sampler thread's own CPU (it runs in the driver, beside the simulator)
    #: a process's CPU seconds (utime + stime) at its last sample: up to one interval short
    pid_cpu_s: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def _sample(self) -> None:
        # PSS (smaps_rollup: the kernel walks every page table) costs ~10x the status lines;
        # on every sample it took 2.2 CPU-s of a 30 s incremental from the 2 cores the hub
        # runs on. VmHWM needs a sample per process lifetime (the kernel keeps the peak), the
        # tree's PSS a sum at one moment: taken on every PSS_EVERY-th sample.
        with_pss = self.samples % PSS_EVERY == 0
        pss_total = 0
        for pid, depth in _descendants(self.root):
            try:
                status = _status_kb(pid)
                pss_total += _pss_kb(pid) if with_pss else 0
                self.pid_cpu_s[pid] = _cpu_s(pid)
            except (OSError, ValueError):
                continue  # exited between listing and reading
            if "VmHWM" in status and status["VmHWM"] > self.hwm_kb.get(pid, 0):
                self.hwm_kb[pid] = status["VmHWM"]
                self.file_kb[pid] = status.get("RssFile", 0)
                self.names.setdefault(pid, _cmdline(pid))
                self.depth[pid] = depth
        self.peak_tree_pss_kb = max(self.peak_tree_pss_kb, pss_total)
        self.samples += 1

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)
        self.cpu_s = time.thread_time() - started

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, min_depth: int, max_depth: int = 99) -> float:
        kb = [v for pid, v in self.hwm_kb.items() if min_depth <= self.depth[pid] <= max_depth]
        return max(kb, default=0) / 1024

    @property
    def peak_tree_pss_mb(self) -> float:
        return self.peak_tree_pss_kb / 1024

    def largest(self, n: int = 4) -> list[tuple[float, int, str]]:
        top = sorted(self.hwm_kb.items(), key=lambda kv: -kv[1])[:n]
        return [(kb / 1024, self.depth[pid], self.names.get(pid, "?")) for pid, kb in top]


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def self_peak_mb() -> float:
    """Peak RSS of this process (it hosts the simulator thread)."""
    return _status_kb(os.getpid()).get("VmHWM", 0) / 1024


# ---------------------------------------------------------------------------------------------
# Running jobs in a worker process with fresh homes
# ---------------------------------------------------------------------------------------------


def fresh_homes(prefix: str = "hub-bench-") -> tuple[Path, dict[str, str]]:
    """A temp directory holding HUB_HOME and a DAGSTER_HOME with the repo's dagster.yaml."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    hub_home, dagster_home = base / "hub", base / "dagster"
    hub_home.mkdir()
    dagster_home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    return base, {"HUB_HOME": str(hub_home), "DAGSTER_HOME": str(dagster_home)}


def run_measured(cmd: list[str], env: dict, cwd: Path | str, log: Path):
    """Run ``cmd`` (output to ``log``); (exit code, wall seconds, rusage of it and of every
    descendant it reaped). Use the rusage for CPU seconds only: its ru_maxrss starts from this
    process's RSS at fork (the simulator's world), so memory is sampled by ``TreeMemory``."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        # os.wait4: this child's rusage only, not that of every child of this process so far
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    return proc.returncode, time.perf_counter() - started, usage


def python_under_time_v(code: str, env: dict, cwd: Path | str) -> dict:
    """Run ``python -c code`` under ``/usr/bin/time -v``: the JSON it printed after ``RESULT ``,
    with its CPU seconds (``cpu_s``) and peak RSS (``peak_rss_mb``) from ``time``'s report."""
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-4000:])
    err = proc.stderr
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", err).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", err).group(1))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    return {**result, "cpu_s": round(user + system, 2), "peak_rss_mb": round(rss_kb / 1024)}


def run_jobs(
    sim, jobs: list[tuple[str, str | None]], keep: bool = False, home: Path | None = None
) -> dict:
    """Run ``jobs`` ([(job name, landing mode or None)]) one after the other in a fresh worker
    process against ``sim``; returns the worker's report plus the memory of its process tree.
    ``home``: the base directory of an earlier ``fresh_homes()`` to run in again (the caller
    deletes it); by default a fresh one, deleted afterwards unless ``keep``."""
    from simulator.embedded import env_for

    if home is None:
        base, homes = fresh_homes()
    else:
        base, keep = home, True
        homes = {"HUB_HOME": str(home / "hub"), "DAGSTER_HOME": str(home / "dagster")}
    env = {
        **os.environ,
        **env_for(sim.url),
        **homes,
        "HUB_PROFILE": "demo",  # simulated counties: the demo profile (base/settings.py)
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("HUB_WAREHOUSE", None)
    env.pop("HUB_SNAPSHOT", None)
    spec = json.dumps([{"job": j, "mode": m} for j, m in jobs])
    out_file = base / "report.json"
    log = base / "worker.log"
    driver_cpu = _self_cpu()
    try:
        with TreeMemory() as memory:
            code, wall, usage = run_measured(
                [sys.executable, str(BENCH / "_common.py"), "run", spec, str(out_file)],
                env=env,
                cwd=REPO,
                log=log,
            )
        if code != 0 or not out_file.exists():
            sys.stderr.write(log.read_text(errors="replace")[-6000:])
            raise SystemExit(f"benchmark worker failed (exit {code})")
        report = json.loads(out_file.read_text())
    finally:
        if keep and home is None:
            print(f"kept {base}")
        elif not keep:
            shutil.rmtree(base, ignore_errors=True)
    report["memory"] = {
        "peak_step_process_mb": round(memory.peak_mb(3), 1),
        "peak_forkserver_mb": round(memory.peak_mb(2, 2), 1),
        "peak_orchestrator_mb": round(memory.peak_mb(1, 1), 1),
        "peak_tree_pss_mb": round(memory.peak_tree_pss_mb, 1),
        "largest": [(round(mb, 1), depth, name) for mb, depth, name in memory.largest()],
        "peak_by_pid_mb": {str(pid): round(kb / 1024, 1) for pid, kb in memory.hwm_kb.items()},
        "file_at_peak_by_pid_mb": {
            str(pid): round(kb / 1024, 1) for pid, kb in memory.file_kb.items()
        },
        "samples": memory.samples,
        "sampler_cpu_s": round(memory.cpu_s, 2),
        "cpu_by_pid_s": {str(pid): round(s, 2) for pid, s in memory.pid_cpu_s.items()},
    }
    report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    report["process_wall_s"] = round(wall, 2)  # worker start (imports included) to exit
    # this process meanwhile: the simulator serving the pages, less the memory sampler's thread
    report["simulator_cpu_s"] = round(_self_cpu() - driver_cpu - memory.cpu_s, 1)
    return report


def hub_job(name: str):
    """Reconstructor of a job of ``pipelines.definitions`` (used by the step processes). In the
    worker, the executor's forkserver starts first, as in ``hub demo`` and a code server's run
    worker (``pipelines/forkserver.py``; a no-op in step processes and for ``sync_city``)."""
    from pipelines import forkserver

    forkserver.start_forkserver(name)
    from pipelines.definitions import defs

    return defs.resolve_job_def(name)


def _root_cause(error) -> str:
    """The innermost error of a Dagster step failure (the wrapper says only which op failed)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()[:2000]


def _step_pids(instance, run_id: str) -> dict[str, str]:
    """The process of each step of a run (its "Capturing logs for process (pid: …)" event)."""
    import dagster as dg

    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED):
        data = record.dagster_event.event_specific_data
        pid = re.search(r"\(pid: (\d+)\)", record.user_message or "")
        if pid and data is not None and len(data.step_keys or []) == 1:
            out[pid.group(1)] = data.step_keys[0]
    return out


SYNC_RUNS = """SELECT county_code, entity, fetched, accepted, rejected, findings, status,
                      sync_run_id
               FROM ops.sync_run ORDER BY county_code, entity"""


def _sync_runs() -> list[tuple]:
    """Every ops.sync_run row of the warehouse the runs wrote (the file, or the lake)."""
    import duckdb

    from base import paths, settings

    if settings.is_lake():  # the lake's catalog, as the pipeline opens it (HUB_LAKE_CATALOG)
        import warehouse

        with warehouse.connect(read_only=True) as con:
            return con.execute(SYNC_RUNS).fetchall()
    if paths.live_db().exists():
        with duckdb.connect(str(paths.live_db()), read_only=True) as con:
            return con.execute(SYNC_RUNS).fetchall()
    return []


def _worker(spec: str, out_file: str) -> None:
    """Run the jobs of ``spec`` in order; write timings, step stats and records as JSON."""
    import _timeline as timeline
    import dagster as dg

    instance = dg.DagsterInstance.get()
    runs = []
    for item in json.loads(spec):
        job, mode = item["job"], item["mode"]
        recon = dg.build_reconstructable_job(
            "_common",
            "hub_job",
            reconstructable_args=(job,),
            reconstructor_working_directory=str(BENCH),
        )
        run_config = {}
        if mode:
            from seeds.registry import counties

            selected = [c for c in counties() if job in ("sync_all_counties", f"sync_{c.slug}")]
            run_config = {
                "ops": {f"{c.slug}__landing": {"config": {"mode": mode}} for c in selected}
            }
        started = time.perf_counter()
        with dg.execute_job(recon, instance=instance, run_config=run_config) as result:
            success, run_id = result.success, result.run_id
            failures = [
                f"{e.step_key}: {_root_cause(e.event_specific_data.error)}"
                for e in result.all_events
                if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
            ]
        wall = time.perf_counter() - started
        stats = instance.get_run_stats(run_id)
        step_pids = _step_pids(instance, run_id)
        steps = [
            {
                "step": s.step_key,
                "status": s.status.value if s.status else None,
                "start": s.start_time,
                "end": s.end_time,
                "seconds": round((s.end_time or 0) - (s.start_time or 0), 3),
            }
            for s in instance.get_run_step_stats(run_id)
        ]
        runs.append(
            {
                "job": job,
                "run_id": run_id,
                "success": success,
                "failures": failures,
                "wall_s": round(wall, 3),
                "run_s": round(stats.end_time - stats.start_time, 3),
                "run_start": stats.start_time,
                "steps": sorted(steps, key=lambda s: s["start"] or 0),
                "step_pids": step_pids,
                "events": len(instance.all_logs(run_id)),
                "timeline": timeline.collect(instance, run_id),
            }
        )
    records = _sync_runs()
    Path(out_file).write_text(json.dumps({"runs": runs, "records": records}, default=str))
    # Stop the executor's forkserver and reap it (a private but stable multiprocessing API), so
    # its step processes' CPU time reaches this process's parent through wait4.
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def sync_arguments(description: str) -> argparse.Namespace:
    """The options every sync benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", default="full", choices=("full", "incremental"))
    parser.add_argument("--keep", action="store_true", help="keep the temp homes")
    return parser.parse_args()


def machine() -> dict:
    load = os.getloadavg()
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1_5_15": [round(x, 2) for x in load],
    }


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    return path


def step_peaks(report: dict, measure: str = "peak_by_pid_mb") -> dict[str, float]:
    """Peak RSS (MB) of each step process of the report's runs, by step key (``measure``
    ``file_at_peak_by_pid_mb``: its file-backed part at the peak; ``cpu_by_pid_s``: its CPU
    seconds at its last sample)."""
    by_pid = report["memory"].get(measure, {})
    return {
        step: by_pid[pid]
        for run in report["runs"]
        for pid, step in run.get("step_pids", {}).items()
        if pid in by_pid
    }


def idle_seconds(run: dict) -> float:
    """Seconds of the run during which no step was executing (run start to end minus the union
    of the steps' start-end intervals): Dagster's share on the critical path (run and process
    start, step launches, event writes)."""
    busy, reach = 0.0, run["run_start"]
    for step in sorted(run["steps"], key=lambda s: s["start"] or 0):
        if not (step["start"] and step["end"]):
            continue
        start, end = max(step["start"], reach), step["end"]
        if end > start:
            busy += end - start
            reach = end
    return run["run_s"] - busy


def phase_spans(steps: list[dict], suffix: str) -> tuple[float, float]:
    """(summed step seconds, wall span first start → last end) of the steps ending in suffix."""
    chosen = [s for s in steps if s["step"].endswith(suffix) and s["start"] and s["end"]]
    if not chosen:
        return 0.0, 0.0
    total = sum(s["end"] - s["start"] for s in chosen)
    span = max(s["end"] for s in chosen) - min(s["start"] for s in chosen)
    return total, span


def succeeded(report: dict) -> list[dict]:
    """The report's runs; stops the bench, naming the job and its failures, if one failed."""
    for run in report["runs"]:
        if not run["success"]:
            raise SystemExit(f"{run['job']} failed: " + "; ".join(run["failures"]))
    return report["runs"]


def city_phases(report: dict) -> dict:
    """What the city benches record of their runs (the county runs, then ``sync_city`` last):
    ``total_s`` from the first run's start to the last one's end (the worker runs them back to
    back), the landing and merge steps of the county runs summed and spanned (span < sum: they
    overlapped), each step's seconds and peak RSS, hub CPU and peak memory."""
    runs = succeeded(report)
    county_steps = [s for run in runs[:-1] for s in run["steps"]]
    landing_sum, landing_span = phase_spans(county_steps, "__landing")
    merge_sum, merge_span = phase_spans(county_steps, "_merge")
    return {
        "total_s": runs[-1]["run_start"] + runs[-1]["run_s"] - runs[0]["run_start"],
        "city_run_s": runs[-1]["run_s"],
        "landing_sum_s": landing_sum,
        "landing_span_s": landing_span,
        "merge_sum_s": merge_sum,
        "merge_span_s": merge_span,
        "steps": {s["step"]: s["seconds"] for run in runs for s in run["steps"]},
        "step_peak_mb": step_peaks(report),
        "step_file_at_peak_mb": step_peaks(report, "file_at_peak_by_pid_mb"),
        "step_cpu_s": step_peaks(report, "cpu_by_pid_s"),
        "cpu_s": report["cpu_s"],
        "simulator_cpu_s": report["simulator_cpu_s"],
        "peak_step_mb": report["memory"]["peak_step_process_mb"],
        "peak_tree_pss_mb": report["memory"]["peak_tree_pss_mb"],
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        _worker(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: _common.py run '<jobs json>' <report.json>  (used by the benches)")
