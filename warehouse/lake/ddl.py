"""The migrations on DuckLake, and the key check that stands in for PRIMARY KEY there.

DuckLake has no PRIMARY KEY, UNIQUE, index or sequence, and cannot comment on a macro. The
migrations stay written for DuckDB (the default backend, where the keys are enforced);
:func:`for_lake` drops those clauses from a migration's text. The keys themselves stay the one
fact they are: :func:`primary_keys` reads them from the same migration files, and
:func:`check_keys` (run by ``warehouse.transaction`` before every COMMIT on the lake) fails the
transaction when any keyed table holds a key twice, so a duplicate is never committed.
"""

from __future__ import annotations

import re
from functools import cache

import duckdb

from base.errors import HubError
from warehouse.statements import MIGRATIONS_DIR

_TABLE = re.compile(
    r"CREATE TABLE (?:IF NOT EXISTS )?(\w+\.\w+)\s*\((.*?)\n\);", re.DOTALL | re.IGNORECASE
)
_KEY_CLAUSE = re.compile(r",\s*PRIMARY KEY\s*\(([^)]*)\)", re.IGNORECASE)
_INLINE_KEY = re.compile(r"^\s*(\w+)\s+[^,\n]*?\bPRIMARY KEY\b", re.IGNORECASE | re.MULTILINE)
_MACRO_COMMENT = re.compile(r"COMMENT ON MACRO\b[^']*'(?:[^']|'')*'\s*;", re.IGNORECASE)


class DuplicateKey(HubError):
    """A transaction would leave a keyed table holding the same key twice (DuckLake backend)."""


def for_lake(text: str) -> str:
    """A migration's DDL as DuckLake takes it: no key clauses, no comments on macros."""
    text = _KEY_CLAUSE.sub("", text)
    text = re.sub(r"\s+PRIMARY KEY\b", "", text, flags=re.IGNORECASE)
    return _MACRO_COMMENT.sub("", text)


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


def check_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Raise :class:`DuplicateKey` when a keyed table of ``con``'s database holds a key twice
    (checked inside the transaction, before its COMMIT). Names the table and the count, never
    the key values (they may be ID-derived)."""
    existing = {
        f"{s}.{t}"
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    parts = [
        f"SELECT '{table}' AS tbl, count(*) AS n FROM "
        f"(SELECT 1 FROM {table} GROUP BY {', '.join(cols)} HAVING count(*) > 1)"
        for table, cols in primary_keys().items()
        if table in existing
    ]
    if not parts:
        return
    bad = con.execute(" UNION ALL ".join(parts) + " ORDER BY tbl").fetchall()
    bad = [(t, n) for t, n in bad if n]
    if bad:
        listed = ", ".join(
            f"{t} ({n} key(s) twice: {', '.join(primary_keys()[t])})" for t, n in bad
        )
        raise DuplicateKey(
            f"the transaction would commit duplicate keys in {listed}; it was rolled back and "
            "nothing was written (DuckLake has no PRIMARY KEY; this check stands in for it)"
        )
