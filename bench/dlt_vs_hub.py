"""洛南 side by side: a generic loader (dlt ``rest_api`` → DuckDB) and the hub, same endpoints.

Both read the same simulator (served from a thread of this process, 洛南 generated before any
clock starts) over HTTP with the platform's token auth and cursor paging, 5,000 items a page.

- dlt (``bench/_dlt_luonan.py``, in ``bench/.dlt-venv``): fetch the eight listings and load
  them as they are into a DuckDB file (extract → normalise to load files → load). Runs in each
  configuration of ``--dlt-runs`` (loader file format : write disposition).
- hub: the Dagster job ``sync_luonan`` (as ``sync_luonan.py``): fetch the listings, the
  deletion feeds and the stats; land every payload as received; normalise to city codes;
  validate, quarantine rejects with their reason; merge with history, watermarks, sync records
  and asset checks, in one transaction.
- fetch floor (``bench/_fetch_floor.py``, in the project's venv): the same eight listings'
  pages fetched and dropped, only their cursors decoded. No loader can be faster than this on
  these endpoints, so dlt's time over it is the largest speed-up over dlt any loader can show
  (the ceiling printed with each round's ratio).
- load floor (``bench/_load_floor.py``, in the project's venv): the same pages parsed by polars
  and loaded as delivered into a DuckDB file, then one checkpoint: the least any loader on the
  hub's stack (requests, polars, DuckDB) does, without Dagster and without any work of the
  hub's own (landing, mapping, validation, history).

dlt is not a project dependency: on first use this script creates ``bench/.dlt-venv``
(git-ignored) with ``python3.11 -m venv`` and pip-installs ``dlt[duckdb,parquet]`` there.

    .venv/bin/python bench/dlt_vs_hub.py [--scale 1.0] [--repeat 2]
        [--dlt-runs jsonl:append,parquet:append,jsonl:merge]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    BENCH,
    TreeMemory,
    _self_cpu,
    machine,
    phase_spans,
    run_jobs,
    run_measured,
    save,
    start_simulator,
    succeeded,
)
from _floors import run_floor

DLT_VERSION = "1.31.0"
DLT_VENV = BENCH / ".dlt-venv"
DLT_PYTHON = DLT_VENV / "bin" / "python"
COUNTY, COUNTY_CODE = "luonan", "611021"


def ensure_dlt() -> str:
    """The dlt venv's python, created and filled on first use; exits naming what failed."""
    probe = [str(DLT_PYTHON), "-c", "import dlt, duckdb, pyarrow; print(dlt.__version__)"]
    if DLT_PYTHON.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == DLT_VERSION:
            return found.stdout.strip()
    print(f"creating {DLT_VENV} with dlt[duckdb,parquet]=={DLT_VERSION} (first use)", flush=True)
    steps = [
        ["python3.11", "-m", "venv", str(DLT_VENV)],
        [str(DLT_PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [
            str(DLT_PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"dlt[duckdb,parquet]=={DLT_VERSION}",
        ],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"cannot install dlt: `{' '.join(cmd)}` exited {done.returncode}:\n"
                + (done.stderr or done.stdout)[-3000:]
            )
    found = subprocess.run(probe, capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"dlt installed but does not import:\n{found.stderr[-3000:]}")
    return found.stdout.strip()


def run_dlt(sim, file_format: str, disposition: str) -> dict:
    """One dlt load into a fresh DuckDB file; its own timings plus wall time, CPU seconds and
    peak RSS."""
    creds = sim.credentials(COUNTY)
    work = tempfile.mkdtemp(prefix="dlt-bench-")
    env = {
        **os.environ,
        "BENCH_URL": sim.base_url(COUNTY),
        "BENCH_KEY": creds["key"],
        "BENCH_SECRET": creds["secret"],
        "BENCH_DIR": work,
        # keep dlt's global state in the temp dir and off the network
        "DLT_DATA_DIR": os.path.join(work, "data"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "WARNING",
    }
    try:
        log = Path(work) / "dlt.log"
        driver_cpu = _self_cpu()
        with TreeMemory() as memory:
            code, wall, usage = run_measured(
                [str(DLT_PYTHON), str(BENCH / "_dlt_luonan.py"), file_format, disposition],
                env=env,
                cwd=work,
                log=log,
            )
        output = log.read_text(errors="replace")
        if code != 0:
            raise SystemExit(f"dlt run {file_format}:{disposition} failed:\n{output[-4000:]}")
        result = json.loads(output.strip().splitlines()[-1])
        simulator_cpu = _self_cpu() - driver_cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        **result,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "simulator_cpu_s": simulator_cpu,
        # dlt's own process and anything it starts (VmHWM from /proc)
        "peak_rss_mb": memory.peak_mb(1),
    }


def run_hub(sim) -> dict:
    report = run_jobs(sim, [(f"sync_{COUNTY}", "full")])
    (run,) = succeeded(report)
    rows = [r for r in report["records"] if r[0] == COUNTY_CODE]
    landing, _ = phase_spans(run["steps"], "__landing")
    merge, _ = phase_spans(run["steps"], "_merge")
    return {
        "records": sum(r[2] or 0 for r in rows),
        "accepted": sum(r[3] or 0 for r in rows),
        "rejected": sum(r[4] or 0 for r in rows),
        "seconds": run["run_s"],
        "wall_s": report["process_wall_s"],
        "landing_s": landing,
        "merge_s": merge,
        "peak_rss_mb": report["memory"]["peak_step_process_mb"],
        "peak_tree_pss_mb": report["memory"]["peak_tree_pss_mb"],
        "cpu_s": report["cpu_s"],
        "simulator_cpu_s": report["simulator_cpu_s"],
    }


def run_round(sim, i: int, configs: list[tuple[str, ...]]) -> list[dict]:
    """One round, back to back on one simulator: each dlt configuration, the two floors, the hub."""
    results: list[dict] = []

    def record(tool: str, r: dict, line: str) -> None:
        results.append({"tool": tool, "repeat": i, **r})
        print(f"#{i} {tool}: {line}", flush=True)

    for file_format, disposition in configs:
        r = run_dlt(sim, file_format, disposition)
        record(
            f"dlt {file_format}/{disposition}",
            r,
            f"{r['records']:,} records in {r['seconds']:.1f} s = "
            f"{r['records'] / r['seconds']:,.0f} records/s (extract {r['extract_s']:.1f} s, "
            f"normalise {r['normalize_s']:.1f} s, load {r['load_s']:.1f} s; "
            f"CPU {r['cpu_s']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
            f"{len(r['tables'])} tables, DuckDB {r['db_mb']:.0f} MB)",
        )
    f = run_floor(sim, "_fetch_floor.py", COUNTY)
    record(
        "fetch floor",
        f,
        f"{f['pages']} pages ({f['body_mb']:.0f} MB) fetched and dropped in "
        f"{f['seconds']:.1f} s (client CPU {f['cpu_s']:.1f} s, simulator CPU "
        f"{f['simulator_cpu_s']:.1f} s, {f['throttled']} answers 429)",
    )
    f = run_floor(sim, "_load_floor.py", COUNTY)
    record(
        "load floor",
        f,
        f"{f['records']:,} records fetched, parsed by polars and loaded as delivered into "
        f"DuckDB in {f['seconds']:.1f} s (fetch {f['fetch_s']:.1f}, parse {f['parse_s']:.1f}, "
        f"insert {f['insert_s']:.1f}, checkpoint {f['checkpoint_s']:.1f} s; process CPU "
        f"{f['cpu_s']:.1f} s, simulator CPU {f['simulator_cpu_s']:.1f} s)",
    )
    h = run_hub(sim)
    record(
        "hub sync_luonan",
        h,
        f"{h['records']:,} records in {h['seconds']:.1f} s = "
        f"{h['records'] / h['seconds']:,.0f} records/s (landing {h['landing_s']:.1f} s, "
        f"merge {h['merge_s']:.1f} s; CPU {h['cpu_s']:.0f} s, peak step RSS "
        f"{h['peak_rss_mb']:.0f} MB, {h['accepted']:,} accepted, {h['rejected']:,} rejected)",
    )
    return results


def print_ratios(ratios: list[dict]) -> None:
    """Each round's ratio to dlt parquet/append, with the ceilings the two floors set."""
    for r in ratios:
        print(
            f"round {r['repeat']}: hub {r['hub_s']:.1f} s vs dlt parquet/append "
            f"{r['dlt_s']:.1f} s -> hub is {r['speed_ratio']:.2f}x dlt parquet (target >= 3x); "
            f"CPU {r['hub_cpu_s']:.0f} vs {r['dlt_cpu_s']:.0f} s"
            + (
                f"; the fetch floor {r['floor_s']:.1f} s caps any loader at "
                f"{r['ceiling_ratio']:.2f}x dlt parquet"
                if "floor_s" in r
                else ""
            )
            + (
                f"; the load floor {r['load_floor_s']:.1f} s (this stack, no Dagster, no work "
                f"of the hub's own) caps the hub at {r['load_ceiling_ratio']:.2f}x"
                if "load_floor_s" in r
                else ""
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dlt-runs",
        default="jsonl:append,parquet:append,jsonl:merge",
        help="comma-separated loader_file_format:write_disposition",
    )
    args = parser.parse_args()
    configs = [tuple(item.split(":")) for item in args.dlt_runs.split(",") if item]

    version = ensure_dlt()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}  dlt {version}")
    sim = start_simulator(args.seed, args.scale, [COUNTY])
    results: list[dict] = []
    try:
        for i in range(1, args.repeat + 1):
            results += run_round(sim, i, configs)
    finally:
        sim.stop()

    print_table(results)
    ratios = same_run_ratios(results)
    print_ratios(ratios)
    info["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    payload = {"args": vars(args), "machine": info, "results": results, "ratios": ratios}
    path = save("dlt_vs_hub", payload)
    print(f"saved {path}")


def print_table(results: list[dict]) -> None:
    """Each tool's best round. "s": the work (dlt: token to load done; hub: Dagster run start to
    end); "process s": the whole process, interpreter start and imports included."""
    print(
        f"\n{'tool':<24} {'records':>9} {'best s':>7} {'records/s':>10} {'process s':>10} "
        f"{'CPU s':>6} {'peak RSS MB':>12}"
    )
    for tool in dict.fromkeys(r["tool"] for r in results):
        mine = [r for r in results if r["tool"] == tool]
        best = min(mine, key=lambda r: r["seconds"])
        if tool == "fetch floor":  # no records kept, no CPU of the simulator's counted here
            print(f"{tool:<24} {'—':>9} {best['seconds']:>7.1f} {'':>10} {best['wall_s']:>10.1f}")
            continue
        if tool == "load floor":  # its peak memory is not sampled
            print(
                f"{tool:<24} {best['records']:>9,} {best['seconds']:>7.1f} "
                f"{best['records'] / best['seconds']:>10,.0f} {best['wall_s']:>10.1f} "
                f"{best['cpu_s']:>6.1f}"
            )
            continue
        print(
            f"{tool:<24} {best['records']:>9,} {best['seconds']:>7.1f} "
            f"{best['records'] / best['seconds']:>10,.0f} {best['wall_s']:>10.1f} "
            f"{best['cpu_s']:>6.0f} "
            f"{max(r['peak_rss_mb'] for r in mine):>12.0f}"
        )
    print(
        "dlt: fetch + load as delivered (nested arrays become child tables).\n"
        "hub: fetch listings + deletion feeds + stats, land raw, normalise, validate, quarantine, "
        "merge with history, checks."
    )


def same_run_ratios(results: list[dict]) -> list[dict]:
    """Per round: the hub's speed over dlt parquet/append's, measured back to back (the issue's
    first row: records/s, same records, so the ratio of the two run times)."""
    out = []
    for repeat in sorted({r["repeat"] for r in results}):
        mine = {r["tool"]: r for r in results if r["repeat"] == repeat}
        hub, dlt = mine.get("hub sync_luonan"), mine.get("dlt parquet/append")
        floor, load_floor = mine.get("fetch floor"), mine.get("load floor")
        if hub and dlt:
            ceiling = (
                {
                    "floor_s": floor["seconds"],
                    "ceiling_ratio": round(dlt["seconds"] / floor["seconds"], 3),
                }
                if floor
                else {}
            )
            if load_floor:
                ceiling |= {
                    "load_floor_s": load_floor["seconds"],
                    "load_ceiling_ratio": round(dlt["seconds"] / load_floor["seconds"], 3),
                }
            out.append(
                {
                    **ceiling,
                    "repeat": repeat,
                    "hub_s": hub["seconds"],
                    "dlt_s": dlt["seconds"],
                    "speed_ratio": round(
                        (hub["records"] / hub["seconds"]) / (dlt["records"] / dlt["seconds"]), 3
                    ),
                    "hub_cpu_s": hub["cpu_s"],
                    "dlt_cpu_s": dlt["cpu_s"],
                }
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
