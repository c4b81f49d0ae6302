"""The city step alone after a one-day incremental: CPU seconds and peak RSS.

The demo (full sync of the seven counties, marts and snapshots) in a fresh home, the simulator's
clock one day on, an incremental sync of the seven counties; then the city step
(``rebuild_marts`` and ``publish_snapshots``) in a fresh process WITHOUT Dagster under
``/usr/bin/time -v`` (user + system CPU seconds, maximum resident set size), twice from the same
state:

* ``full``: ``publish_snapshots(delta=False)`` (a full rebuild of the analyst file), on a copy;
* ``delta``: the publish as the city step runs it (a row-level delta from the demo's snapshot
  when it can, see ``warehouse.snapshot_delta``), in the home itself.

Then one more day and incremental, and ``sync_city`` through Dagster (run and step times, peak
RSS of its step processes, CPU of the whole run including Dagster).

    .venv/bin/python bench/city_step.py [--scale 0.3] [--days 1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from _common import (
    REPO,
    fresh_homes,
    machine,
    python_under_time_v,
    run_jobs,
    save,
    start_simulator,
    step_peaks,
)

STEP = """
import json, resource, time
from base import settings
settings.load()
import warehouse
out = {}
t, c = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
with warehouse.connect() as con:
    warehouse.rebuild_marts(con)
c2 = resource.getrusage(resource.RUSAGE_SELF)
out["marts_s"] = round(time.perf_counter() - t, 2)
out["marts_cpu_s"] = round(c2.ru_utime + c2.ru_stime - c.ru_utime - c.ru_stime, 2)
t = time.perf_counter()
import os
try:
    published = warehouse.publish_snapshots(delta=os.environ["HUB_SNAPSHOT_DELTA"] != "0")
    out["analyst"] = published.as_metadata()
except AttributeError:  # a commit before the delta publish (no publish_snapshots)
    warehouse.publish_snapshot()
    out["analyst"] = "full (no delta on this commit)"
c3 = resource.getrusage(resource.RUSAGE_SELF)
out["publish_s"] = round(time.perf_counter() - t, 2)
out["publish_cpu_s"] = round(c3.ru_utime + c3.ru_stime - c2.ru_utime - c2.ru_stime, 2)
print("RESULT " + json.dumps(out, default=str))
"""


def _time_v(env: dict) -> dict:
    return python_under_time_v(STEP, env, REPO)


def measure_step(base: Path, variant: str) -> dict:
    """The city step alone in a fresh process: ``full`` on a copy of the home (a forced full
    rebuild), ``delta`` in the home itself (a delta publish needs the very file the last
    publish wrote, at its path)."""
    copy = base.with_name(base.name + f"-{variant}")
    if variant == "full":
        shutil.copytree(base / "hub", copy / "hub", symlinks=True)
    env = {
        **os.environ,
        "HUB_HOME": str((copy if variant == "full" else base) / "hub"),
        "HUB_PROFILE": "demo",
        "PYTHONPATH": str(REPO),
        "HUB_SNAPSHOT_DELTA": "0" if variant == "full" else "1",
    }
    for name in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT"):
        env.pop(name, None)
    load = os.getloadavg()[0]
    try:
        out = _time_v(env)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    out["load_1min_before"] = round(load, 2)
    print(f"city step alone, {variant}: {json.dumps(out, default=str)}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}", flush=True)
    sim = start_simulator(args.seed, args.scale)
    base, _ = fresh_homes()
    result: dict = {"args": vars(args), "machine": info}
    try:
        run_jobs(sim, [("sync_all_counties", "full"), ("sync_city", None)], home=base)
        print(f"demo done; clock +{args.days} day(s): {sim.advance(days=args.days)}", flush=True)
        run_jobs(sim, [("sync_all_counties", "incremental")], home=base)
        result["alone"] = {v: measure_step(base, v) for v in ("full", "delta")}
        # once more through Dagster, after another day (the step above published this one)
        print(f"clock +{args.days} day(s): {sim.advance(days=args.days)}", flush=True)
        run_jobs(sim, [("sync_all_counties", "incremental")], home=base)
        report = run_jobs(sim, [("sync_city", None)], home=base)
        (city,) = report["runs"]
        result["dagster"] = {
            "run_s": city["run_s"],
            "steps": {s["step"]: s["seconds"] for s in city["steps"]},
            "step_peak_mb": step_peaks(report),
            "cpu_s_incl_dagster": report["cpu_s"],
        }
        print(f"sync_city through Dagster: {json.dumps(result['dagster'])}", flush=True)
    finally:
        sim.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    result["load_avg_after"] = machine()["load_avg_1_5_15"]
    print(f"saved {save('city_step', result)}")


if __name__ == "__main__":
    main()
