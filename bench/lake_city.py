"""The whole city on both warehouse backends, timed: one DuckDB file vs DuckLake, merges serial vs parallel.

For each backend (``duckdb``: the file; ``ducklake``: a PostgreSQL catalog from Debian's
package started for the run, Parquet data under the run's HUB_HOME) and each way of merging:

* ``parallel`` — one run of ``sync_all_counties`` (landings up to four at once; merges one at a
  time on duckdb, each county in its own pool on ducklake), then ``sync_city``;
* ``serial`` — the seven ``sync_<county>`` jobs one after another, then ``sync_city``,

each in a fresh worker process with a fresh HUB_HOME, DAGSTER_HOME and (ducklake) fresh catalog
databases, against the simulator served from a thread of this process (``_common.run_jobs``).
Records: wall time (first run start to last run end), hub CPU seconds (every process of the
runs), peak RSS of a step process and peak PSS of the whole tree, the merge steps summed and
their span (span < sum: merges overlapped), and the load average before and after (the machine
may be shared: wall times move with the load, CPU seconds much less).

    .venv/bin/python bench/lake_city.py [--scale 1.0] [--repeat 1] [--mode full]
        [--backends duckdb,ducklake] [--merges parallel,serial] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
from pathlib import Path

from _common import city_phases, machine, run_jobs, save, start_simulator

LAKE_ENV = ("HUB_WAREHOUSE_BACKEND", "HUB_LAKE_CATALOG", "HUB_LAKE_DATA_PATH",
            "HUB_ANALYST_LAKE_CATALOG", "HUB_ANALYST_LAKE_DATA_PATH")  # fmt: skip


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", default="full", choices=("full", "incremental"))
    parser.add_argument("--backends", default="duckdb,ducklake")
    parser.add_argument("--merges", default="parallel,serial")
    parser.add_argument("--keep", action="store_true", help="keep the temp homes")
    return parser.parse_args()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Catalogs:
    """A local PostgreSQL for the ducklake runs: one pair of fresh databases per run."""

    def __init__(self) -> None:
        from pipelines.lake.postgres import LocalPostgres

        self.root = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
        self.root.chmod(0o755)  # the server runs as `postgres` when we are root
        self.server = LocalPostgres(self.root, port=_free_port()).start()
        self.count = 0

    def fresh(self) -> str:
        from base.settings import ANALYST_CATALOG_SUFFIX

        self.count += 1
        name = f"bench_{os.getpid()}_{self.count}"
        self.server.database(name + ANALYST_CATALOG_SUFFIX)
        return self.server.database(name)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def jobs_for(merges: str, mode: str) -> list[tuple[str, str | None]]:
    from seeds.registry import counties

    if merges == "parallel":
        return [("sync_all_counties", mode), ("sync_city", None)]
    return [*((f"sync_{c.slug}", mode) for c in counties()), ("sync_city", None)]


def summarise(report: dict, load_before: list[float]) -> dict:
    phases = city_phases(report)
    fetched = sum(r[2] or 0 for r in report["records"])
    wall = phases["total_s"]
    return {
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in phases.items()},
        "fetched": fetched,
        "wall_s": round(wall, 2),
        "records_per_s": round(fetched / wall) if wall else None,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def run_one(sim, backend: str, merges: str, args, catalogs: Catalogs | None) -> dict:
    saved = {k: os.environ.pop(k, None) for k in LAKE_ENV}
    try:
        os.environ["HUB_WAREHOUSE_BACKEND"] = backend
        if backend == "ducklake":
            os.environ["HUB_LAKE_CATALOG"] = catalogs.fresh()  # data: the run's HUB_HOME
        load_before = [round(x, 2) for x in os.getloadavg()]
        report = run_jobs(sim, jobs_for(merges, args.mode), keep=args.keep)
        return {**summarise(report, load_before), "raw": report}
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def main() -> None:
    args = arguments()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}", flush=True)
    backends, merges = args.backends.split(","), args.merges.split(",")
    sim = start_simulator(args.seed, args.scale)
    results, failures = [], []
    catalogs = None
    try:
        catalogs = Catalogs() if "ducklake" in backends else None
        for _ in range(args.repeat):
            for backend in backends:
                for how in merges:
                    label = f"{backend}/{how}"
                    try:
                        s = run_one(sim, backend, how, args, catalogs)
                    except SystemExit as failed:
                        print(f"{label}: {failed}", flush=True)
                        failures.append({"config": label, "error": str(failed)})
                        continue
                    results.append({"config": label, **s})
                    print(
                        f"{label}: {s['fetched']:,} records in {s['wall_s']:.1f} s "
                        f"({s['records_per_s']:,}/s), hub CPU {s['cpu_s']:.0f} s, peak step RSS "
                        f"{s['peak_step_mb']:.0f} MB, tree PSS {s['peak_tree_pss_mb']:.0f} MB, "
                        f"merges {s['merge_sum_s']:.1f} s summed over {s['merge_span_s']:.1f} s, "
                        f"load {s['load_before']} -> {s['load_after']}",
                        flush=True,
                    )
    finally:
        sim.stop()
        if catalogs:
            catalogs.stop()
    payload = {"args": vars(args), "machine": info, "results": results, "failures": failures}
    print(f"saved {save(f'lake_city-{args.scale:g}', payload)}")
    if failures:
        raise SystemExit(f"{len(failures)} configuration(s) failed")


if __name__ == "__main__":
    main()
