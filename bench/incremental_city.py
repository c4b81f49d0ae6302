"""One day of the city, incrementally: the demo (full sync of all seven counties, marts and
snapshots), then the simulator's clock one day on, then an incremental sync of every county with
marts and snapshots, timed.

Both phases run in one HUB_HOME and DAGSTER_HOME (the incremental resumes from the demo's
watermarks), each in a fresh worker process as ``hub demo`` and the schedules run them
(``sync_all_counties`` then ``sync_city``, the repo's executor and ``dagster.yaml``). The clock
moves in-process (``SimulatorHandle.advance``, as the tests do): one simulated day of changes,
new households and members, exits, deletions, and the weekly workbook export when one falls due.

After the clock moved the simulator renders every listing again before the incremental is
timed (``SimulatorHandle.prepare``, as ``start_simulator`` does before the demo): a platform's
rows are in its database before the hub asks, while the simulator would otherwise build a
county's whole listing on the first request after its clock moved (~2.9 CPU-s for the city at
scale 1.0, counted as the platform's serving). The time it takes is printed; ``--cold`` leaves
that rendering to the first requests, as before.

``--mode full`` makes the day's sync the nightly full instead (every record of every county
read again; the analyst publish then restamps every row it holds: the city step's worst day).
The floor is the incremental's: it is not measured with ``--mode full``.

The floor (``--floor N``, default 2; 0 skips it), three parts measured after the day:
- the platforms' CPU while they served the incremental (the simulator shares the cores; by
  county from its handlers);
- the two jobs run ``N`` times with instant bodies (``dagster_floor.measure``: the hub's own
  executor, pools, checks and events; the least of the runs);
- the client's CPU of 商州's re-read alone, fetched and parsed, nothing kept
  (``_reread_floor.py``: its v2 platform has no time filter).
Their sum over the cores is the wall no hub code can go below on this machine with this job
shape (bench/README.md, "The incremental's floor").

    .venv/bin/python bench/incremental_city.py [--scale 1.0] [--repeat 1] [--days 1] [--cold]
        [--mode incremental|full]
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from collections import defaultdict

from _common import (
    REPO,
    city_phases,
    fresh_homes,
    machine,
    run_jobs,
    save,
    start_simulator,
)
from _floors import run_floor
from _timeline import describe
from dagster_floor import measure as measure_floor


def summarise(report: dict, before: set[str]) -> dict:
    phases = city_phases(report)
    counties_run, city_run = report["runs"]
    rows = [r for r in report["records"] if r[-1] not in before]
    return {
        **phases,
        "fetched": sum(r[2] or 0 for r in rows),
        "accepted": sum(r[3] or 0 for r in rows),
        "counties_run_s": counties_run["run_s"],
        "events": counties_run["events"] + city_run["events"],
    }


def tally_serving(sim) -> dict[tuple[str, str], list[float]]:
    """Wrap every platform's handler to add up, per (county, endpoint label), the requests and
    the CPU their threads spent in it (``time.thread_time``: the HTTP exchange around the
    handler is not in it). Returns the live tally; reset it with ``.clear()``."""
    tally: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    lock = threading.Lock()
    for slug, platform in sim.sim.platforms.items():

        def handle(req, _handle=platform.handle, _platform=platform, _slug=slug):
            started = time.thread_time()
            try:
                return _handle(req)
            finally:
                spent = time.thread_time() - started
                with lock:
                    entry = tally[(_slug, _platform.classify(req) or "other")]
                    entry[0] += 1
                    entry[1] += spent

        platform.handle = handle
    return tally


def print_floor(s: dict, tally: dict, floors: list[dict], reread: dict, cores: int) -> dict:
    """The incremental's floor: the platforms' CPU + the two jobs with instant bodies + the
    client's CPU of 商州's re-read."""
    by_county: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for (slug, _label), (n, cpu) in tally.items():
        by_county[slug][0] += n
        by_county[slug][1] += cpu
    print(
        f"    the platforms served {sum(n for n, _ in by_county.values()):,} requests, "
        f"{s['simulator_cpu_s']:.1f} CPU-s (in their handlers: "
        + ", ".join(f"{k} {n:,.0f} / {c:.2f}" for k, (n, c) in sorted(by_county.items()))
        + ")",
        flush=True,
    )
    dagster = min(f["total_cpu_s"] for f in floors)
    # after its imports: a step process has polars and requests from the forkserver's preload,
    # which the instant-body runs already count
    client = reread["own_cpu_s"]
    total = dagster + s["simulator_cpu_s"] + client
    print(
        f"    商州's re-read alone, fetched and parsed: {reread['records']:,} records, "
        f"{reread['pages']} pages in {reread['seconds']:.1f} s, client {client:.2f} CPU-s "
        f"after its imports (fetch {reread['fetch_s']:.1f} s, parse {reread['parse_s']:.1f} s)\n"
        "    floor: the two jobs with instant bodies "
        + " / ".join(f"{f['total_cpu_s']:.1f}" for f in floors)
        + f" CPU-s (least {dagster:.1f}) + the platforms {s['simulator_cpu_s']:.1f} + 商州's "
        f"re-read {client:.1f} = {total:.1f} CPU-s: ≥ {total / cores:.1f} s of wall "
        f"on {cores} cores",
        flush=True,
    )
    return {
        "serving": {f"{k[0]}:{k[1]}": v for k, v in tally.items()},
        "reread": reread,
        "floor_runs_cpu_s": [f["total_cpu_s"] for f in floors],
        "floor_cpu_s": round(total, 2),
        "floor_wall_s": round(total / cores, 2),
    }


def prepare(sim, phase: str, cold: bool) -> None:
    """The platforms' listings rendered for the simulator's clock before a phase is timed."""
    if cold:
        return
    started = time.perf_counter()
    sim.prepare()
    print(
        f"platforms' listings rendered for the {phase} in "
        f"{time.perf_counter() - started:.1f} s (not timed)",
        flush=True,
    )


def one_day(sim, args, i: int, tally: dict) -> tuple[dict, dict, set[str]]:
    """The demo, the clock +days, the incremental: the two reports and the demo's run ids."""
    base, _ = fresh_homes()
    try:
        demo = run_jobs(sim, [("sync_all_counties", "full"), ("sync_city", None)], home=base)
        before = {r[-1] for r in demo["records"]}
        advanced = sim.advance(days=args.days)
        print(f"#{i}: demo done; clock +{args.days} day(s): {advanced}", flush=True)
        prepare(sim, args.mode, args.cold)
        tally.clear()
        report = run_jobs(sim, [("sync_all_counties", args.mode), ("sync_city", None)], home=base)
    finally:
        if args.keep:
            print(f"kept {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return demo, report, before


def print_day(i: int, args, demo: dict, report: dict, s: dict, full: dict) -> None:
    print(
        f"#{i}: the demo (full, scale {args.scale}): {full['fetched']:,} records in "
        f"{full['total_s']:.1f} s; CPU hub {full['cpu_s']:.1f} s; peak step RSS "
        f"{full['peak_step_mb']:.0f} MB ("
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(full["step_peak_mb"].items()))
        + ")",
        flush=True,
    )
    print(
        f"#{i}: {args.mode} of the seven counties + marts + snapshots: "
        f"{s['total_s']:.1f} s (sync_all_counties {s['counties_run_s']:.1f} s + "
        f"sync_city {s['city_run_s']:.1f} s), {s['fetched']:,} records fetched\n"
        f"    landing steps {s['landing_sum_s']:.1f} s summed over "
        f"{s['landing_span_s']:.1f} s | merge steps {s['merge_sum_s']:.1f} s summed over "
        f"{s['merge_span_s']:.1f} s | {s['events']} Dagster events\n"
        f"    CPU: hub {s['cpu_s']:.1f} s, simulator {s['simulator_cpu_s']:.1f} s; "
        f"peak step RSS {s['peak_step_mb']:.0f} MB\n"
        "    steps: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in s["steps"].items())
        + "\n    peak RSS by step: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(s["step_peak_mb"].items())),
        flush=True,
    )
    print("    the demo's (full) sync_all_counties from its event log:", flush=True)
    print(describe(demo["runs"][0]["timeline"]), flush=True)
    print(f"    the day's ({args.mode}) sync_all_counties from its event log:", flush=True)
    print(describe(report["runs"][0]["timeline"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument(
        "--mode",
        choices=["incremental", "full"],
        default="incremental",
        help="the day's sync: the hourly incremental, or the nightly full (every row re-read)",
    )
    parser.add_argument(
        "--floor", type=int, default=2, help="runs of the incremental's floor; 0: none"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp home")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="after the clock moved, leave the rendering of listings to the first requests",
    )
    args = parser.parse_args()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}", flush=True)
    sim = start_simulator(args.seed, args.scale)
    tally = tally_serving(sim)
    results = []
    try:
        for i in range(1, args.repeat + 1):
            demo, report, before = one_day(sim, args, i, tally)
            serving = {key: list(entry) for key, entry in tally.items()}  # the day's alone
            s = summarise(report, before)
            full = summarise(demo, set())
            results.append(
                {
                    **s,
                    "full": {
                        **{k: v for k, v in full.items() if k != "steps"},
                        "timeline": demo["runs"][0]["timeline"],  # the full sync_all_counties
                    },
                    "load_avg_after": machine()["load_avg_1_5_15"],
                    "raw": report,
                }
            )
            print_day(i, args, demo, report, s, full)
            if args.floor and args.mode == "incremental":
                floors = [
                    measure_floor("incremental", REPO / "dagster.yaml", False)
                    for _ in range(args.floor)
                ]
                reread = run_floor(sim, "_reread_floor.py", "shangzhou")
                results[-1]["floor"] = print_floor(s, serving, floors, reread, info["cpus"])
    finally:
        sim.stop()
    print(
        f"saved {save('incremental_city', {'args': vars(args), 'machine': info, 'results': results})}"
    )


if __name__ == "__main__":
    main()
