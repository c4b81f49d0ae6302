"""The city step of a one-day incremental, part by part, without Dagster (issue 13u).

``build DEST``: the demo (full city + marts + snapshots) in a fresh home, the simulator's clock
one day on, an incremental of the seven counties (no city step), the home copied to ``DEST``.
``profile DEST``: on a fresh copy of ``DEST`` each time (so every profile starts from the same
state), in a fresh process: each marts file timed, then the PII snapshot and the analyst
snapshot's delta (its tables timed by DuckDB's profiler is too fine; this times the parts the
code runs), CPU seconds of the process and its peak RSS (``/usr/bin/time -v``).

    .venv/bin/python bench/profiles/city_delta_parts.py build /tmp/city-s1 --scale 1.0
    .venv/bin/python bench/profiles/city_delta_parts.py profile /tmp/city-s1 [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, fresh_homes, machine, python_under_time_v, run_jobs, start_simulator

PARTS = r"""
import json, resource, time, warnings
from base import settings
settings.load()
import warehouse
import warehouse.marts as marts
import warehouse.snapshots as snapshots
import warehouse.snapshot_delta as snapshot_delta
from base import paths
from warehouse.statements import MARTS_DIR

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

parts = []
def timed(name, fn):
    t, c = time.perf_counter(), cpu()
    out = fn()
    parts.append({"part": name, "wall_s": round(time.perf_counter() - t, 3),
                  "cpu_s": round(cpu() - c, 3)})
    return out

# files one by one (the statements rebuild_marts runs, timed one by one), then rolled back
with warehouse.connect() as con:
    from warehouse.duckdb_bounds import CITY, bound
    from seeds.registry import registry_path
    from warehouse.statements import literal
    con.execute(f"SET VARIABLE hub_seeds = {literal(paths.SEEDS)}")
    con.execute(f"SET VARIABLE hub_registry = {literal(registry_path())}")
    marts._set_connection_states(con)
    if hasattr(marts, "SEED_CSV"):
        con.execute(marts.SEED_CSV)
    bound(con, CITY)
    con.execute("BEGIN")
    # this branch's marts write mart.person / mart.special_groups by delta (warehouse.mart_delta)
    delta = getattr(marts, "mart_delta", None)
    build = timed("marts: plan (delta or full)", lambda: delta.plan(con)) if delta else None
    for file in sorted(MARTS_DIR.glob("[0-9][0-9]_*.sql")):
        text = file.read_text(encoding="utf-8")
        run = (lambda t=text: delta.run_file(con, t, build)) if delta else (lambda t=text: con.execute(t))
        timed("marts file " + file.name, run)
    if build is not None:
        print("marts build:", build)
    con.execute("ROLLBACK")
# the publish's parts, timed by wrapping the functions it calls (same code, same order)
def wrap(module, name, label):
    fn = getattr(module, name)
    if fn is None:
        return
    def timed_call(*args, **kw):
        what = label(args) if callable(label) else label
        return timed(what, lambda: fn(*args, **kw))
    setattr(module, name, timed_call)

wrap(snapshots, "publish_pii_snapshot", "  publish: restricted PII snapshot")
wrap(snapshot_delta, "_check_against_live", "  publish: analyst delta: checks")
wrap(snapshot_delta, "_apply_entity", lambda a: f"  publish: analyst delta: core.{a[2] if len(a) > 4 else a[1]} (+history)")
wrap(snapshot_delta, "_replace", lambda a: f"  publish: analyst delta: replace {a[1]}.{a[2]}")
wrap(snapshot_delta, "_write_state", "  publish: analyst delta: publish record")
wrap(snapshot_delta, "_apply", "  publish: analyst delta: every table + COMMIT (sum of the above)")
wrap(snapshot_delta, "_publish_delta", "  publish: analyst delta: all (copy, apply, CHECKPOINT, fsync)")
if hasattr(snapshot_delta, "mart_delta"):
    wrap(snapshot_delta.mart_delta, "apply_to_copy", "  publish: analyst delta: mart.person + special_groups by the build's delta")
