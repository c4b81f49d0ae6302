"""Re-run the merge step of two landed syncs of one county (洛南 unless ``--county``) (a first full, then an unchanged full
re-read) as often as needed, each merge in a fresh child process: the A/B loop of
``bench/profiles/merge.md``.

    .venv/bin/python bench/profiles/merge_ab.py land --home /tmp/merge-ab [--scale 1.0] \
        [--county shangnan]
    .venv/bin/python bench/profiles/merge_ab.py merge --home /tmp/merge-ab [--dagster-base]

``land`` lands both syncs from the simulator (served from a thread of this process) once and
keeps them in ``--home``. ``merge`` merges the first into a FRESH warehouse and then the
second into the same one, each in its own child (``python -c``), and prints per merge the
child's CPU seconds (``ru_utime + ru_stime``, DuckDB's and polars' threads included) and peak
RSS (``VmHWM``). ``--dagster-base`` imports what the executor's forkserver preloads
(``pipelines.preload``) before the merge, as a step process forked from it starts with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LABELS = ("first_full", "second_full_unchanged")

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
if {dagster_base!r}:
    import pipelines.preload  # noqa: F401
from pipelines import sync
from pipelines.sync import Landed
from seeds.registry import county

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024

landed = Landed(**json.loads(open({landed!r}).read()))
base = status('VmRSS')
u0 = resource.getrusage(resource.RUSAGE_SELF)
wall = time.perf_counter()
merged = sync.merge(county(landed.county_code), landed)
wall = time.perf_counter() - wall
u = resource.getrusage(resource.RUSAGE_SELF)
cpu = u.ru_utime + u.ru_stime - u0.ru_utime - u0.ru_stime
totals = {{k: sum(c.get(k, 0) for c in merged.counts.values())
          for k in ('fetched', 'inserted', 'updated', 'unchanged', 'rejected', 'findings')}}
print(json.dumps({{'merge_cpu_s': round(cpu, 2), 'process_cpu_s':
    round(u.ru_utime + u.ru_stime, 2), 'wall_s': round(wall, 2), 'rss_before_mb': round(base),
    'peak_rss_mb': round(status('VmHWM')), **totals}}))
"""


def land(home: Path, scale: float, slug: str, labels: tuple[str, ...] = LABELS) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(HUB_HOME=str(home / "landing-home"), HUB_PROFILE="demo")
    sys.path.insert(0, str(REPO))
    from simulator.embedded import start_in_thread

    sim = start_in_thread(seed=7, scale=scale)
    os.environ.update(sim.env())
    from pipelines import sync
    from seeds.registry import county

    for label in labels:
        landed = sync.land(county(slug), "full")
        (home / f"{label}.landed.json").write_text(json.dumps(asdict(landed)))
        print(f"{label}: landed {landed.pages} pages", flush=True)
    sim.stop()


def merge(home: Path, dagster_base: bool, extra_env: dict[str, str]) -> None:
    target = Path(tempfile.mkdtemp(prefix="merge-ab-", dir=home))
    env = {**os.environ, "HUB_HOME": str(target), "HUB_PROFILE": "demo", **extra_env}
    print(f"load {os.getloadavg()}", flush=True)
    for label in LABELS:
        code = CHILD.format(
            repo=str(REPO),
            dagster_base=dagster_base,
            landed=str(home / f"{label}.landed.json"),
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit(done.returncode)
        print(label, done.stdout.strip().splitlines()[-1], flush=True)
    print(f"load {os.getloadavg()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("land", "merge"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--county", default="luonan", help="the county's slug (land)")
    parser.add_argument(
        "--first-only", action="store_true", help="land the first full only (a county in core)"
    )
    parser.add_argument("--dagster-base", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the child")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.action == "land":
        land(args.home, args.scale, args.county, LABELS[:1] if args.first_only else LABELS)
    else:
        merge(args.home, args.dagster_base, dict(e.split("=", 1) for e in args.env))
    print(f"{time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
