"""Profile the city step (marts + both snapshots) and the county asset checks, without Dagster,
on a warehouse a benchmark kept (``--keep``).

Times each part with ``time.perf_counter`` and the process's CPU seconds, in one process, in
the order the city step runs them: every marts file, the restricted PII snapshot, the analyst
snapshot (and, for a second publish, the incremental path), then the county checks of every
county. The figures go to stdout and ``bench/results/profile_city-*.json``.

    .venv/bin/python bench/sync_city.py --repeat 1 --keep     # prints "kept /tmp/hub-bench-…"
    .venv/bin/python bench/profile_city.py /tmp/hub-bench-…/hub [--publishes 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from _common import REPO, machine, save

sys.path.insert(0, str(REPO))

TIMES: list[dict] = []


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def timed(name: str):
    wall, cpu = time.perf_counter(), _cpu()
    yield
    row = {
        "part": name,
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(_cpu() - cpu, 3),
    }
    TIMES.append(row)
    print(f"{name:<46} {row['wall_s']:>7.2f} s wall {row['cpu_s']:>7.2f} s CPU", flush=True)


def profile_marts() -> None:
    import warehouse
    from warehouse.statements import MARTS_DIR

    with warehouse.connect() as con:
        with timed("marts: whole rebuild (warehouse.rebuild_marts)"):
            warehouse.rebuild_marts(con)
        # each file again on its own, in order (the same statements, timed one by one)
        con.execute("BEGIN")
        for file in sorted(MARTS_DIR.glob("[0-9][0-9]_*.sql")):
            with timed(f"marts: {file.name}"):
                con.execute(file.read_text(encoding="utf-8"))
        con.execute("ROLLBACK")


def profile_snapshots(publishes: int) -> None:
    import warehouse
    import warehouse.snapshots as snapshots
    from base import paths

    live = paths.live_db()
    print(
        f"live file {live.stat().st_size / 2**20:.0f} MB",
        flush=True,
    )
    for i in range(1, publishes + 1):
        with timed(f"publish #{i}: both snapshots (warehouse.publish_snapshot)"):
            warehouse.publish_snapshot()
        print(
            f"  analyst {paths.snapshot_db().stat().st_size / 2**20:.0f} MB, "
            f"pii {paths.pii_snapshot_db().stat().st_size / 2**20:.0f} MB",
            flush=True,
        )
        with timed(f"publish #{i}: restricted PII snapshot alone"):
            snapshots.publish_pii_snapshot(live, paths.pii_snapshot_db())
        with timed(f"publish #{i}: analyst snapshot alone"):
            snapshots.publish_analyst_snapshot(live, paths.snapshot_db())


def profile_checks() -> None:
    from pipelines.defs import checks
    from seeds.registry import counties

    for county in counties():
        with timed(f"asset checks: {county.slug}"):
            checks.evaluate(county)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hub_home", help="HUB_HOME of a kept benchmark run")
    parser.add_argument("--publishes", type=int, default=2)
    args = parser.parse_args()
    os.environ["HUB_HOME"] = str(Path(args.hub_home).resolve())
    os.environ.setdefault("HUB_PROFILE", "demo")
    from base import settings

    settings.load()
    info = machine()
    print(f"{info['date']}  {info['cpus']} cpus  load {info['load_avg_1_5_15']}", flush=True)
    profile_marts()
    profile_snapshots(args.publishes)
    profile_checks()
    info["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"saved {save('profile_city', {'machine': info, 'parts': TIMES})}")


if __name__ == "__main__":
    main()
