"""Migration 010's change: the keyed tables of a warehouse created with PRIMARY KEY indexes,
rebuilt without them (``warehouse/migrations/010_keys_checked_before_commit.sql`` says why).

DuckDB cannot drop a key, and a migration file cannot say "this table as it is now, minus its
key" (its columns and comments are what 001 and every later migration made of it), so the
rebuild reads each table from the catalog: its columns in order with their types, defaults and
NOT NULL, its CHECK constraints, its table and column comments; creates it again without the
PRIMARY KEY / UNIQUE constraint (and without the NOT NULL the key implied, as a fresh
warehouse has it: the key check refuses a NULL key instead, ``warehouse.keys``), copies the rows
in their order and puts the comments back. ``warehouse.connection.migrate`` runs it in the same
transaction that records the migration. Released: change nothing here that changes what it
does (a new migration makes the next change).
A warehouse without keyed tables (a fresh one, the lake) has nothing to rebuild.
"""

from __future__ import annotations

import duckdb

from warehouse.statements import literal, q

#: Constraints that stay with a rebuilt table; the keys go.
_KEYS = ("PRIMARY KEY", "UNIQUE")


def rebuild_keyed_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Rebuild every table of ``con``'s database that has a PRIMARY KEY or UNIQUE constraint
    without it; returns the tables rebuilt (``schema.table``)."""
    tables = con.execute(
        "SELECT DISTINCT schema_name, table_name FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND list_contains(?, constraint_type) "
        "ORDER BY schema_name, table_name",
        [list(_KEYS)],
    ).fetchall()
    for schema, table in tables:
        _rebuild(con, schema, table)
    return [f"{s}.{t}" for s, t in tables]


def _rebuild(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    where = "database_name = current_database() AND schema_name = ? AND table_name = ?"
    at = [schema, table]
    constraints = con.execute(
        f"SELECT constraint_type, constraint_column_names, constraint_text "
        f"FROM duckdb_constraints() WHERE {where}",
        at,
    ).fetchall()
    unknown = {kind for kind, _, _ in constraints} - {*_KEYS, "NOT NULL", "CHECK"}
    if unknown:  # a FOREIGN KEY would need its own thought: none exists (001-009)
        raise RuntimeError(f"{schema}.{table}: cannot rebuild a table with {sorted(unknown)}")
    key_columns = {c for kind, cols, _ in constraints if kind in _KEYS for c in cols}
    not_null = {cols[0] for kind, cols, _ in constraints if kind == "NOT NULL"} - key_columns
    checks = [text for kind, _, text in constraints if kind == "CHECK"]
    columns = con.execute(
        f"SELECT column_name, data_type, column_default, comment FROM duckdb_columns() "
        f"WHERE {where} ORDER BY column_index",
        at,
    ).fetchall()
    (table_comment,) = con.execute(
        f"SELECT comment FROM duckdb_tables() WHERE {where}", at
    ).fetchone()
    definitions = [
        f"{q(name)} {data_type}"
        + (f" DEFAULT {default}" if default is not None else "")
        + (" NOT NULL" if name in not_null else "")
        for name, data_type, default, _ in columns
    ]
    name, keyed = f"{q(schema)}.{q(table)}", f"{q(schema)}.{q(table + '__keyed')}"
    con.execute(f"ALTER TABLE {name} RENAME TO {q(table + '__keyed')}")
    con.execute(f"CREATE TABLE {name} ({', '.join(definitions + checks)})")
    con.execute(f"INSERT INTO {name} SELECT * FROM {keyed}")
    con.execute(f"DROP TABLE {keyed}")
    if table_comment:
        con.execute(f"COMMENT ON TABLE {name} IS {literal(table_comment)}")
    for column, _, _, comment in columns:
        if comment:
            con.execute(f"COMMENT ON COLUMN {name}.{q(column)} IS {literal(comment)}")
