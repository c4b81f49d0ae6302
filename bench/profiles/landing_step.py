"""The landing step of one county alone (fetch → land → normalise → stage), measured in a fresh
process: peak RSS (VmHWM), CPU seconds, wall time and the staged rows. No warehouse, no Dagster.

The simulator serves from a thread of the driver, so its CPU and memory are not the hub's; the
measured step runs in a fresh ``python`` process (a forked child would inherit the driver's RSS).

    .venv/bin/python bench/profiles/landing_step.py [--county luonan] [--scale 1.0] [--repeat 1]
        [--profile pyinstrument|py-spy|memray]   # profile the step (output under bench/results/)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"


def vm_hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(slug: str, mode: str) -> None:
    """Run the landing step in this (fresh) process and print one JSON line of figures."""
    sys.path.insert(0, str(REPO))
    from pipelines import staged as staged_io
    from pipelines import sync
    from seeds.registry import county

    started, cpu0 = time.perf_counter(), time.process_time()
    landed = sync.land(county(slug), mode)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    header = json.loads((Path(landed.staged_path) / "staged.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "peak_rss_mb": round(vm_hwm_mb(), 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "step_cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "pages": landed.pages,
                "landed_mb": round(landed.bytes / 2**20, 1),
                "staged_rows": {k: v["rows"] for k, v in header["files"].items()},
                "staged_reader": staged_io.__name__,
            }
        ),
        flush=True,
    )


def measure(sim, slug: str, mode: str, profile: str | None = None) -> dict:
    """One landing of ``slug`` in a fresh process against ``sim``; its figures."""
    with tempfile.TemporaryDirectory(prefix="landing-step-") as home:
        env = {
            **os.environ,
            **sim.env(),
            "HUB_HOME": home,
            "PYTHONPATH": str(REPO),
        }
        cmd = [sys.executable, __file__, "--child", slug, "--mode", mode]
        if profile == "pyinstrument":
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"landing-{slug}-{time.strftime('%Y%m%dT%H%M%S')}.txt"
            cmd = [sys.executable, "-m", "pyinstrument", "-o", str(out), *cmd[1:]]
        elif profile == "py-spy":  # CPU samples only (idle threads left out): collapsed stacks
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"landing-{slug}-{time.strftime('%Y%m%dT%H%M%S')}.pyspy.txt"
            spy = Path(sys.executable).with_name("py-spy")
            cmd = [str(spy), "record", "-r", "200", "--format", "raw", "-o", str(out), "--", *cmd]
        elif profile == "memray":
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"landing-{slug}-{time.strftime('%Y%m%dT%H%M%S')}.memray"
            cmd = [sys.executable, "-m", "memray", "run", "--native", "-o", str(out), *cmd[1:]]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"landing failed:\n{done.stderr[-3000:]}")
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--county", default="luonan")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", choices=["pyinstrument", "py-spy", "memray"])
    parser.add_argument("--child", metavar="SLUG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode)
        return
    sys.path.insert(0, str(REPO))
    from simulator.embedded import start_in_thread

    load = os.getloadavg()
    sim = start_in_thread(seed=args.seed, scale=args.scale)
    try:
        code = sim.sim.county(args.county).code
        with sim.world.lock:  # build the county's world before anything is timed
            sim.world.records(code, "household")
        for i in range(args.repeat):
            figures = measure(sim, args.county, args.mode, args.profile)
            figures.update(scale=args.scale, county=args.county, load_before=load)
            print(json.dumps(figures), flush=True)
            if i == 0:
                load = os.getloadavg()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
