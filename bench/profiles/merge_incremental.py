"""The merge step of a one-day incremental, one county at a time, in a step-like child: what
``bench/incremental_city.py`` times as ``<county>_merge`` (bench/profiles/merge.md,
"Incremental merge").

    .venv/bin/python bench/profiles/merge_incremental.py land --home /tmp/minc [--scale 1.0]
    .venv/bin/python bench/profiles/merge_incremental.py merge --home /tmp/minc \
        [--county luonan --county shangzhou] [--repeat 2] [--cprofile DIR] [--statements]

``land`` runs the demo without Dagster (a full sync of all seven counties, landed and merged
one after the other into ``--home``/base), moves the simulator's clock one day on, lands the
incremental of every county from the base's watermarks, and keeps the landings.
``merge`` copies the base's warehouse into a fresh home for every merge and runs in a fresh
child what the merge step runs (``pipelines.defs.counties``: ``sync.merge``, then one
connection for the rejects file and the asset checks), after ``pipelines.preload`` as a step
forked from the executor's forkserver has it. It prints the child's CPU seconds per phase
(merge / rejects / checks; DuckDB's threads included), the wall, the peak RSS and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: A child's CPU per phase: ``timed_phase(module, attr, label)`` wraps a function so the CPU
#: seconds of its calls add up in ``phase_cpu[label]`` (needs the child's ``cpu()``; written for
#: ``str.format``, as the CHILD templates are; also used by landing_incremental.py).
TIMED_PHASES = """phase_cpu = {{}}

def timed_phase(module, attr, label):
    original = getattr(module, attr)

    def wrapper(*args, **kwargs):
        t = cpu()
        try:
            return original(*args, **kwargs)
        finally:
            phase_cpu[label] = phase_cpu.get(label, 0.0) + cpu() - t

    setattr(module, attr, wrapper)
"""

CHILD = (
    """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import pipelines.preload  # noqa: F401  (what a step forked from the forkserver holds)
import warehouse
from pipelines import rejects, sync
from pipelines.defs import checks
from pipelines.sync import Landed
from seeds.registry import county

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) / 1024

landed = Landed(**json.loads(open({landed!r}).read()))
timed = {{}}
if {statements!r}:  # every named SQL statement's wall and CPU seconds, summed by name
    from warehouse import statements
    original = statements.run

    def traced(con, file, name, params=None, **identifiers):
        label = f"{{file}}:{{name}} {{identifiers.get('entity', '')}}".strip()
        w, t = time.perf_counter(), cpu()
        try:
            return original(con, file, name, params, **identifiers)
        finally:
            s, c = timed.get(label, (0.0, 0.0))
            timed[label] = (s + time.perf_counter() - w, c + cpu() - t)

    for module in list(sys.modules.values()):
        for attr in ('run', 'run_sql', 'run_statement'):
            if getattr(module, attr, None) is original:
                setattr(module, attr, traced)
c = county(landed.county_code)
# CPU seconds of the merge's phases (nested ones overlap: the merge transaction holds the
# upserts, conflicts, quarantine and the key check)
import pipelines.sync as psync
import warehouse.connection as wconn
import warehouse.checkpoint as wckpt
import warehouse.keys as wkeys
import warehouse.merge as wmerge
"""
    + TIMED_PHASES
    + """
for module, attr, label in (
    (wconn, 'migrate', 'open: migrations check'),
    (psync, 'check_listings', 'listing check'),
    (psync.staged_io, 'open_verified', 'landing verified, staged opened'),
    (psync, '_context', 'validation context'),
    (psync.staged_rows, 'diff_staged', 'row-hash diff'),
    (psync, 'validate_county', 'validation'),
    (wmerge, '_merge', 'merge transaction (statements)'),
    (wmerge, '_upsert_entity', '  upserts'),
    (wmerge, '_soft_delete', '  soft deletes'),
    (wmerge, '_record_conflicts', '  conflicts'),
    (wmerge, '_record_quarantine', '  quarantine'),
    (wmerge, '_write_runs', '  sync_run rows'),
    (wkeys, 'check_keys', 'key checks'),
    (wmerge, 'finish_touches', 'touch (before + after)'),
    (wmerge, 'stage_quarantine', 'quarantine staged'),
    (wckpt, 'checkpoint', 'checkpoint after the transaction'),
    (wconn.region_seed, 'seed_regions', 'open: region seed'),
    (wconn, 'record_queued_failures', 'open: queued failures'),
    (wconn, 'check_profile', 'open: profile'),
    (wconn.commit_record, 'owners', 'close: commit record owners'),
    (wconn.commit_record, 'write_commit_record', 'close: commit record written'),
    (psync.notify, 'reject_spike', 'reject spike'),
    (psync, '_source_lag', 'source lag'),
    (psync, '_refresh_cache', 'cursor cache'),
    (psync, '_run_id', 'run id'),
    (psync.landing, 'verify', 'landing pages verified'),
    (psync, 'read_manifest', 'manifest read'),
    (psync.duckdb, 'connect', 'duckdb.connect'),
):
    timed_phase(module, attr, label)
