"""The two files the hub publishes from the live warehouse (``warehouse.publish.publish_snapshot``):

* the **analyst snapshot** (``paths.snapshot_db()``, for every analyst): ``core``, ``ops`` and
  ``mart`` with **no direct identifier anywhere** — no names, ID numbers, phone numbers or full
  birth dates (``schemas.columns.IDENTIFYING``) in any table. Persons keep ``person_key`` (the
  keyed HMAC) to join and count, and ``birth_year`` instead of the birth date. In ``ops.reject``
  and ``ops.finding`` the value (and its echo in the message) of an identifying column is masked
  as ``***``; rule, column, key and reason stay. ``ops.quarantine`` (whole rejected records)
  is left out.
* the **restricted PII snapshot** (``paths.pii_snapshot_db()``, for the few with PII rights):
  everything but ``raw``, as the live warehouse holds it. Always 0600 in a 0700 directory.

The analyst snapshot is built into a NEW file (schema copied with ``COPY FROM DATABASE …
(SCHEMA)``, so comments, views and macros stay; identifying columns dropped while the tables
are empty; then each table re-created with ``CREATE TABLE AS`` from the rows without them, its
comments put back), so no identifier is ever
written to it, not even to pages a later checkpoint frees. Both files are written beside their target and renamed into
place atomically.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from base import settings
from schemas.columns import IDENTIFYING
from schemas.entities import ISSUE_TABLES
from warehouse.connection import quiet
from warehouse.duckdb_bounds import CITY, bound
from warehouse.keys import NO_KEYED_TABLE
from warehouse.live_copy import copy_live_consistently
from warehouse.statements import literal, run
from warehouse.statements import q as _q
from warehouse.transaction import transaction

#: Schemas analysts get. ``raw`` (payload metadata) stays with the engineers.
PUBLISHED_SCHEMAS = ("core", "ops", "mart", "ref")
#: Tables with whole records (PII) that only the PII snapshot carries.
PII_ONLY_TABLES = ("ops.quarantine",)
#: core tables of each entity that hold its columns (current state and history versions).
_TABLES_OF = {
    "person": ("person", "person_history"),
    "household": ("household", "household_history"),
}
MASK = "***"
#: The comment of the ``birth_year`` column analysts get instead of ``birth_date``.
BIRTH_YEAR_COMMENT = (
    "birth_year — 出生年份: year of birth (the full date is only in the restricted PII snapshot)"
)

#: What a masked reject/finding message hides besides the value itself: digit runs long enough to
#: be (part of) an ID number or phone, and dates (the ID number's birth date echoed in details).
_MESSAGE_MASKS = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", r"[0-9][0-9.Ee+]{5,}[0-9Xx]")


def redacted_columns() -> dict[str, tuple[str, ...]]:
    """``core`` table -> its identifying columns (dropped from the analyst snapshot)."""
    out: dict[str, tuple[str, ...]] = {}
    for entity, columns in IDENTIFYING.items():
        for table in _TABLES_OF.get(entity, (entity,)):
            out[table] = columns
    return out


def _identifying_issue() -> str:
    """SQL condition: this ops.reject / ops.finding row is about an identifying value."""
    pairs = " OR ".join(
        f"(entity = {literal(e)} AND column_name IN ({', '.join(map(literal, cols))}))"
        for e, cols in IDENTIFYING.items()
    )
    # ID-number rules quote the number or its birth date whatever column they name.
    return f"({pairs} OR rule LIKE 'id_number%' OR rule = 'cadre_registered_poor')"


def _masked_message() -> str:
    expr = f"replace(message, coalesce(value, ''), {literal(MASK)})"
    expr = f"CASE WHEN coalesce(value, '') = '' THEN message ELSE {expr} END"
    for pattern in _MESSAGE_MASKS:
        expr = f"regexp_replace({expr}, {literal(pattern)}, {literal(MASK)}, 'g')"
    return expr


def _select_list(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """The analyst copy of one table: its (remaining) columns, derived ones computed."""
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
    ]
    return analyst_select(schema, table, columns)


def analyst_select(schema: str, table: str, columns: list[str]) -> str:
    """The SELECT list that reads ``schema.table`` for analysts, given its ``columns`` (the live
    table's, or the analyst copy's): identifying columns left out, ``birth_date`` read as
    ``birth_year``, identifying values (and their echo in the message) of ``ops.reject`` and
    ``ops.finding`` masked. The one definition both the analyst snapshot and the analyst lake
    (``warehouse.lake_publish``) use."""
    dropped = redacted_columns().get(table, ()) if schema == "core" else ()
    identifying = _identifying_issue()
    exprs = []
    for c in columns:
        if schema == "core" and (c == "birth_year" or (c == "birth_date" and c in dropped)):
            exprs.append('CAST(year("birth_date") AS INTEGER) AS "birth_year"')
        elif c in dropped:
            continue
        elif schema == "ops" and table in ISSUE_TABLES and c == "value":
            exprs.append(
                f"CASE WHEN {identifying} AND value IS NOT NULL THEN {literal(MASK)} "
                'ELSE value END AS "value"'
            )
        elif schema == "ops" and table in ISSUE_TABLES and c == "message":
            exprs.append(
                f'CASE WHEN {identifying} THEN {_masked_message()} ELSE message END AS "message"'
            )
        else:
            exprs.append(_q(c))
    return ", ".join(exprs)


@contextmanager
def new_file(target: Path, mode: int) -> Iterator[Path]:
    """A temporary path beside ``target``; flushed to disk (fsync) and renamed over it (with
    ``mode``) when the block ends without error, removed otherwise. A reader holding the old
    file keeps reading it; the directory entry is fsynced too, so a crash leaves the old file
    or the new one, never a torn one."""
    if _under_home(target):
        settings.private_dir(target.parent)
    else:  # e.g. a share the analysts' group can enter (HUB_SNAPSHOT); its owner sets its mode
        target.parent.mkdir(parents=True, exist_ok=True)
    # the PID lets the next publish remove the copy of a killed one (warehouse.remove_publish_leftovers)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        tmp.chmod(mode)
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with suppress(FileNotFoundError):
                leftover.unlink()


@contextmanager
def building(
    live: Path, target: Path, start_from: Path | None = None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A connection to a new snapshot file that replaces ``target`` when the block ends without
    error (``new_file``): empty, or a byte copy of ``start_from``; with the city step's DuckDB
    bound and ``live`` attached read-only as ``live``. Yields the connection and the new file's
    database name; detaches ``live`` and checkpoints before the file is renamed into place."""
    with new_file(target, settings.snapshot_mode()) as tmp:
        if start_from is not None:
            shutil.copyfile(start_from, tmp)
        con = duckdb.connect(str(tmp))
        try:
            quiet(con)
            bound(con, CITY)
            con.execute(f"ATTACH {literal(live)} AS live (READ_ONLY)")
            yield con, con.execute("SELECT current_database()").fetchone()[0]
            con.execute("DETACH live")
            con.execute("CHECKPOINT")
        finally:
            con.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _under_home(path: Path) -> bool:
    from base.paths import hub_home

    return path.resolve().is_relative_to(hub_home())


