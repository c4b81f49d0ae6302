"""The whole city through Dagster, end to end, timed: all seven counties, then marts + snapshot.

Runs ``sync_all_counties`` (per county: landing, then validate + merge in the single-writer
pool) and then ``sync_city`` (marts, published snapshot) with the repo's executor and
``dagster.yaml``, in a fresh worker process with fresh HUB_HOME and DAGSTER_HOME, against the
simulator served from a thread of this process. Prints records fetched per county, the total
records/s, wall time, peak memory, and the landing / merge split. ``make bench`` runs this.

    .venv/bin/python bench/sync_city.py [--scale 1.0] [--repeat 2] [--mode full]
"""

from __future__ import annotations

from _common import (
    city_phases,
    idle_seconds,
    machine,
    run_jobs,
    save,
    self_peak_mb,
    start_simulator,
    sync_arguments,
)


def summarise(report: dict) -> dict:
    phases = city_phases(report)
    counties_run, city_run = report["runs"]
    per_county: dict[str, int] = {}
    for code, _entity, fetched, *_ in report["records"]:
        per_county[code] = per_county.get(code, 0) + (fetched or 0)
    fetched = sum(per_county.values())
    return {
        **phases,
        "fetched": fetched,
        "per_county": per_county,
        "counties_run_s": counties_run["run_s"],
        "wall_s": counties_run["wall_s"] + city_run["wall_s"],
        "records_per_s": fetched / phases["total_s"],
        "idle_s": {"counties": idle_seconds(counties_run), "city": idle_seconds(city_run)},
        "events": {"counties": counties_run.get("events"), "city": city_run.get("events")},
        "peak_orchestrator_mb": report["memory"]["peak_orchestrator_mb"],
    }


def print_one(i: int, s: dict, names: dict[str, str]) -> None:
    counties = ", ".join(f"{names.get(c, c)} {n:,}" for c, n in sorted(s["per_county"].items()))
    print(
        f"#{i}: {s['fetched']:,} records fetched in {s['total_s']:.1f} s "
        f"(sync_all_counties {s['counties_run_s']:.1f} s + sync_city {s['city_run_s']:.1f} s; "
        f"{s['wall_s']:.1f} s around execute_job) = {s['records_per_s']:,.0f} records/s\n"
        f"    {counties}\n"
        f"    landing steps {s['landing_sum_s']:.1f} s summed over {s['landing_span_s']:.1f} s | "
        f"merge steps {s['merge_sum_s']:.1f} s summed over {s['merge_span_s']:.1f} s\n"
        f"    peak RSS: step process {s['peak_step_mb']:.0f} MB, run orchestrator "
        f"{s['peak_orchestrator_mb']:.0f} MB; peak PSS of the whole tree "
        f"{s['peak_tree_pss_mb']:.0f} MB\n    CPU: hub {s['cpu_s']:.0f} s (every process of the "
        f"runs), simulator {s['simulator_cpu_s']:.0f} s\n"
        f"    no step executing (Dagster's share of the critical path): "
        f"{s['idle_s']['counties']:.1f} s of sync_all_counties, {s['idle_s']['city']:.1f} s of "
        f"sync_city; Dagster events {s['events']['counties']} + {s['events']['city']}\n"
        "    peak RSS by step (of it file-backed): "
        + ", ".join(
            f"{k} {v:.0f} MB ({s.get('step_file_at_peak_mb', {}).get(k, 0):.0f})"
            for k, v in sorted(s["step_peak_mb"].items())
        ),
        flush=True,
    )


def main() -> None:
    args = sync_arguments(__doc__.splitlines()[0])

    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}")
    sim = start_simulator(args.seed, args.scale)
    from seeds.registry import counties

    names = {c.code: c.name for c in counties()}
    results, failures = [], []
    try:
        for i in range(1, args.repeat + 1):
            report = run_jobs(
                sim, [("sync_all_counties", args.mode), ("sync_city", None)], keep=args.keep
            )
            try:
                results.append({**summarise(report), "raw": report})
            except SystemExit as failed:  # keep the other repeats' figures
                print(f"#{i}: {failed}", flush=True)
                failures.append({"repeat": i, "error": str(failed), "raw": report})
                continue
            print_one(i, results[-1], names)
    finally:
        sim.stop()
    payload = {"args": vars(args), "machine": info, "results": results, "failures": failures}
    if not results:
        raise SystemExit(f"every run failed; see {save('sync_city', payload)}")
    steps = results[-1]["steps"]
    print("step seconds (last run):", ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    print(f"driver peak RSS (simulator thread + driver) {self_peak_mb():.0f} MB")
    best = min(results, key=lambda s: s["total_s"])
    print(
        f"best of {len(results)}: {best['fetched']:,} records in {best['total_s']:.1f} s = "
        f"{best['records_per_s']:,.0f} records/s, peak step RSS "
        f"{max(r['peak_step_mb'] for r in results):.0f} MB"
    )
    path = save("sync_city", payload)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
