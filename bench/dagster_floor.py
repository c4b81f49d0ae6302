"""The orchestration floor: the city's two jobs through Dagster with bodies that do nothing.

Runs ``sync_all_counties`` (incremental config, as the hourly/one-day incremental) and then
``sync_city`` exactly as ``make demo`` and the schedules run them — the hub's own job
definitions, executor (forkserver preloading ``pipelines.preload``), pools, asset checks, IO
manager and the repo's ``dagster.yaml`` on a fresh ``DAGSTER_HOME`` — but with every body's
work swapped for an instant stand-in (``bench/_floor_defs.py``). What is left is what Dagster
costs for the shape of a city sync, whatever the hub does inside the steps: the time a
sync cannot go below on this machine.

Reported per run (and as JSON in ``bench/results/dagster_floor-*.json``): wall time and
Dagster's run time, steps, events (by type), seconds with no step executing, and CPU seconds
of every process: the run worker (this benchmark's worker process, which launches and
orchestrates the run in-process like ``hub demo``), the forkserver (its preload), and the step
processes (all of them exactly, from ``wait4``; per step its CPU up to the body).

    .venv/bin/python bench/dagster_floor.py [--repeat 2] [--dagster-yaml dagster.yaml]
    .venv/bin/python bench/dagster_floor.py --jobs sync_luonan --mode full   # one county's job
    .venv/bin/python bench/dagster_floor.py --forkserver-at-first-step      # Dagster's own start
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import _timeline  # noqa: E402

JOBS = ("sync_all_counties", "sync_city")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(out_file: str, mode: str, jobs: str) -> None:
    """In a fresh process with fresh homes: run the two jobs, write what was measured."""
    started_cpu = _cpu(resource.RUSAGE_SELF)
    import dagster as dg

    from seeds.registry import counties

    instance = dg.DagsterInstance.get()
    imports_cpu = _cpu(resource.RUSAGE_SELF) - started_cpu
    runs = []
    for job in jobs.split(","):
        recon = dg.build_reconstructable_job(
            "_floor_defs",
            "floor_job",
            reconstructable_args=(job,),
            reconstructor_working_directory=str(BENCH),
        )
        landings = [  # the job's county landings take the mode: all of them, or sync_<slug>'s
            c.slug for c in counties() if job in ("sync_all_counties", f"sync_{c.slug}")
        ]
        config = {"ops": {f"{slug}__landing": {"config": {"mode": mode}} for slug in landings}}
        cpu_before, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
        with dg.execute_job(recon, instance=instance, run_config=config) as result:
            success, run_id = result.success, result.run_id
        wall = time.perf_counter() - t0
        stats = instance.get_run_stats(run_id)
        records = instance.all_logs(run_id)
        steps = [
            {"step": s.step_key, "start": s.start_time, "end": s.end_time}
            for s in instance.get_run_step_stats(run_id)
        ]
        run = {
            "job": job,
            "success": success,
            "wall_s": round(wall, 3),
            "run_s": round(stats.end_time - stats.start_time, 3),
            "run_start": stats.start_time,
            "steps": steps,
            "events": len(records),
            "events_by_type": dict(
                Counter(r.dagster_event.event_type_value for r in records if r.dagster_event)
            ),
            "worker_cpu_s": round(_cpu(resource.RUSAGE_SELF) - cpu_before, 3),
            "timeline": _timeline.collect(instance, run_id),
        }
        run["idle_s"] = round(_common.idle_seconds(run), 3)
        runs.append(run)
    from multiprocessing import forkserver

    server = forkserver._forkserver
    forkserver_cpu = _proc_cpu(server._forkserver_pid) if server._forkserver_pid else 0.0
    server._stop()  # reaps the forkserver: its CPU and its steps' reach RUSAGE_CHILDREN
    children_cpu = _cpu(resource.RUSAGE_CHILDREN)
    Path(out_file).write_text(
        json.dumps(
            {
                "runs": runs,
                "worker_imports_cpu_s": round(imports_cpu, 3),
                "worker_cpu_s": round(_cpu(resource.RUSAGE_SELF), 3),
                "forkserver_cpu_s": round(forkserver_cpu, 3),
                "steps_cpu_s": round(children_cpu - forkserver_cpu, 3),
                "worker_pid": os.getpid(),
            }
        )
    )


def _body_starts(log: Path) -> list[dict]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        step, pid, cpu = line.split("\t")
        out.append({"step": step, "pid": int(pid), "cpu_to_body_s": float(cpu)})
    return out


def measure(
    mode: str,
    dagster_yaml: Path,
    keep: bool,
    jobs: str = ",".join(JOBS),
    forkserver_at_first_step: bool = False,
) -> dict:
    import shutil

    base, homes = _common.fresh_homes("hub-floor-")
    shutil.copyfile(dagster_yaml, Path(homes["DAGSTER_HOME"]) / "dagster.yaml")
    body_log = base / "body-starts.tsv"
    env = {
        **os.environ,
        **homes,
        "HUB_PROFILE": "demo",
        "HUB_FLOOR_BODY_LOG": str(body_log),
        "HUB_FLOOR_FORKSERVER_AT_FIRST_STEP": "1" if forkserver_at_first_step else "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO), str(BENCH)])),
    }
    out_file = base / "report.json"
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", str(out_file), mode, jobs]
    with _common.TreeMemory() as memory:
        code, wall, usage = _common.run_measured(cmd, env, _common.REPO, base / "worker.log")
    if code != 0 or not out_file.exists():
        sys.stderr.write((base / "worker.log").read_text(errors="replace")[-6000:])
        raise SystemExit(f"floor worker failed (exit {code}); kept {base}")
    report = json.loads(out_file.read_text())
    report["body_starts"] = _body_starts(body_log)
    report["process_wall_s"] = round(wall, 2)
    report["total_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    report["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    report["peak_step_process_mb"] = round(memory.peak_mb(3), 1)
    report["peak_forkserver_mb"] = round(memory.peak_mb(2, 2), 1)
    report["dagster_yaml"] = str(dagster_yaml)
    if keep:
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return report


def show(i: int, r: dict) -> None:
    # step processes only: a step of the in-process executor (sync_city) runs in the worker
    starts = [s for s in r["body_starts"] if s["pid"] != r.get("worker_pid")]
    n_steps = len({s["pid"] for s in starts})
    to_body = [s["cpu_to_body_s"] for s in starts]
    print(
        f"run {i}: process {r['process_wall_s']:.1f} s, CPU {r['total_cpu_s']:.1f} s "
        f"(worker {r['worker_cpu_s']:.1f} of which imports {r['worker_imports_cpu_s']:.1f}, "
        f"forkserver {r['forkserver_cpu_s']:.1f}, {n_steps} step processes "
        f"{r['steps_cpu_s']:.1f} = {r['steps_cpu_s'] / max(n_steps, 1):.2f} each, "
        f"of which to the body {sum(to_body) / max(len(to_body), 1):.2f}); "
        f"load {r['load_1min_before_after'][0]} → {r['load_1min_before_after'][1]}"
    )
    for run in r["runs"]:
        print(
            f"  {run['job']}: run {run['run_s']:.2f} s (execute_job {run['wall_s']:.2f} s), "
            f"{len(run['steps'])} steps, {run['events']} events, "
            f"no step executing {run['idle_s']:.2f} s, worker CPU {run['worker_cpu_s']:.2f} s"
            + ("" if run["success"] else "  FAILED")
        )
        if run["job"] != "sync_city":  # one process: no launches, no chain
            print(_timeline.describe(run["timeline"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--mode", default="incremental", choices=("incremental", "full"))
    parser.add_argument("--dagster-yaml", type=Path, default=_common.REPO / "dagster.yaml")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--label", default="", help="a name for this variant in the results")
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated, in order")
    parser.add_argument(
        "--forkserver-at-first-step",
        action="store_true",
        help="do not start the executor's forkserver early (pipelines/forkserver.py): Dagster's own start",
    )
    args = parser.parse_args()
    reports = []
    for i in range(1, args.repeat + 1):
        report = measure(
            args.mode,
            args.dagster_yaml.resolve(),
            args.keep,
            args.jobs,
            args.forkserver_at_first_step,
        )
        show(i, report)
        reports.append(report)
    path = _common.save(
        "dagster_floor", {"machine": _common.machine(), "label": args.label, "runs": reports}
    )
    print(f"results: {path}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        _worker(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