def _drop_unpublished_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every schema of the current database that analysts do not get (``raw`` and so on)."""
    kept = ", ".join(map(literal, PUBLISHED_SCHEMAS))
    for (schema,) in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
        f"AND NOT internal AND schema_name NOT IN ({kept}, 'main')"
    ).fetchall():
        con.execute(f"DROP SCHEMA {_q(schema)} CASCADE")


def publish_analyst_snapshot(live: Path, target: Path) -> Path:
    """Build the analyst snapshot of ``live`` at ``target`` (see the module docstring)."""
    redacted = redacted_columns()
    with building(live, target) as (con, this):
        con.execute(f"COPY FROM DATABASE live TO {_q(this)} (SCHEMA)")
        _drop_unpublished_schemas(con)
        for table in PII_ONLY_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        for table, columns in redacted.items():
            if not _exists(con, "core", table):
                continue
            if "birth_date" in columns:
                con.execute(f"ALTER TABLE core.{_q(table)} ADD COLUMN birth_year INTEGER")
                con.execute(
                    f"COMMENT ON COLUMN core.{_q(table)}.birth_year IS "
                    f"{literal(BIRTH_YEAR_COMMENT)}"
                )
            for column in columns:
                con.execute(f"ALTER TABLE core.{_q(table)} DROP COLUMN {_q(column)}")
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY schema_name, table_name"
        ).fetchall()
        with transaction(con, NO_KEYED_TABLE):  # a copy: keys checked in the warehouse
            for schema, table in tables:
                _fill(con, schema, table)
    return target


def _fill(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    """Replace the empty copy of ``schema.table`` by ``CREATE TABLE AS`` its analyst rows, and
    put its comments back. A read-only file needs no keys: building a PRIMARY KEY's index cost
    half as much again as writing the rows (bench/history.md, "Where the time goes")."""
    name = f"{_q(schema)}.{_q(table)}"
    select = _select_list(con, schema, table)
    comments = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = ? AND table_name = ? AND comment IS NOT NULL",
        [schema, table],
    ).fetchall()
    (table_comment,) = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    con.execute(f"DROP TABLE {name}")
    # core rows have no order analysts may rely on (a delta publish appends changed rows); not
    # keeping it lets DuckDB write them in parallel without buffering. The marts keep theirs.
    con.execute(f"SET preserve_insertion_order = {'false' if schema == 'core' else 'true'}")
    con.execute(f"CREATE TABLE {name} AS SELECT {select} FROM live.{name}")
    if table_comment:
        con.execute(f"COMMENT ON TABLE {name} IS {literal(table_comment)}")
    for column, comment in comments:
        con.execute(f"COMMENT ON COLUMN {name}.{_q(column)} IS {literal(comment)}")


def copy_comments(
    con: duckdb.DuckDBPyConnection,
    source: str,
    schema: str,
    table: str,
    target: str | None = None,
) -> None:
    """Put the comments of ``source``'s ``schema.table`` (and of its columns the target's table
    has) on the same table of ``target`` (``None``: the current database); a ``birth_year``
    column the analyst layout added gets ``BIRTH_YEAR_COMMENT`` (``put_comments``)."""
    name = (
        f"{_q(schema)}.{_q(table)}" if target is None else f"{_q(target)}.{_q(schema)}.{_q(table)}"
    )
    (table_comment,) = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?",
        [source, schema, table],
    ).fetchone()
    columns = con.execute(
        "SELECT t.column_name, s.comment FROM duckdb_columns() AS t LEFT JOIN duckdb_columns() "
        "AS s ON s.database_name = ? AND s.schema_name = t.schema_name "
        "AND s.table_name = t.table_name AND s.column_name = t.column_name "
        "WHERE t.database_name = coalesce(?, current_database()) AND t.schema_name = ? "
        "AND t.table_name = ? ORDER BY t.column_index",
        [source, target, schema, table],
    ).fetchall()
    put_comments(con, name, table_comment, columns)


def put_comments(
    con: duckdb.DuckDBPyConnection,
    name: str,
    table_comment: str | None,
    columns: list[tuple[str, str | None]],
) -> None:
    """Comment the table ``name`` and its ``columns`` ((column, the source's comment of it));
    a ``birth_year`` column without one gets ``BIRTH_YEAR_COMMENT``."""
    if table_comment:
        con.execute(f"COMMENT ON TABLE {name} IS {literal(table_comment)}")
    for column, comment in columns:
        if comment is None and column == "birth_year":
            comment = BIRTH_YEAR_COMMENT
        if comment:
            con.execute(f"COMMENT ON COLUMN {name}.{_q(column)} IS {literal(comment)}")


def publish_pii_snapshot(live: Path, target: Path) -> Path:
    """The restricted copy: the live file byte for byte, ``raw`` dropped; 0600 in a 0700 dir."""
    with new_file(target, settings.PRIVATE_FILE) as tmp:
        copy_live_consistently(live, tmp)  # under the warehouse lock, writers kept out
        con = duckdb.connect(str(tmp))
        quiet(con)
        bound(con, CITY)
        try:
            _drop_unpublished_schemas(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return target


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    params = {"schema": schema, "table": table}
    return bool(run(con, "ops/catalog.sql", "table_exists", params).fetchone()[0])
