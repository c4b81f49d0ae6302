"""The floor of a loader built on the hub's stack: fetch 洛南's eight listings and load them as
delivered into a DuckDB file, nothing else.

Started by ``dlt_vs_hub.py`` next to dlt, the fetch floor and the hub, on the same simulator,
with the same token auth, cursor paging and 5,000 items a page. Per page: the body is parsed by
polars (``read_json``, the parser the hub's landing uses), the items are appended to the
listing's table as they are (nested arrays stay DuckDB lists; no code mapping, no validation,
no history, no landing of the payload); at the end one ``CHECKPOINT`` compresses the file, as
the hub's merge does. One process, no Dagster. Whatever a loader on requests + polars + DuckDB
does beyond this costs more, so ``dlt's time / (this time + Dagster's floor of a county run)``
bounds the speed-up over dlt the hub could show with work of its own costing nothing. Writes
one JSON line with its timings and counts to stdout.

    BENCH_URL=… BENCH_KEY=… BENCH_SECRET=… BENCH_DB=/tmp/x.duckdb .venv/bin/python bench/_load_floor.py
"""

from __future__ import annotations

import io
import json
import os
import resource
import time

import duckdb
import polars as pl
from _fetch_floor import authorised_session
from _luonan_endpoints import ENDPOINTS


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    started, cpu_started = time.perf_counter(), _cpu()
    session, api = authorised_session()
    # The merge's bounds: one thread, 96 MB (warehouse/duckdb_bounds.py, MERGE_WRITE).
    con = duckdb.connect(os.environ["BENCH_DB"], config={"threads": 1, "memory_limit": "96MB"})
    pages = rows = throttled = 0
    fetch_s = parse_s = insert_s = 0.0
    for path in ENDPOINTS:
        table = path.replace("-", "_")
        params: dict[str, object] = {"limit": 5000}
        created = False
        while True:
            t0 = time.perf_counter()
            got = session.get(f"{api}/{path}", params=params, timeout=60)
            fetch_s += time.perf_counter() - t0
            if got.status_code == 429:  # the platform's rate limit: wait as it says, like dlt
                throttled += 1
                time.sleep(float(got.headers.get("Retry-After", "1")))
                continue
            got.raise_for_status()
            t0 = time.perf_counter()
            envelope = pl.read_json(io.BytesIO(got.content))
            data = envelope.select(pl.col("data").struct.unnest()).row(0, named=True)
            items = envelope.select(pl.col("data").struct.field("items").explode()).unnest("items")
            parse_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            if items.height:
                if not created:
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM items")
                    created = True
                else:
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM items")
            insert_s += time.perf_counter() - t0
            pages += 1
            rows += items.height
            if not (data.get("hasMore") and data.get("nextCursor")):
                break
            params = {"limit": 5000, "cursor": data["nextCursor"]}
    t0 = time.perf_counter()
    con.execute("CHECKPOINT")
    con.close()
    checkpoint_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "own_cpu_s": _cpu() - cpu_started,
                "pages": pages,
                "records": rows,
                "throttled": throttled,
                "fetch_s": fetch_s,
                "parse_s": parse_s,
                "insert_s": insert_s,
                "checkpoint_s": checkpoint_s,
                "db_mb": os.path.getsize(os.environ["BENCH_DB"]) / 2**20,
            }
        )
    )


if __name__ == "__main__":
    main()
