"""Profile the MERGE step of a full 洛南 sync, and of a second full sync that changes nothing.

Lands a full sync of 洛南 from the simulator (served from a thread of this process, scale
``--scale``), then merges it in a FRESH child process (``--child``) under pyinstrument, so the
child's peak RSS (``VmHWM``) and CPU seconds are the merge step's own: the simulator's world
and the landing never share its address space. Then lands a second full sync (nothing changed
at the source) and merges that the same way: the "full re-read" case.

    .venv/bin/python bench/profiles/profile_merge.py [--scale 1.0] [--out /tmp/merge-profile]

Prints one line per merge (CPU s, wall s, peak RSS, RSS after imports, counts) and writes the
pyinstrument text and HTML reports into ``--out``. Summaries live in ``bench/profiles/merge.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _time_statements() -> dict[str, float]:
    """Wall seconds per named SQL statement (file:name, entity), summed over the merge."""
    from warehouse import statements

    spent: dict[str, float] = {}
    original = statements.run

    def timed(con, file, name, params=None, **identifiers):
        started = time.perf_counter()
        try:
            return original(con, file, name, params, **identifiers)
        finally:
            key = f"{file}:{name} {identifiers.get('entity', '')}".strip()
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

    statements.run = timed
    import warehouse.batch
    import warehouse.merge
    import warehouse.run_log

    for module in (warehouse.batch, warehouse.merge, warehouse.run_log):
        for attr in ("run", "run_statement"):
            if getattr(module, attr, None) is original:
                setattr(module, attr, timed)
    return spent


def _single_threaded(threads: str | None) -> None:
    """``PROFILE_DUCKDB_THREADS=1``: every DuckDB connection of the step runs on one thread,
    so its CPU seconds do not include threads spinning for a core that the other processes of
    a loaded machine hold (the A/B figures in merge.md)."""
    if not threads:
        return
    import duckdb

    connect = duckdb.connect

    def one_thread(database=":memory:", read_only=False, config=None, **kw):
        return connect(database, read_only, {**(config or {}), "threads": int(threads)}, **kw)

    duckdb.connect = one_thread


def child(landed_json: Path, out: Path, label: str) -> None:
    """Merge one landed sync under pyinstrument; print the step's own figures as JSON."""
    sys.path.insert(0, str(REPO))
    from pyinstrument import Profiler

    from pipelines import sync
    from pipelines.sync import Landed
    from seeds.registry import county

    landed = Landed(**json.loads(landed_json.read_text()))
    statements = _time_statements()
    _single_threaded(os.environ.get("PROFILE_DUCKDB_THREADS"))
    after_imports = _status_mb("VmRSS")
    profiler = Profiler(interval=0.005)
    wall = time.perf_counter()
    cpu = time.process_time()
    profiler.start()
    merged = sync.merge(county("luonan"), landed)
    profiler.stop()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    (out / f"{label}.txt").write_text(profiler.output_text(unicode=True, color=False))
    (out / f"{label}.html").write_text(profiler.output_html())
    totals = {
        k: sum(c.get(k, 0) for c in merged.counts.values())
        for k in ("fetched", "inserted", "updated", "unchanged", "rejected", "findings")
    }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    top = sorted(statements.items(), key=lambda kv: -kv[1])[:12]
    (out / f"{label}.statements.txt").write_text(
        "".join(f"{seconds:7.3f} s  {name}\n" for name, seconds in top)
    )
    print(
        json.dumps(
            {
                "label": label,
                "merge_cpu_s": round(cpu, 2),
                "merge_wall_s": round(wall, 2),
                "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "rss_after_imports_mb": round(after_imports, 1),
                "peak_rss_mb": round(_status_mb("VmHWM"), 1),
                **totals,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "merge-profile")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--label", default="merge", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.out, args.label)
        return

    sys.path.insert(0, str(REPO))
    home = Path(tempfile.mkdtemp(prefix="merge-profile-"))
    os.environ.update(HUB_HOME=str(home), HUB_PROFILE="demo")
    from simulator.embedded import start_in_thread

    sim = start_in_thread(seed=7, scale=args.scale)
    os.environ.update(sim.env())
    from pipelines import sync
    from seeds.registry import county

    print(f"HUB_HOME {home}; load {os.getloadavg()}", flush=True)
    for label in ("first_full", "second_full_unchanged"):
        started = time.perf_counter()
        landed = sync.land(county("luonan"), "full")
        print(f"{label}: landed in {time.perf_counter() - started:.1f} s", flush=True)
        path = home / f"{label}.landed.json"
        path.write_text(json.dumps(asdict(landed)))
        cmd = [sys.executable, __file__, "--child", str(path), "--out", str(args.out)]
        subprocess.run([*cmd, "--label", label], check=True, env=os.environ.copy())
    print(f"load after {os.getloadavg()}", flush=True)
    sim.stop()


if __name__ == "__main__":
    main()
