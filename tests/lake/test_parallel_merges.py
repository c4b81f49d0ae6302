"""All seven counties merged at once, from seven processes, into one lake, end exactly as the
same landings merged one after another (in the order the parallel merges committed)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import warehouse
from base.paths import REPO
from pipelines import sync
from seeds.registry import counties, county

pytestmark = [pytest.mark.lake, pytest.mark.e2e]

_MERGER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pipelines import sync
    from seeds.registry import county

    barrier, slug, parties = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    landed = sync.Landed(**json.loads(sys.stdin.read()))
    (barrier / slug).touch()
    while len(list(barrier.iterdir())) < parties:
        time.sleep(0.001)
    merged = sync.merge(county(slug), landed)
    print(json.dumps({"slug": slug, "sync_run_id": merged.sync_run_id}))
    """
)


def _use_lake(monkeypatch, dsn: str, data: Path) -> None:
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", dsn)
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", str(data))


def lake_content(con) -> dict[str, list]:
    """Every row of every core, ops and raw table, without the columns that hold wall-clock
    times (when a merge ran differs between two runs of the same merges)."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name IN ('core', 'ops', 'raw') "
        "AND table_name NOT IN ('schema_migration', 'seed', 'hub_profile') ORDER BY ALL"
    ).fetchall()
    out = {}
    for schema, table in tables:
        timed = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                "AND schema_name = ? AND table_name = ? AND data_type LIKE 'TIMESTAMP%'",
                [schema, table],
            ).fetchall()
        ]
        exclude = f" EXCLUDE ({', '.join(timed)})" if timed else ""
        out[f"{schema}.{table}"] = con.execute(
            f"SELECT *{exclude} FROM {schema}.{table} ORDER BY ALL"
        ).fetchall()
    return out


def test_seven_counties_merging_at_once_equal_the_serial_merge(
    simulator, postgres, hub_home, tmp_path, monkeypatch
):
    _use_lake(monkeypatch, postgres.database("parallel_city"), tmp_path / "parallel")
    landed = {c.slug: sync.land(c) for c in counties()}
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    mergers = []
    for slug, land in landed.items():
        proc = subprocess.Popen(
            [sys.executable, "-c", _MERGER, str(barrier), slug, str(len(landed))],
            cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        proc.stdin.write(json.dumps(dataclasses.asdict(land)))
        proc.stdin.close()
        mergers.append(proc)
    for proc in mergers:
        proc.wait(timeout=600)
        assert proc.returncode == 0, proc.stderr.read()[-3000:]
    parallel_seconds = time.perf_counter() - started
    with warehouse.connect(read_only=True) as con:
        parallel = lake_content(con)
        order = [
            r[0]
            for r in con.execute(
                "SELECT county_code FROM ops.sync_run GROUP BY 1 ORDER BY max(finished_at)"
            ).fetchall()
        ]
    assert len(order) == 7
    assert parallel["ops.conflict"], "the city at test scale has cross-county conflicts to race"

    _use_lake(monkeypatch, postgres.database("serial_city"), tmp_path / "serial")
    by_code = {c.code: c for c in counties()}
    started = time.perf_counter()
    for code in order:
        sync.merge(county(by_code[code].slug), landed[by_code[code].slug])
    serial_seconds = time.perf_counter() - started
    with warehouse.connect(read_only=True) as con:
        serial = lake_content(con)
    assert serial.keys() == parallel.keys()
    for table in serial:
        assert serial[table] == parallel[table], table
    print(
        f"seven merges: parallel {parallel_seconds:.1f} s (seven processes started to all "
        f"committed), serial {serial_seconds:.1f} s (one process, already warm)"
    )
