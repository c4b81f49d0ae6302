"""The analyst lake: the de-identified tier of the DuckLake backend, published from the main lake.

DuckLake's data files are plain Parquet: whoever can read the main lake's data path (or its
catalog database, which holds inlined rows and per-file min/max statistics) can read names and
ID numbers. So analysts never attach the main lake. They attach a SECOND lake — its own catalog
database and its own data path — that holds only what the analyst snapshot holds
(``warehouse.snapshots``: the same schemas, the same tables left out, the same columns dropped or
masked, by the same :func:`warehouse.snapshots.analyst_select`).

Each publish is ONE DuckLake commit on the analyst lake, so analysts attaching it read-only see
the latest committed publish and can travel back to any earlier one
(``AT (VERSION => n)`` / ``AT (TIMESTAMP => t)``). The commit records the main lake's snapshot
it was read from (``commit_extra_info``); the next publish rewrites only the tables the main
lake changed since then (found in the main lake's snapshot change sets), and nothing at all
when nothing changed. The main lake is read at one snapshot for the whole publish (the caller
attaches it pinned, ``SNAPSHOT_VERSION``), so concurrent county merges never give a mixed
picture.

The caller attaches both lakes to one connection (``pipelines.lake.tiers`` does, from the
settings) and calls :func:`publish_analyst_lake`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.keys import NO_KEYED_TABLE
from warehouse.snapshots import (
    PII_ONLY_TABLES,
    PUBLISHED_SCHEMAS,
    analyst_select,
    copy_comments,
)
from warehouse.statements import literal
from warehouse.statements import q as _q
from warehouse.transaction import transaction

#: ``author`` of the analyst lake's publish commits (their ``commit_extra_info`` is JSON with
#: the main lake's ``source_snapshot``).
AUTHOR = "hub publish"
#: Change-set keys of a main-lake snapshot whose values are ids of tables whose rows changed.
_ROW_CHANGES = (
    "tables_inserted_into",
    "tables_deleted_from",
    "inlined_insert",
    "inlined_delete",
    "tables_altered",
)
#: Change-set keys that leave every analyst table as it is.
_HARMLESS = ("tables_compacted", "merge_adjacent", "files_merged", "compacted_table")


@dataclass
class LakePublish:
    """What one publish did: the main lake's snapshot it read, the analyst lake's snapshot it
    committed (unchanged when nothing had to change) and the tables it rewrote."""

    source_snapshot: int
    analyst_snapshot: int | None
    rewritten: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.rewritten or self.dropped)


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple[str, str]]:
    """(schema, table) of every table analysts get from ``database``."""
    kept = ", ".join(map(literal, PUBLISHED_SCHEMAS))
    rows = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
        f"AND schema_name IN ({kept}) ORDER BY 1, 2",
        [database],
    ).fetchall()
    return [(s, t) for s, t in rows if f"{s}.{t}" not in PII_ONLY_TABLES]


def _columns(con, database: str, schema: str, table: str) -> list[tuple[str, str, str | None]]:
    return con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [database, schema, table],
    ).fetchall()


def current_snapshot(con: duckdb.DuckDBPyConnection, lake: str) -> int:
    return con.execute(f"FROM {_q(lake)}.current_snapshot()").fetchone()[0]


def last_published_source(con: duckdb.DuckDBPyConnection, target: str) -> int | None:
    """The main lake's snapshot the analyst lake's latest publish was read from, if any."""
    row = con.execute(
        f"SELECT commit_extra_info FROM {_q(target)}.snapshots() WHERE author = ? "
        "ORDER BY snapshot_id DESC LIMIT 1",
        [AUTHOR],
    ).fetchone()
    return json.loads(row[0])["source_snapshot"] if row else None


def changed_tables(con, source: str, since: int, until: int) -> set[tuple[str, str]] | None:
    """(schema, table) of every main-lake table whose rows or columns changed in the snapshots
    after ``since`` up to ``until``; None when a change may touch any table (a schema, a dropped
    table, a change kind this code does not know) or when some of those snapshots were expired
    meanwhile (their change sets are gone): then everything is republished."""
    changes = con.execute(
        f"SELECT changes FROM {_q(source)}.snapshots() WHERE snapshot_id > ? AND snapshot_id <= ?",
        [since, until],
    ).fetchall()
    if len(changes) != until - since:  # snapshot ids are consecutive: a gap was expired
        return None
    ids: set[str] = set()
    named: set[tuple[str, str]] = set()
    for (change,) in changes:
        for kind, values in (change or {}).items():
            if kind in _ROW_CHANGES:
                ids.update(values)
            elif kind == "tables_created":
                named.update(tuple(v.split(".", 1)) for v in values)  # "schema.table"
            elif kind not in _HARMLESS and not kind.endswith(("macros_created", "views_created")):
                return None
    if ids:
        meta = _q(f"__ducklake_metadata_{source}")
        named.update(
            con.execute(
                f"SELECT DISTINCT s.schema_name, t.table_name FROM {meta}.ducklake_table AS t "
                f"JOIN {meta}.ducklake_schema AS s USING (schema_id) "
                "WHERE list_contains(?, CAST(t.table_id AS VARCHAR))",
                [sorted(ids)],
            ).fetchall()
        )
    return named


def publish_analyst_lake(
    con: duckdb.DuckDBPyConnection, source: str = "live", target: str = "analyst"
) -> LakePublish:
    """Bring the analyst lake ``target`` up to the main lake ``source`` (both attached to
    ``con``; ``source`` may be attached read-only) in one commit; see the module docstring."""
    with transaction(con, NO_KEYED_TABLE):  # a copy: keys checked in the main lake
        source_snapshot = current_snapshot(con, source)  # the read side is pinned from here
        previous = last_published_source(con, target)
        wanted = _tables(con, source)
        dirty: set[tuple[str, str]] | None = None
        if previous is not None and previous <= source_snapshot:
            dirty = changed_tables(con, source, previous, source_snapshot)
        have = set(_tables(con, target))
        result = LakePublish(source_snapshot, None)
        for schema in sorted({s for s, _ in wanted}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(target)}.{_q(schema)}")
        for schema, table in sorted(have - set(wanted)):
            con.execute(f"DROP TABLE {_q(target)}.{_q(schema)}.{_q(table)}")
            result.dropped.append(f"{schema}.{table}")
        for schema, table in wanted:
            if dirty is None or (schema, table) in dirty or (schema, table) not in have:
                _republish(con, source, target, schema, table, (schema, table) in have)
                result.rewritten.append(f"{schema}.{table}")
        macros = copy_macros(con, source, target)
        if not (result.changed or macros):
            return result  # nothing committed: the analyst lake's latest snapshot stands
        extra = json.dumps({"source_snapshot": source_snapshot, "tables": result.rewritten})
        con.execute(
            f"CALL {_q(target)}.set_commit_message(?, ?, extra_info => ?)",
            [AUTHOR, f"publish of main-lake snapshot {source_snapshot}", extra],
        )
    result.analyst_snapshot = current_snapshot(con, target)
    return result


def _republish(con, source: str, target: str, schema: str, table: str, exists: bool) -> None:
    """Rewrite one analyst table from the main lake: its rows replaced when its columns are as
    before, the table re-created (with the comments) when they are not."""
    name = f"{_q(target)}.{_q(schema)}.{_q(table)}"
    columns = _columns(con, source, schema, table)
    select = analyst_select(schema, table, [c for c, _, _ in columns])
    read = f"SELECT {select} FROM {_q(source)}.{_q(schema)}.{_q(table)}"
    shape = con.execute(f"DESCRIBE {read}").fetchall()
    wanted = [(name_, type_) for name_, type_, *_ in shape]
    if exists and [(c, t) for c, t, _ in _columns(con, target, schema, table)] == wanted:
        con.execute(f"DELETE FROM {name}")
        con.execute(f"INSERT INTO {name} BY NAME {read}")
        return
    if exists:
        con.execute(f"DROP TABLE {name}")
    con.execute(f"CREATE TABLE {name} AS {read}")
    copy_comments(con, source, schema, table, target=target)


def _macros(con, database: str) -> dict[tuple[str, str], tuple]:
    rows = con.execute(
        "SELECT schema_name, function_name, parameters, macro_definition "
        "FROM duckdb_functions() WHERE database_name = ? AND function_type = 'table_macro' "
        "AND schema_name IN (SELECT unnest(?))",
        [database, list(PUBLISHED_SCHEMAS)],
    ).fetchall()
    return {(s, n): (tuple(p), d) for s, n, p, d in rows}


def copy_macros(con, source: str, target: str) -> bool:
    """Re-create in ``target`` the table macros of ``source`` that differ (the as-of macros:
    they read the history tables, which the analyst lake has de-identified). The bodies name
    tables without a database, so they resolve in whichever lake a session ``USE``s. (DuckLake
    keeps no comment on a macro: docs/analysts.md describes them.)"""
    theirs, ours = _macros(con, source), _macros(con, target)
    changed = [key for key, macro in theirs.items() if ours.get(key) != macro]
    if not changed:
        return False
    (default,) = con.execute("SELECT current_database()").fetchone()
    con.execute(f"USE {_q(target)}")  # a body is bound in the database it is created in
    try:
        for schema, name in changed:
            params, body = theirs[(schema, name)]
            con.execute(
                f"CREATE OR REPLACE MACRO {_q(schema)}.{_q(name)}"
                f"({', '.join(map(_q, params))}) AS TABLE {body}"
            )
    finally:
        con.execute(f"USE {_q(default)}")
    return True


def expire_old_versions(con: duckdb.DuckDBPyConnection, target: str, keep_days: int) -> None:
    """Forget the publishes of ``target`` older than ``keep_days`` (DuckLake keeps the latest
    snapshot whatever its age) and delete the data files only they used: time travel reaches
    back ``keep_days``, and the data path does not grow without end."""
    days = int(keep_days)
    con.execute(
        f"CALL ducklake_expire_snapshots({literal(target)}, "
        f"older_than => now() - INTERVAL '{days} days')"
    )
    con.execute(f"CALL ducklake_cleanup_old_files({literal(target)}, cleanup_all => true)")


def share_files(data_path: str, file_mode: int) -> None:
    """Give the analyst lake's local data files ``file_mode`` (``HUB_SNAPSHOT_MODE``: 0600, or
    0640 for the analysts' group) and its directories the matching 0700 / 0750. DuckDB writes
    them under the hub's owner-only umask; object-store paths are governed by the bucket."""
    if "://" in data_path or not Path(data_path).is_dir():
        return
    dir_mode = 0o700 | (0o050 if file_mode & 0o040 else 0)
    for root, _dirs, files in os.walk(data_path):
        for path, mode in [(root, dir_mode), *((os.path.join(root, f), file_mode) for f in files)]:
            st = os.lstat(path)
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
