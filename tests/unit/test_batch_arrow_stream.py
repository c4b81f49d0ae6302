"""Frames into DuckDB and results back without pyarrow (warehouse.batch.load_frame/frame_of):
the merge step's ~60 MB of pyarrow imports (bench/profiles/merge.md)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from warehouse.batch import Batch, frame_of, load_frame

REPO = Path(__file__).resolve().parents[2]


def test_a_frame_round_trips_with_its_types():
    frame = pl.DataFrame(
        {
            "n": [1, 2, None],
            "s": ["户", None, "x"],
            "t": [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None, None],
            "d": [Decimal("1.50"), None, Decimal("2.00")],
            "l": [["a", "b"], [], None],
        }
    )
    con = duckdb.connect()
    load_frame(con, "_given", frame)
    back = frame_of(con.sql("SELECT * FROM temp._given ORDER BY n NULLS LAST"))
    assert back.schema["d"] == pl.Decimal(38, 2)
    assert back["l"].to_list() == [["a", "b"], [], None]
    assert back["s"].to_list() == ["户", None, "x"]
    assert back["t"][0] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # a temp table, read as often as needed (a stream is read once: it is materialised)
    assert con.sql("SELECT count(*) FROM _given").fetchone()[0] == 3
    assert con.sql("SELECT count(*) FROM _given").fetchone()[0] == 3


def test_batch_drops_what_it_registered():
    con = duckdb.connect()
    batch = Batch(con, {})
    batch.register("_rows", pl.DataFrame({"_row": [1, 2]}))
    assert con.sql("SELECT sum(_row) FROM _rows").fetchone()[0] == 3
    batch.release()
    tables = con.sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert ("_rows",) not in tables


def test_no_pyarrow_is_imported():
    code = (
        "import sys, duckdb, polars as pl\n"
        "from warehouse.batch import frame_of, load_frame\n"
        "con = duckdb.connect()\n"
        "load_frame(con, '_f', pl.DataFrame({'a': [1, 2]}))\n"
        "assert frame_of(con.sql('SELECT sum(a) AS s FROM _f'))['s'][0] == 3\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