profiler = None
if {pyinstrument!r}:  # CPU seconds by function (cProfile on the process clock: not the wall)
    import cProfile
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
phases, t0, w0 = {{}}, cpu(), time.perf_counter()
merged = sync.merge(c, landed)
phases['merge'] = cpu() - t0
import pipelines.defs.counties as step
with warehouse.connect(read_only={checks_read_only!r}) as con:  # the step's: read-only since 13ah
    if hasattr(step, 'bound'):  # the step bounds this connection as the merge's (since 13t)
        step.bound(con, step.MERGE)
    t1 = cpu()
    rejects.export_sync(c, merged.sync_id, con)
    phases['rejects'] = cpu() - t1
    t2 = cpu()
    results = checks.evaluate(c, con)
    phases['checks'] = cpu() - t2
phases['connect_close'] = cpu() - t0 - sum(phases.values())
wall = time.perf_counter() - w0
for label, t in phase_cpu.items():
    print(f'{{t:7.3f}} CPU-s  phase: {{label}}')
for label, (w, cs) in sorted(timed.items(), key=lambda kv: -kv[1][1])[:200]:
    print(f'{{cs:7.3f}} CPU-s {{w:7.3f}} s  {{label}}')
if profiler is not None:
    import pstats
    profiler.disable()
    out = {pyinstrument!r} + '/' + c.slug + '.txt'
    with open(out, 'w') as f:
        pstats.Stats(profiler, stream=f).sort_stats('cumulative').print_stats(80)
totals = {{k: sum(x.get(k, 0) for x in merged.counts.values())
          for k in ('fetched', 'inserted', 'updated', 'unchanged', 'rejected', 'deleted')}}
print(json.dumps({{'county': c.slug, 'cpu_s': round(cpu() - t0, 2),
    'phases_cpu_s': {{k: round(v, 2) for k, v in phases.items()}}, 'wall_s': round(wall, 2),
    'peak_rss_mb': round(status('VmHWM')), 'checks_passed': sum(r.passed for r in results),
    'checks': len(results), **totals}}))
"""
)


def demo_then_day(hub_home: Path, scale: float, days: float):
    """The demo landed and merged without Dagster into a fresh ``hub_home``, by a simulator
    serving from this process, then its clock ``days`` on and its listings prepared. Returns
    the running simulator (the caller stops it); also used by landing_incremental.py."""
    if hub_home.exists():
        raise SystemExit(f"{hub_home} exists: use a fresh --home")
    hub_home.mkdir(parents=True)
    os.environ.update(HUB_HOME=str(hub_home), HUB_PROFILE="demo")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from _common import start_simulator

    sim = start_simulator(7, scale)
    os.environ.update(sim.env())
    from pipelines import sync
    from seeds.registry import counties

    try:
        for c in counties():
            started = time.perf_counter()
            sync.merge(c, sync.land(c, "full"))
            print(f"demo {c.slug}: {time.perf_counter() - started:.1f} s", flush=True)
        print(f"clock +{days} day(s): {sim.advance(days=days)}", flush=True)
        sim.prepare()
    except BaseException:
        sim.stop()
        raise
    return sim


def land(home: Path, scale: float, days: float) -> None:
    base = home / "base"
    sim = demo_then_day(base, scale, days)
    from pipelines import sync
    from seeds.registry import counties

    try:
        for c in counties():
            landed = sync.land(c, "incremental")
            (home / f"{c.slug}.landed.json").write_text(json.dumps(asdict(landed)))
            print(f"incremental {c.slug}: landed {landed.pages} pages", flush=True)
    finally:
        sim.stop()
    # the warehouse the incrementals start from, copied for every merge
    shutil.copytree(base, home / "warehouse-base", ignore=shutil.ignore_patterns("landing*"))


def merge(
    home: Path,
    slugs: list[str],
    repeat: int,
    pyinstrument: str | None,
    statements: bool,
    checks_read_write: bool = False,
) -> None:
    for i in range(repeat):
        for slug in slugs:
            target = home / f"run-{slug}-{i}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(home / "warehouse-base", target)
            env = {**os.environ, "HUB_HOME": str(target), "HUB_PROFILE": "demo"}
            code = CHILD.format(
                repo=str(REPO),
                landed=str(home / f"{slug}.landed.json"),
                pyinstrument=pyinstrument,
                statements=statements,
                checks_read_only=not checks_read_write,
            )
            load = os.getloadavg()[0]
            done = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                print(done.stderr[-3000:])
                raise SystemExit(done.returncode)
            *lines, last = done.stdout.strip().splitlines()
            print("\n".join(lines))
            result = json.loads(last)
            print(json.dumps({**result, "load": round(load, 1)}), flush=True)
            shutil.rmtree(target, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("land", "merge"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--county", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--cprofile",
        dest="pyinstrument",
        help="a directory for each merge's CPU profile (cProfile)",
    )
    parser.add_argument("--statements", action="store_true", help="CPU-s of every SQL statement")
    parser.add_argument(
        "--checks-read-write",
        action="store_true",
        help="the rejects and checks on a read-write connection (the step before 13ah)",
    )
    args = parser.parse_args()
    if args.action == "land":
        land(args.home, args.scale, args.days)
    else:
        merge(
            args.home,
            args.county or ["luonan", "shangzhou"],
            args.repeat,
            args.pyinstrument,
            args.statements,
            args.checks_read_write,
        )


if __name__ == "__main__":
    main()
