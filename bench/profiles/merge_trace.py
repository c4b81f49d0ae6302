"""Trace one merge statement by statement: which named statement holds how much DuckDB memory
(``duckdb_memory()`` by tag, in memory and spilled) and how much RSS, and which one runs out.

    .venv/bin/python bench/profiles/merge_trace.py <landed.json> --home /tmp/trace \
        [--limit 128MB] [--no-retry] [--dagster-base] [--top 25] [--with-keys] \
        [--sort cpu] [--rows-json rows.json]

Merges a landing kept by ``merge_ab.py land`` (or any ``Landed`` as JSON) into the warehouse
under ``--home`` (a fresh one unless it exists: pass the same home twice for a re-read) in THIS
process, started fresh. Every named SQL statement (``warehouse.statements.run``, as the merge's
modules call it) is timed; before and after it a second connection (a cursor: the merge's own
pending result is never disturbed) reads ``duckdb_memory()``, and a thread samples ``VmRSS``
every 5 ms tagged with the statement running. ``--no-retry`` turns off the merge's second try
at a larger limit, so the statement that runs out of memory is the one named. Prints the
statements in order (seconds, RSS peak, DuckDB memory by tag after), then the one that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Tracer:
    """The statement running now, each statement's RSS peak and DuckDB memory after it."""

    def __init__(self) -> None:
        self.current = "(before the merge)"
        self.rows: list[dict] = []
        self.peaks: dict[int, float] = {}
        self.stop = threading.Event()
        self.touch = {"cpu_s": 0.0, "wall_s": 0.0}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self.stop.is_set():
            index = len(self.rows)
            self.peaks[index] = max(self.peaks.get(index, 0.0), status_mb("VmRSS"))
            time.sleep(0.005)

    @staticmethod
    def duckdb_memory(con) -> dict[str, tuple[int, int]]:
        try:
            rows = (
                con.cursor()
                .execute(
                    "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()"
                    " WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0"
                )
                .fetchall()
            )
        except Exception as exc:  # a trace, never the merge's failure
            return {"(unreadable)": (0, 0), str(exc)[:60]: (0, 0)}
        return {tag: (mem >> 20, tmp >> 20) for tag, mem, tmp in rows}

    def wrap(self, original):
        def traced(con, file, name, params=None, **identifiers):
            label = f"{file}:{name} {identifiers.get('entity', '')}".strip()
            self.rows.append({"statement": label, "started": time.perf_counter()})
            row = self.rows[-1]
            cpu = time.process_time()
            try:
                return original(con, file, name, params, **identifiers)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                raise
            finally:
                row["seconds"] = time.perf_counter() - row.pop("started")
                row["cpu_s"] = time.process_time() - cpu
                row["duckdb_after"] = self.duckdb_memory(con)

        return traced


