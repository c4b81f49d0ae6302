"""A generic loader on 洛南's endpoints: dlt's ``rest_api`` source into a DuckDB file.

Runs in ``bench/.dlt-venv`` (dlt is not a project dependency); started by ``dlt_vs_hub.py``
with the simulator's URL and credentials in the environment. It authenticates like the
platform asks (token, then ``Authorization: Bearer``), follows ``data.nextCursor`` pages of
5,000 items, and loads the eight listings as they come: no validation, no code mapping, no
history. Writes one JSON line with its timings and counts to stdout.

    BENCH_URL=… BENCH_KEY=… BENCH_SECRET=… BENCH_DIR=… python _dlt_luonan.py jsonl append
"""

from __future__ import annotations

import json
import os
import sys
import time

import dlt
import duckdb
import requests
from _luonan_endpoints import ENDPOINTS
from dlt.sources.rest_api import rest_api_source


def main(file_format: str, disposition: str) -> None:
    api = os.environ["BENCH_URL"].rstrip("/") + "/api/v2"
    work = os.environ["BENCH_DIR"]
    started = time.perf_counter()
    answer = requests.post(
        f"{api}/auth/token",
        json={"appKey": os.environ["BENCH_KEY"], "appSecret": os.environ["BENCH_SECRET"]},
        timeout=30,
    )
    answer.raise_for_status()
    token = answer.json()["data"]["accessToken"]
    source = rest_api_source(
        {
            "client": {
                "base_url": api + "/",
                "auth": {"type": "bearer", "token": token},
                "paginator": {
                    "type": "cursor",
                    "cursor_path": "data.nextCursor",
                    "cursor_param": "cursor",
                },
            },
            "resource_defaults": {
                "primary_key": "id",
                "write_disposition": disposition,
                "endpoint": {"params": {"limit": 5000}, "data_selector": "data.items"},
            },
            "resources": [
                {"name": path.replace("-", "_"), "endpoint": {"path": path}} for path in ENDPOINTS
            ],
        },
        name="luonan",
    )
    db_path = os.path.join(work, "dlt_luonan.duckdb")
    pipeline = dlt.pipeline(
        pipeline_name="luonan_dlt",
        destination=dlt.destinations.duckdb(db_path),
        dataset_name="luonan",
        pipelines_dir=os.path.join(work, "pipelines"),
    )
    t_extract = time.perf_counter()
    pipeline.extract(source, loader_file_format=file_format)
    t_normalize = time.perf_counter()
    pipeline.normalize()
    t_load = time.perf_counter()
    pipeline.load()
    finished = time.perf_counter()

    with duckdb.connect(db_path, read_only=True) as con:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'luonan' "
            "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' ORDER BY table_name"
        ).fetchall()
        rows = {
            t: con.execute(f'SELECT count(*) FROM luonan."{t}"').fetchone()[0] for (t,) in tables
        }
    top_level = {t: n for t, n in rows.items() if "__" not in t}
    print(
        json.dumps(
            {
                "format": file_format,
                "disposition": disposition,
                "seconds": finished - started,
                "extract_s": t_normalize - t_extract,
                "normalize_s": t_load - t_normalize,
                "load_s": finished - t_load,
                "records": sum(top_level.values()),
                "tables": rows,
                "db_mb": os.path.getsize(db_path) / 2**20,
                "dlt": dlt.__version__,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
