"""One day of the city, incrementally: the demo (full sync of all seven counties, marts and
snapshots), then the simulator's clock one day on, then an incremental sync of every county with
marts and snapshots, timed.

Both phases run in one HUB_HOME and DAGSTER_HOME (the incremental resumes from the demo's
watermarks), each in a fresh worker process as ``hub demo`` and the schedules run them
(``sync_all_counties`` then ``sync_city``, the repo's executor and ``dagster.yaml``). The clock
moves in-process (``SimulatorHandle.advance``, as the tests do): one simulated day of changes,
new households and members, exits, deletions, and the weekly workbook export when one falls due.

    .venv/bin/python bench/incremental_city.py [--scale 1.0] [--repeat 1] [--days 1]
"""

from __future__ import annotations

import argparse
import shutil

from _common import (
    city_phases,
    fresh_homes,
    machine,
    run_jobs,
    save,
    start_simulator,
)
from _timeline import describe


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}", flush=True)
    sim = start_simulator(args.seed, args.scale)
    results = []
    try:
        for i in range(1, args.repeat + 1):
            base, _ = fresh_homes()
            try:
                demo = run_jobs(
                    sim, [("sync_all_counties", "full"), ("sync_city", None)], home=base
                )
                before = {r[-1] for r in demo["records"]}
                advanced = sim.advance(days=args.days)
                print(f"#{i}: demo done; clock +{args.days} day(s): {advanced}", flush=True)
                report = run_jobs(
                    sim, [("sync_all_counties", "incremental"), ("sync_city", None)], home=base
                )
            finally:
                shutil.rmtree(base, ignore_errors=True)
            s = summarise(report, before)
            full = summarise(demo, set())
            print(
                f"#{i}: the demo (full, scale {args.scale}): {full['fetched']:,} records in "
                f"{full['total_s']:.1f} s; CPU hub {full['cpu_s']:.1f} s; peak step RSS "
                f"{full['peak_step_mb']:.0f} MB ("
                + ", ".join(f"{k} {v:.0f}" for k, v in sorted(full["step_peak_mb"].items()))
                + ")",
                flush=True,
            )
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
            print(
                f"#{i}: incremental of the seven counties + marts + snapshots: "
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
            print("    sync_all_counties from its event log (s from the run's start):", flush=True)
            print(describe(report["runs"][0]["timeline"]), flush=True)
    finally:
        sim.stop()
    print(
        f"saved {save('incremental_city', {'args': vars(args), 'machine': info, 'results': results})}"
    )


if __name__ == "__main__":
    main()
