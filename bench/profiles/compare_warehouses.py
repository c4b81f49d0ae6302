"""Compare two warehouse files table by table: the A/B check that a change to the merge left
the warehouse the same (core and its histories, ops: rejects, findings, quarantine, conflicts,
sync runs, watermarks; raw).

    .venv/bin/python bench/profiles/compare_warehouses.py <a.duckdb> <b.duckdb>

Every table of the schemas ``core``, ``ops`` and ``raw`` is compared as a multiset of rows
(``EXCEPT ALL`` both ways) on every column except what differs between two runs of the same
merge: run and sync ids, timestamps the hub stamps (``*_at`` but ``source_updated_at``,
``valid_from``/``valid_to``) and durations. Prints one line per table and exits 1 on any
difference. Both files are opened read-only (copy a live file first if a writer may hold it).
"""

from __future__ import annotations

import sys

import duckdb

SCHEMAS = ("core", "ops", "raw")
#: columns that differ between two runs of the same merge (the hub's own stamps)
VOLATILE_SUFFIXES = ("run_id", "sync_id", "_seconds", "seconds")
VOLATILE = {"valid_from", "valid_to", "started_at", "finished_at", "id", "attempt"}
KEPT_TIMES = {"source_updated_at"}


def compared_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = 'a' AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()
    kept = []
    for name, data_type in rows:
        stamped = name.endswith("_at") and name not in KEPT_TIMES
        if stamped or name in VOLATILE or name.endswith(VOLATILE_SUFFIXES):
            continue
        if data_type.startswith("TIMESTAMP") and name not in KEPT_TIMES:
            continue
        kept.append(f'"{name}"')
    return kept


def main() -> int:
    a, b = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'a' "
        f"AND schema_name IN {SCHEMAS} ORDER BY ALL"
    ).fetchall()
    differ = 0
    for schema, table in tables:
        cols = ", ".join(compared_columns(con, schema, table))
        only = []
        for left, right in (("a", "b"), ("b", "a")):
            only.append(
                con.execute(
                    f"SELECT count(*) FROM (SELECT {cols} FROM {left}.{schema}.{table} "
                    f"EXCEPT ALL SELECT {cols} FROM {right}.{schema}.{table})"
                ).fetchone()[0]
            )
        rows = con.execute(f"SELECT count(*) FROM a.{schema}.{table}").fetchone()[0]
        same = only == [0, 0]
        differ += not same
        status = "same" if same else f"DIFFER (only in a: {only[0]}, only in b: {only[1]})"
        print(f"{schema}.{table}: {rows} rows, {status}")
    print("no difference" if not differ else f"{differ} tables differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
