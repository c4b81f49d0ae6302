"""DuckLake on a real PostgreSQL catalog: offline extension loading and concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import duckdb
import pytest

from warehouse.lake import extensions

pytestmark = pytest.mark.lake


def _attach(con: duckdb.DuckDBPyConnection, dsn: str, data: str) -> None:
    extensions.load(con)
    con.execute(f"ATTACH 'ducklake:postgres:{dsn}' AS lake (DATA_PATH '{data}')")


def test_extensions_load_offline_from_the_wheels():
    con = duckdb.connect()
    extensions.load(con)
    loaded = {
        r[0]
        for r in con.execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded"
        ).fetchall()
    }
    assert {"ducklake", "postgres_scanner"} <= loaded


def test_what_ducklake_lacks_is_known(lake_dsn, tmp_path):
    """The differences the backend must cover (docs/engineering/scale-out.md lists them)."""
    con = duckdb.connect()
    _attach(con, lake_dsn, str(tmp_path / "data"))
    con.execute("CREATE TABLE lake.t (id VARCHAR NOT NULL, v INTEGER)")
    with pytest.raises(duckdb.NotImplementedException, match="PRIMARY KEY"):
        con.execute("CREATE TABLE lake.k (id VARCHAR PRIMARY KEY)")
    with pytest.raises(duckdb.NotImplementedException, match="indexes"):
        con.execute("CREATE INDEX ix ON lake.t (id)")
    # MERGE INTO (the keyed upsert the warehouse can use on both backends) and COMMENT ON work.
    con.execute("INSERT INTO lake.t VALUES ('a', 1)")
    con.execute(
        "MERGE INTO lake.t USING (SELECT 'a' AS id, 2 AS v UNION ALL SELECT 'b', 3) s "
        "ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v "
        "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)"
    )
    con.execute("COMMENT ON TABLE lake.t IS 'kept in the catalog'")
    assert con.execute("SELECT id, v FROM lake.t ORDER BY id").fetchall() == [("a", 2), ("b", 3)]
    # Every commit is a snapshot readers can travel back to.
    before_merge = con.execute("SELECT max(snapshot_id) - 2 FROM lake.snapshots()").fetchone()[0]
    old = con.execute(f"SELECT id, v FROM lake.t AT (VERSION => {before_merge})").fetchall()
    assert old == [("a", 1)]


_WRITER = textwrap.dedent(
    """
    import sys, time, duckdb
    from warehouse.lake import extensions
    dsn, data, county = sys.argv[1], sys.argv[2], sys.argv[3]
    con = duckdb.connect()
    extensions.load(con)
    con.execute(f"ATTACH 'ducklake:postgres:{dsn}' AS lake (DATA_PATH '{data}')")
    for attempt in range(50):  # optimistic concurrency: a conflicting commit is retried whole
        try:
            con.execute("BEGIN")
            con.execute(
                "INSERT INTO lake.rows SELECT ? AS county, range AS n FROM range(1000)", [county]
            )
            con.execute("COMMIT")
            break
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            time.sleep(0.05 * (attempt + 1))
    else:
        sys.exit("gave up")
    """
)


def test_seven_writer_processes_commit_concurrently(lake_dsn, tmp_path):
    data = str(tmp_path / "data")
    con = duckdb.connect()
    _attach(con, lake_dsn, data)
    con.execute("CREATE TABLE lake.rows (county VARCHAR, n BIGINT)")
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, lake_dsn, data, f"61102{i}"])
        for i in range(7)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0] * 7
    counts = con.execute(
        "SELECT county, count(*) FROM lake.rows GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert counts == [(f"61102{i}", 1000) for i in range(7)]
