"""polars' jemalloc returns freed pages at once in every hub process (issue 13, the merge step's
peak RSS), also when an ancestor imported polars first and handed polars' own defaults down.

The bench driver imports polars before ``pipelines``: its environment then carries polars'
``dirty_decay_ms:500,muzzy_decay_ms:1000``, and a ``setdefault`` in ``pipelines`` left every
step process of the bench with them (~60 MB more at the merge step's peak at scale 1.0,
bench/profiles/merge.md). These tests start real interpreters with that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import RETURN_AT_ONCE, allocator_conf

REPO = Path(__file__).resolve().parents[2]
POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, RETURN_AT_ONCE),
        ("", RETURN_AT_ONCE),
        (POLARS_DEFAULT, f"{POLARS_DEFAULT},{RETURN_AT_ONCE}"),
        (
            f"{POLARS_DEFAULT},{POLARS_DEFAULT}",
            f"{POLARS_DEFAULT},{POLARS_DEFAULT},{RETURN_AT_ONCE}",
        ),
        ("thp:always", f"thp:always,{RETURN_AT_ONCE}"),
        # an operator's own decay wins, and a value already ours is not appended again
        ("dirty_decay_ms:2000", "dirty_decay_ms:2000"),
        (f"{POLARS_DEFAULT},{RETURN_AT_ONCE}", f"{POLARS_DEFAULT},{RETURN_AT_ONCE}"),
    ],
)
def test_allocator_conf(current, expected):
    assert allocator_conf(current) == expected


CHILD = """
import json, os
import pipelines
import polars as pl

def anon_mb():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith('RssAnon'))

before = anon_mb()
column = pl.Series('x', range(12_500_000), dtype=pl.Int64) * 2  # 100 MB in polars' jemalloc
held = anon_mb()
del column
print(json.dumps({'conf': os.environ['_RJEM_MALLOC_CONF'], 'before': before, 'held': held,
                  'after': anon_mb()}))
"""


def test_freed_polars_memory_returns_when_an_ancestor_imported_polars_first():
    env = {**os.environ, "_RJEM_MALLOC_CONF": POLARS_DEFAULT, "HUB_PROFILE": "demo"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["conf"].endswith(RETURN_AT_ONCE), seen["conf"]
    allocated = seen["held"] - seen["before"]
    assert allocated > 80, seen  # the column really was resident
    # with polars' defaults the 100 MB stay resident after the del (they did before the fix)
    assert seen["after"] - seen["before"] < 0.2 * allocated, seen


DUCKDB_CHILD = """
import json, os, sys
import pipelines.preload  # what the executor's forkserver imports before it forks a step
import duckdb

def anon_mb():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith('RssAnon'))

con = duckdb.connect()
con.execute("SET threads = 1")
before = anon_mb()
con.execute("CREATE TEMP TABLE t AS SELECT range AS n, range::VARCHAR AS s FROM range(4000000)")
held = anon_mb()
con.execute("DROP TABLE t")
print(json.dumps({'conf': os.environ.get('DUCKDB_JE_MALLOC_CONF'), 'before': before,
                  'held': held, 'after': anon_mb()}))
"""


def test_step_processes_return_duckdb_memory_at_once():
    """The forkserver's preload sets DuckDB's jemalloc (its default keeps freed pages for 1 s)
    before the code location imports DuckDB; the run worker (``pipelines`` alone) keeps it."""
    env = {k: v for k, v in os.environ.items() if k != "DUCKDB_JE_MALLOC_CONF"}
    env["HUB_PROFILE"] = "demo"
    done = subprocess.run(
        [sys.executable, "-c", DUCKDB_CHILD],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["conf"] == RETURN_AT_ONCE, seen
    allocated = seen["held"] - seen["before"]
    assert allocated > 40, seen  # the table really was resident
    assert seen["after"] - seen["before"] < 0.2 * allocated, seen
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, pipelines; print(os.environ.get('DUCKDB_JE_MALLOC_CONF'))",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert worker.stdout.strip() == "None"
