"""The warehouse's keys, declared once and checked before COMMIT, on both backends.

The tables' keys are declared once, in the migrations (``PRIMARY KEY (...)`` clauses):
:func:`primary_keys` reads them from there. Neither backend builds them as indexes any more:
:func:`without_keys` drops the key clauses from a migration's DDL before it is applied. DuckLake
has no PRIMARY KEY at all; on the DuckDB file the index of a key (ART) holds every key a
transaction inserts in memory until the COMMIT and never spills, so a first load of a large
county ran out of the merge's memory bound on the keys alone (bench/profiles/merge.md, "Scale 5
and 10 with and without PRIMARY KEYs"). Migration 010 (``warehouse/key_rebuild.py``) rebuilds
the keyed tables of a file created with them.

What the keys promised, :func:`check_keys` keeps: ``warehouse.transaction`` runs it inside
every write transaction just before COMMIT, and a key held twice (or a key column left NULL)
fails the transaction, which then rolls back: nothing of it is written. The error names the
table, the key columns and how many keys, never a key's value (they may be ID-derived).

A transaction says which keyed tables it writes and, where it can, which rows it may have
inserted (:class:`KeyScope`): a duplicate needs at least one row the transaction inserted (the
committed state holds none, and an update never changes a key: every statement that writes a
key column inserts), so only the keys of those rows are grouped, not the whole table. The
merge's rows are those it stamps with its run id or its ``now`` (:func:`merge_scope`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import duckdb

from base.errors import HubError
from warehouse.statements import MIGRATIONS_DIR, q

_TABLE = re.compile(
    r"CREATE TABLE (?:IF NOT EXISTS )?(\w+\.\w+)\s*\((.*?)\n\);", re.DOTALL | re.IGNORECASE
)
_KEY_CLAUSE = re.compile(r",\s*PRIMARY KEY\s*\(([^)]*)\)", re.IGNORECASE)
_INLINE_KEY = re.compile(r"^\s*(\w+)\s+[^,\n]*?\bPRIMARY KEY\b", re.IGNORECASE | re.MULTILINE)
_PARAM = re.compile(r"\$([a-z_]+)")


class DuplicateKey(HubError):
    """A transaction would leave a keyed table holding the same key twice, or a key NULL."""


@dataclass(frozen=True)
class KeyScope:
    """What a write transaction may have done to keyed tables: ``where`` maps each keyed table
    it writes to a predicate that every row it inserted there satisfies (``$name`` parameters
    from ``params``), or to None (any row: the table is checked whole). Keyed tables not named
    are tables the transaction does not write."""

    where: Mapping[str, str | None]
    params: Mapping[str, Any] = field(default_factory=dict)


#: The default: every keyed table checked whole (a transaction that has not said what it writes).
EVERY_KEY: KeyScope | None = None
#: A transaction that writes no keyed table (marts, snapshot files, DDL).
NO_KEYED_TABLE = KeyScope({})


def without_keys(text: str) -> str:
    """A migration's DDL without its key clauses (``PRIMARY KEY (...)`` and inline ones)."""
    text = _KEY_CLAUSE.sub("", text)
    return re.sub(r"\s+PRIMARY KEY\b", "", text, flags=re.IGNORECASE)


@cache
def primary_keys() -> dict[str, tuple[str, ...]]:
    """``schema.table`` -> its key columns, as the migrations declare them."""
    keys: dict[str, tuple[str, ...]] = {}
    for file in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        for table, body in _TABLE.findall(file.read_text(encoding="utf-8")):
            if m := _KEY_CLAUSE.search(body):
                keys[table] = tuple(c.strip() for c in m.group(1).split(","))
            elif m := _INLINE_KEY.search(body):
                keys[table] = (m.group(1),)
    return keys