def install(tracer: Tracer, retry: bool) -> None:
    from warehouse import statements

    original = statements.run
    traced = tracer.wrap(original)
    statements.run = traced
    import warehouse.batch
    import warehouse.merge
    import warehouse.run_log
    import warehouse.touch

    for module in (warehouse.batch, warehouse.merge, warehouse.run_log, warehouse.touch):
        for attr in ("run", "run_statement"):
            if getattr(module, attr, None) is original:
                setattr(module, attr, traced)
    import warehouse.keys

    check = warehouse.keys.check_keys  # the transaction calls it through the module

    def traced_check(con, scope=None):
        row = {"statement": "keys.check_keys (before COMMIT)", "started": time.perf_counter()}
        tracer.rows.append(row)
        cpu = time.process_time()
        try:
            return check(con, scope)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            raise
        finally:
            row["seconds"] = time.perf_counter() - row.pop("started")
            row["cpu_s"] = time.process_time() - cpu
            row["duckdb_after"] = tracer.duckdb_memory(con)

    warehouse.keys.check_keys = traced_check
    # the merge's COMMIT: DuckDB checkpoints there (the WAL is past 16 MB), compressing the new
    # rows and, when appends left row groups it can merge, rewriting them (a "vacuum")
    begun = warehouse.merge.transaction

    @contextmanager
    def timed_transaction(con, keyed):
        row = {"statement": "COMMIT (check_keys included)"}
        try:
            with begun(con, keyed) as inside:
                yield inside
                tracer.rows.append(row)
                row["started"], row["cpu"] = time.perf_counter(), time.process_time()
        finally:
            if "cpu" in row:
                row["seconds"] = time.perf_counter() - row.pop("started")
                row["cpu_s"] = time.process_time() - row.pop("cpu")
                row["duckdb_after"] = tracer.duckdb_memory(con)

    warehouse.merge.transaction = timed_transaction
    # the touch of unchanged rows after the COMMIT (warehouse.touch): its own CPU seconds
    finish = warehouse.merge.finish_touches

    def timed_finish(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return finish(*args, **kwargs)
        finally:
            tracer.touch["cpu_s"] += time.process_time() - cpu
            tracer.touch["wall_s"] += time.perf_counter() - wall

    warehouse.merge.finish_touches = timed_finish
    if not retry:
        import warehouse.duckdb_bounds

        warehouse.duckdb_bounds.raise_memory_limit = lambda con, step: False


def report(tracer: Tracer, top: int, sort: str = "rss") -> None:
    rows = list(enumerate(tracer.rows))
    if sort == "cpu":
        heavy = sorted(rows, key=lambda ir: -ir[1].get("cpu_s", 0.0))[:top]
    else:
        heavy = sorted(rows, key=lambda ir: -tracer.peaks.get(ir[0] + 1, 0))[:top]
    heavy += rows[-4:]  # the last statements (the failing one among them)
    print(
        f"{'#':>4} {'s':>7} {'CPU-s':>6} {'RSS MB':>7}  statement  | DuckDB MB by tag (memory/temp)"
    )
    for index, row in sorted(dict(heavy).items()):
        tags = ", ".join(
            f"{t} {m}/{s}" for t, (m, s) in sorted(row["duckdb_after"].items()) if m or s
        )
        peak = tracer.peaks.get(index + 1, 0)
        cpu = row.get("cpu_s", 0.0)
        print(
            f"{index:4d} {row['seconds']:7.2f} {cpu:6.2f} {peak:7.0f}  {row['statement']}  | {tags}"
        )
    failed = [r for r in tracer.rows if "error" in r]
    for row in failed:
        print(f"FAILED: {row['statement']}: {row['error']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("landed", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--limit", help="HUB_MERGE_MEMORY_LIMIT for this merge")
    parser.add_argument("--no-retry", action="store_true")
    parser.add_argument("--dagster-base", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--sort", choices=("rss", "cpu"), default="rss", help="the top statements by RSS or CPU"
    )
    parser.add_argument("--rows-json", type=Path, help="write every statement's row here")
    parser.add_argument(
        "--with-keys",
        action="store_true",
        help="comparison: a fresh warehouse WITH PRIMARY KEY indexes, as before migration 010",
    )
    args = parser.parse_args()
    os.environ.update(HUB_HOME=str(args.home), HUB_PROFILE="demo")
    if args.limit:
        os.environ["HUB_MERGE_MEMORY_LIMIT"] = args.limit
    sys.path.insert(0, str(REPO))
    if args.dagster_base:
        import pipelines.preload  # noqa: F401
    from pipelines import sync
    from pipelines.sync import Landed
    from seeds.registry import county

    if args.with_keys:
        import warehouse.connection

        warehouse.connection.without_keys = lambda text: text  # the key clauses applied
        warehouse.connection.PYTHON_STEPS = {}  # and not rebuilt away by migration 010
    landed = Landed(**json.loads(args.landed.read_text()))
    tracer = Tracer()
    install(tracer, retry=not args.no_retry)
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = "ok"
    try:
        sync.merge(county(landed.county_code), landed)
    except Exception as exc:  # reported below
        outcome = f"{type(exc).__name__}: {str(exc)[:300]}"
    tracer.stop.set()
    report(tracer, args.top, args.sort)
    if args.rows_json:
        args.rows_json.write_text(json.dumps(tracer.rows, ensure_ascii=False, indent=0))
    print(
        json.dumps(
            {
                "outcome": outcome,
                "cpu_s": round(time.process_time() - cpu, 2),
                "wall_s": round(time.perf_counter() - wall, 2),
                "peak_rss_mb": round(status_mb("VmHWM")),
                "statements": len(tracer.rows),
                "check_keys": [
                    {k: round(r[k], 2) for k in ("seconds", "cpu_s") if k in r}
                    for r in tracer.rows
                    if r["statement"].startswith("keys.check_keys")
                ],
                "touch_cpu_s": round(tracer.touch["cpu_s"], 2),
                "touch_wall_s": round(tracer.touch["wall_s"], 2),
                "load": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
