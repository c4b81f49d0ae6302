"""The floor of 商州's daily re-read: fetch its eight listings in full and parse every page.

商州's battle v2 platform has no time filter (shared platforms doc: "every sync is a full
listing"), so any incremental of the city reads all of its ~175k records every day, 200 a page
(the v2 cap). This client logs in as the hub's connector does (form fields), pages each listing
with ``pageNum``/``pageSize=200`` until ``total`` is reached, and parses each page with polars
(``read_json`` of the whole body with the schema inferred from every row, as the hub's landing
reads a page); it keeps nothing, writes nothing, validates nothing. Whatever the hub does with
the records costs more, so its CPU is a part of the incremental's floor that no hub code can
avoid (``incremental_city.py --floor``). Writes one
JSON line with its timings to stdout.

    BENCH_URL=<simulator>/shangzhou BENCH_KEY=… BENCH_SECRET=… .venv/bin/python bench/_reread_floor.py
"""

from __future__ import annotations

import io
import json
import os
import resource
import time

import polars as pl
import requests

#: 商州's listings (shared platforms doc, battle.md "Lists"): the eight the connector reads.
LISTINGS = (
    "/system/area/list",
    "/fpzz/pkh/list",
    "/fpzz/pkry/list",
    "/fpzz/bfcs/list",
    "/fpzz/xd/list",
    "/fpzz/xmk/list",
    "/fpzz/bfr/list",
    "/fpzz/bfgx/list",
)
PAGE_SIZE = 200  # the v2 cap


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    started, cpu_started = time.perf_counter(), _cpu()
    base = os.environ["BENCH_URL"].rstrip("/")
    session = requests.Session()
    login = session.post(
        f"{base}/login",
        data={"username": os.environ["BENCH_KEY"], "password": os.environ["BENCH_SECRET"]},
        timeout=30,
    ).json()
    session.headers["Authorization"] = "Bearer " + login["token"]
    pages = records = 0
    fetch_s = parse_s = 0.0
    for path in LISTINGS:
        page = 1
        while True:
            t0 = time.perf_counter()
            got = session.get(
                f"{base}{path}", params={"pageNum": page, "pageSize": PAGE_SIZE}, timeout=60
            )
            got.raise_for_status()
            fetch_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            envelope = pl.read_json(io.BytesIO(got.content), infer_schema_length=None)
            total = envelope["total"].item()
            rows = envelope.select(pl.col("rows").explode()).unnest("rows")
            parse_s += time.perf_counter() - t0
            pages += 1
            records += rows.height
            if page * PAGE_SIZE >= total:
                break
            page += 1
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "own_cpu_s": _cpu() - cpu_started,
                "pages": pages,
                "records": records,
                "fetch_s": fetch_s,
                "parse_s": parse_s,
            }
        )
    )


if __name__ == "__main__":
    main()