def merge_scope(run: str, now: datetime) -> KeyScope:
    """The keyed rows a county merge (``warehouse.merge``) may insert: core rows with
    ``first_seen_at`` = its ``now`` (``40_upsert.sql``: an insert is the record's first sight;
    an update keeps it), and pages, runs, watermarks and conflicts with its ``sync_run_id``
    (``70_bookkeeping.sql``, ``20_claims.sql``, ``60_conflicts.sql``)."""
    where: dict[str, str | None] = {
        t: "sync_run_id = $run"
        for t in ("raw.page", "ops.sync_run", "ops.watermark", "ops.conflict")
    }
    for table in primary_keys():
        if table.startswith("core."):
            where[table] = "first_seen_at = $now"
    return KeyScope(where, {"run": run, "now": now})


def check_keys(con: duckdb.DuckDBPyConnection, scope: KeyScope | None = EVERY_KEY) -> None:
    """Raise :class:`DuplicateKey` when a keyed table of ``con``'s database that ``scope``
    names (default: every one, whole) holds a key twice or a key with a NULL column, among the
    keys of the rows ``scope`` says the transaction may have inserted. Run inside the
    transaction, before its COMMIT."""
    if scope is not None and not scope.where:  # NO_KEYED_TABLE: not even the catalogue is read
        return
    existing = {
        f"{s}.{t}"
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    where: dict[str, str | None] = (
        dict.fromkeys(primary_keys()) if scope is None else dict(scope.where)
    )
    params = {} if scope is None else dict(scope.params)
    bad = []
    for table, predicate in sorted(where.items()):
        if table in primary_keys() and table in existing:
            twice, nulls = _count_bad(con, table, predicate, params)
            if twice or nulls:
                bad.append(_describe(table, twice, nulls))
    if bad:
        raise DuplicateKey(
            f"the transaction would commit {'; '.join(bad)}; it was rolled back and nothing was "
            "written (the warehouse's keys are checked before COMMIT: warehouse/keys.py)"
        )


def _count_bad(
    con: duckdb.DuckDBPyConnection, table: str, where: str | None, params: Mapping[str, Any]
) -> tuple[int, int]:
    """(keys held twice, rows with a NULL key column) of ``table`` among the keys of the rows
    ``where`` selects (None: every row).

    Only aggregates, which spill: a join of the inserted keys with the table ran out of the
    merge's 128 MB at 洛南 scale 10 (2.8M persons; bench/profiles/merge.md). The rows grouped are
    those whose first key column lies between the smallest and largest the transaction inserted
    (a constant range: DuckDB skips the row groups outside it, and a county's household and
    person numbers share its prefix), and they are grouped on a 64-bit hash of the key; only
    when two rows share a hash are they grouped again on the key itself (equal keys, or rarely
    a collision)."""
    cols = primary_keys()[table]
    keys, first = ", ".join(map(q, cols)), q(cols[0])
    schema, name = table.split(".")
    relation = f"{q(schema)}.{q(name)}"
    any_null = " OR ".join(f"{q(c)} IS NULL" for c in cols)
    selected = where or "true"
    used = {p: params[p] for p in set(_PARAM.findall(selected))}
    nulls, lo, hi = con.execute(
        f"SELECT count(*) FILTER (WHERE {any_null}), min({first}), max({first}) "
        f"FROM {relation} WHERE {selected}",
        used,
    ).fetchone()
    if lo is None:  # no row inserted, or only rows with a NULL key
        return 0, nulls
    rows = (
        f"SELECT {keys}, coalesce({selected}, false) AS mine FROM {relation} "
        f"WHERE {first} BETWEEN $lo AND $hi"
    )
    bounds = {**used, "lo": lo, "hi": hi}

    def twice(group_by: str) -> int:
        return con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM ({rows}) GROUP BY {group_by} "
            "HAVING count(*) > 1 AND bool_or(mine))",
            bounds,
        ).fetchone()[0]

    return (twice(keys) if twice(f"hash({keys})") else 0), nulls


def _describe(table: str, twice: int, nulls: int) -> str:
    cols = ", ".join(primary_keys()[table])
    parts = [f"{twice} key(s) twice"] if twice else []
    parts += [f"{nulls} row(s) with a NULL key column"] if nulls else []
    return f"{table} ({'; '.join(parts)}: {cols})"
