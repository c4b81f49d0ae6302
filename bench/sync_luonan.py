"""One full 洛南 (bigdata platform) sync through Dagster, end to end, timed.

Runs the job ``sync_luonan`` (landing: fetch every page over HTTP, land it, normalise;
merge: validate, quarantine, merge with history, checks) with the repo's executor and
``dagster.yaml``, in a fresh worker process with a fresh HUB_HOME and DAGSTER_HOME, against
the simulator served from a thread of this process. Prints records fetched (all entities),
records/s over the Dagster run (run start → run end), peak memory of the step processes, and
the landing / merge split from Dagster's step stats.

    .venv/bin/python bench/sync_luonan.py [--scale 1.0] [--repeat 2] [--mode full]
"""

from __future__ import annotations

from _common import (
    machine,
    phase_spans,
    run_jobs,
    save,
    self_peak_mb,
    start_simulator,
    step_peaks,
    succeeded,
    sync_arguments,
)

COUNTY, COUNTY_CODE = "luonan", "611021"


def summarise(report: dict) -> dict:
    (run,) = succeeded(report)
    fetched = sum(r[2] or 0 for r in report["records"] if r[0] == COUNTY_CODE)
    accepted = sum(r[3] or 0 for r in report["records"] if r[0] == COUNTY_CODE)
    landing, _ = phase_spans(run["steps"], "__landing")
    merge, _ = phase_spans(run["steps"], "_merge")
    return {
        "fetched": fetched,
        "accepted": accepted,
        "run_s": run["run_s"],
        "wall_s": run["wall_s"],
        "records_per_s": fetched / run["run_s"],
        "landing_s": landing,
        "merge_s": merge,
        "peak_step_mb": report["memory"]["peak_step_process_mb"],
        "peak_tree_pss_mb": report["memory"]["peak_tree_pss_mb"],
        "cpu_s": report["cpu_s"],
        "simulator_cpu_s": report["simulator_cpu_s"],
        "peak_orchestrator_mb": report["memory"]["peak_orchestrator_mb"],
        "by_entity": {r[1]: r[2] for r in report["records"] if r[0] == COUNTY_CODE},
        "step_peak_mb": step_peaks(report),
        "step_file_at_peak_mb": step_peaks(report, "file_at_peak_by_pid_mb"),
        "events": run.get("events"),
    }


def print_one(i: int, s: dict) -> None:
    other = s["run_s"] - s["landing_s"] - s["merge_s"]
    print(
        f"#{i}: {s['fetched']:,} records fetched ({s['accepted']:,} accepted) in "
        f"{s['run_s']:.1f} s (Dagster run; {s['wall_s']:.1f} s around execute_job) = {s['records_per_s']:,.0f} "
        f"records/s\n    landing {s['landing_s']:.1f} s | merge {s['merge_s']:.1f} s | "
        f"orchestration {other:.1f} s\n    peak RSS: step process {s['peak_step_mb']:.0f} MB, "
        f"run orchestrator {s['peak_orchestrator_mb']:.0f} MB; "
        f"peak PSS of the whole tree {s['peak_tree_pss_mb']:.0f} MB\n    CPU: hub {s['cpu_s']:.0f} s, "
        f"simulator {s['simulator_cpu_s']:.0f} s; {s['events']} Dagster events\n"
        "    peak RSS by step: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(s["step_peak_mb"].items())),
        flush=True,
    )


def main() -> None:
    args = sync_arguments(__doc__.splitlines()[0])

    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}")
    sim = start_simulator(args.seed, args.scale, [COUNTY])
    results, failures = [], []
    try:
        for i in range(1, args.repeat + 1):
            report = run_jobs(sim, [(f"sync_{COUNTY}", args.mode)], keep=args.keep)
            try:
                results.append({**summarise(report), "raw": report})
            except SystemExit as failed:  # keep the other repeats' figures
                print(f"#{i}: {failed}", flush=True)
                failures.append({"repeat": i, "error": str(failed), "raw": report})
                continue
            print_one(i, results[-1])
    finally:
        sim.stop()
    payload = {"args": vars(args), "machine": info, "results": results, "failures": failures}
    if not results:
        raise SystemExit(f"every run failed; see {save('sync_luonan', payload)}")
    print("records by entity:", results[-1]["by_entity"])
    print(f"driver peak RSS (simulator thread + driver) {self_peak_mb():.0f} MB")
    best = min(results, key=lambda s: s["run_s"])
    print(
        f"best of {len(results)}: {best['records_per_s']:,.0f} records/s, {best['run_s']:.1f} s, "
        f"peak step RSS {max(r['peak_step_mb'] for r in results):.0f} MB"
    )
    path = save("sync_luonan", payload)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
