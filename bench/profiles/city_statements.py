"""The city step of a one-day incremental, statement by statement, A/B (helper 13am).

On a state kept by ``city_delta_parts.py build DEST`` (the demo, the clock +1 day, an
incremental of the seven counties; the city step not yet run), for each ``--src`` in turn
(a ``git archive`` of main, this tree, …; alternated over ``--repeat`` rounds), on a fresh copy
of the state, in a fresh process without Dagster:

* the city step as the assets run it (``rebuild_marts``, then ``publish_snapshots``), every
  DuckDB statement timed (CPU and wall, through a wrapper of the connections the step opens);
* the city step once more on the result, with nothing new (``again``): what the step costs
  whatever the day changed;
* the two byte copies (live and analyst file) with their fsync: the bare file work of a publish.

The kept state's marts record names the digest of the mart files that built it
(``warehouse.mart_delta``): when ``--src``'s mart files differ, the copy's record gets ``--src``'s
digest, as if the demo had been built by it (its marts equal main's: the A/B proves it with
``--keep`` and a table-by-table comparison), else its marts would be rebuilt whole.

    .venv/bin/python bench/profiles/city_statements.py /tmp/city-s1 --src /tmp/main-src --src . \
        [--repeat 3] [--top 25]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, python_under_time_v
from city_delta_parts import work_copy

STEP = r"""
import collections, json, os, resource, shutil, time
import duckdb
from base import paths, settings
settings.load()
import warehouse
import warehouse.mart_delta as mart_delta

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

# the kept record's digest -> this code's (see the module docstring)
con = duckdb.connect(str(paths.live_db()))
digest = mart_delta.definition_digest(con)
con.execute("UPDATE marts_state.build SET definition_digest = ?", [digest])
con.close()

statements = collections.defaultdict(lambda: [0, 0.0, 0.0])

class Timed:
    # a DuckDB connection whose execute() is timed per statement (its first 100 characters)
    def __init__(self, con, tag):
        self._con, self._tag = con, tag
    def __getattr__(self, name):
        return getattr(self._con, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._con.__exit__(*exc)
    def execute(self, query, *args, **kw):
        c, w = cpu(), time.perf_counter()
        try:
            return self._con.execute(query, *args, **kw)
        finally:
            s = statements[self._tag + ": " + " ".join(query.split())[:100]]
            s[0] += 1
            s[1] += cpu() - c
            s[2] += time.perf_counter() - w

connect = duckdb.connect  # the module's: warehouse.connect() opens the marts' with it too

runs = {}
for label in ("day", "again"):
    statements.clear()
    c0, w0 = cpu(), time.perf_counter()
    with warehouse.connect() as con:
        warehouse.rebuild_marts(Timed(con, "marts"))
    c1, w1 = cpu(), time.perf_counter()
    duckdb.connect = lambda *a, **k: Timed(connect(*a, **k), "publish")
    try:
        out = warehouse.publish_snapshots()
    finally:
        duckdb.connect = connect
    c2, w2 = cpu(), time.perf_counter()
    runs[label] = {
        "marts_cpu_s": round(c1 - c0, 2), "marts_s": round(w1 - w0, 2),
        "publish_cpu_s": round(c2 - c1, 2), "publish_s": round(w2 - w1, 2),
        "city_cpu_s": round(c2 - c0, 2), "analyst": out.as_metadata(),
        "statements": sorted(([k, n, round(c, 3), round(w, 3)] for k, (n, c, w)
                              in statements.items()), key=lambda s: -s[2]),
    }
c, w = cpu(), time.perf_counter()
for source in (paths.live_db(), paths.snapshot_db()):
    copy = source.with_name(source.name + ".copy")
    shutil.copyfile(source, copy)
    fd = os.open(copy, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    copy.unlink()
runs["byte_copies"] = {"cpu_s": round(cpu() - c, 2), "wall_s": round(time.perf_counter() - w, 2)}
print("RESULT " + json.dumps(runs, default=str))
"""


def once(state: Path, src: Path, top: int, keep: Path | None) -> None:
    work, env = work_copy(state, "-statements", src)
    load = os.getloadavg()[0]
    try:
        out = python_under_time_v(STEP, env, src)
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(work / "hub", keep, symlinks=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"== {src} (load {load:.1f}; process {out['cpu_s']} CPU-s, peak {out['peak_rss_mb']} MB)")
    for label in ("day", "again"):
        r = out[label]
        a = r["analyst"]
        print(
            f"  {label}: marts {r['marts_cpu_s']} CPU-s ({r['marts_s']} s), publish "
            f"{r['publish_cpu_s']} CPU-s ({r['publish_s']} s), city step {r['city_cpu_s']} CPU-s; "
            f"analyst {a['mode']}, {a['sync_runs']} syncs, {a['rows_restamped']} restamped"
        )
        for key, n, c, w in r["statements"][:top] if label == "day" else []:
            print(f"    {c:5.2f} CPU {w:5.2f} s x{n:<3} {key}")
    b = out["byte_copies"]
    print(f"  both files byte-copied + fsync: {b['cpu_s']} CPU-s ({b['wall_s']} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path)
    parser.add_argument("--src", type=Path, action="append", required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", type=Path, help="keep each --src's result as KEEP-<n>")
    args = parser.parse_args()
    print(machine(), flush=True)
    for _ in range(args.repeat):
        for n, src in enumerate(args.src):
            keep = args.keep.with_name(f"{args.keep.name}-{n}") if args.keep else None
            once(args.state, src.resolve(), args.top, keep)


if __name__ == "__main__":
    main()