if hasattr(snapshot_delta, "_restamp"):
    wrap(snapshot_delta, "_restamp", lambda a: f"    restamp core.{a[1]}")

c0 = cpu()
with warehouse.connect() as con:
    built = timed("marts: rebuild_marts (as the city step runs it)", lambda: warehouse.rebuild_marts(con))
outcome = timed("snapshots: publish_snapshots (as the city step runs it)", lambda: warehouse.publish_snapshots())
print("RESULT " + json.dumps({"parts": parts, "analyst": outcome.as_metadata(),
      "city_step_cpu_s": round(cpu() - c0, 2)}, default=str))
"""


def build(dest: Path, scale: float, days: float) -> None:
    sim = start_simulator(7, scale)
    base, _ = fresh_homes()
    try:
        run_jobs(sim, [("sync_all_counties", "full"), ("sync_city", None)], home=base)
        print(f"demo done; clock +{days} day(s): {sim.advance(days=days)}", flush=True)
        run_jobs(sim, [("sync_all_counties", "incremental")], home=base)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(base / "hub", dest / "hub", symlinks=True)
        print(f"state after the incremental (no city step yet) in {dest}")
    finally:
        sim.stop()
        shutil.rmtree(base, ignore_errors=True)


def _repoint_publish_record(warehouse_dir: Path) -> None:
    """The copy holds the same bytes as the kept home; its analyst publish record names the
    kept home's live file and the snapshot's inode: point it at the copy, so the city step may
    publish a delta as it would have in the kept home."""
    record = warehouse_dir / ".snapshot.duckdb.publish.json"
    if not record.exists():
        return
    state = json.loads(record.read_text())
    st = (warehouse_dir / "snapshot.duckdb").stat()
    state["live"] = str((warehouse_dir / "hub.duckdb").resolve())
    state["file"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    record.write_text(json.dumps(state, indent=1))


def work_copy(state: Path, suffix: str, src: Path) -> tuple[Path, dict[str, str]]:
    """A fresh copy of ``state``'s home beside it (``<state><suffix>``), its publish record
    pointed at the copy, and the environment of a child running ``src``'s code on it."""
    work = state.with_name(state.name + suffix)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(state / "hub", work / "hub", symlinks=True)
    _repoint_publish_record(work / "hub" / "warehouse")
    env = {
        **os.environ,
        "HUB_HOME": str(work / "hub"),
        "HUB_PROFILE": "demo",
        "PYTHONPATH": str(src),
    }
    for name in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT"):
        env.pop(name, None)
    return work, env


def profile(state: Path, src: Path) -> dict:
    work, env = work_copy(state, "-work", src)
    load = os.getloadavg()
    try:
        out = python_under_time_v(PARTS, env, src)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["process_cpu_s"] = out.pop("cpu_s")
    out["load_before"] = [round(x, 2) for x in load]
    for p in out["parts"]:
        print(f"{p['part']:<58} {p['wall_s']:>7.2f} s wall {p['cpu_s']:>7.2f} s CPU")
    a = out["analyst"]
    print(
        f"analyst: {a['mode']} ({a['reason']}); {a['sync_runs']} syncs, "
        f"{a['rows_deleted']:,} rows deleted, {a['rows_inserted']:,} inserted, "
        f"{a.get('rows_restamped', '-')} restamped"
    )
    print(
        f"city step CPU {out['city_step_cpu_s']} s; process CPU {out['process_cpu_s']} s; "
        f"peak RSS {out['peak_rss_mb']} MB; load before {out['load_before']}",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["build", "profile"])
    parser.add_argument("state", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--src", type=Path, default=REPO, help="the hub's code to profile (e.g. a `git archive`)"
    )
    args = parser.parse_args()
    print(f"{machine()}", flush=True)
    if args.what == "build":
        build(args.state, args.scale, args.days)
    else:
        for _ in range(args.repeat):
            profile(args.state, args.src)


if __name__ == "__main__":
    main()
