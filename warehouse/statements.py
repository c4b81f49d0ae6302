"""The SQL files shipped beside this package: migrations, and named statements
(``-- name: <id>`` blocks) whose ``{placeholders}`` are identifiers and column lists generated
in Python; values are always ``$parameters``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

#: The package's own folder: its SQL ships with it as package data.
SQL_HOME = Path(__file__).resolve().parent
MIGRATIONS_DIR = SQL_HOME / "migrations"
SQL_DIR = SQL_HOME / "sql"
MERGE_DIR = SQL_DIR / "merge"
MARTS_DIR = SQL_DIR / "marts"


@cache
def statements(file: str) -> dict[str, str]:
    """The named statements of ``warehouse/sql/<file>`` (a bare file name is one of
    ``sql/merge``), their comment lines dropped (they are for the reader, and may mention
    placeholders)."""
    path = SQL_DIR / file if "/" in file else MERGE_DIR / file
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"--\s*name:\s*(\w+)\s*$", line):
            current = blocks.setdefault(m.group(1), [])
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


_PARAM = re.compile(r"\$([a-z_]+)")


def sql(file: str, name: str, **identifiers: str) -> str:
    """The text of one named statement, its ``{placeholders}`` filled with ``identifiers``."""
    text = statements(file)[name]
    return text.format(**identifiers) if identifiers else text


def run(
    con: duckdb.DuckDBPyConnection,
    file: str,
    name: str,
    params: Mapping[str, Any] | None = None,
    **identifiers: str,
) -> duckdb.DuckDBPyConnection:
    """Run one named statement; ``identifiers`` fill its ``{placeholders}``, and only the
    ``$parameters`` it uses are passed (DuckDB rejects unused ones)."""
    text = sql(file, name, **identifiers)
    used = {p: (params or {})[p] for p in set(_PARAM.findall(text))}
    return con.execute(text, used) if used else con.execute(text)


def q(name: str) -> str:
    """A quoted SQL identifier (a double quote inside it doubled)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: object) -> str:
    """A SQL string literal (a single quote inside it doubled), for the statements that take no
    ``$parameter`` where a value goes: ATTACH, SET, COMMENT ON, COPY, a file list."""
    return "'" + str(text).replace("'", "''") + "'"
