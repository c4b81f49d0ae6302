"""Opening the lake: a DuckDB connection with the DuckLake attached and selected (``USE``), so
every statement the warehouse runs on the DuckDB file (``core.household``, ``ops.sync_run``,
temp tables, registered frames) runs unchanged."""

from __future__ import annotations

import duckdb

from base import settings
from base.errors import HubError
from warehouse.lake import extensions

#: The name the lake is attached under in every hub connection.
ALIAS = "hub_lake"


class LakeUnavailable(HubError):
    """The lake's catalog could not be attached; says which catalog (no password) and why."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_lake(read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the lake attached as :data:`ALIAS` and in use.
    The caller closes it."""
    catalog, data_path = settings.lake_catalog(), settings.lake_data_path()
    if "://" not in data_path:  # a local directory: owner-only, like everything under HUB_HOME
        from pathlib import Path

        settings.private_dir(Path(data_path))
    con = duckdb.connect()
    try:
        extensions.load(con)
        options = [f"DATA_PATH {_quote(data_path)}"] + (["READ_ONLY"] if read_only else [])
        con.execute(
            f"ATTACH {_quote('ducklake:postgres:' + catalog)} AS {ALIAS} ({', '.join(options)})"
        )
        con.execute(f"USE {ALIAS}")
    except duckdb.Error as exc:
        con.close()
        message = str(exc).replace(catalog, settings.redact_dsn(catalog))
        raise LakeUnavailable(
            f"cannot attach the DuckLake catalog {settings.redact_dsn(catalog)!r} "
            f"(data path {data_path}): {message.splitlines()[0]}. Is its PostgreSQL running "
            "(`make postgres` for a local one) and does the database exist?"
        ) from None
    except BaseException:
        con.close()
        raise
    return con


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Is ``con``'s current database a DuckLake (rather than a DuckDB file)?"""
    row = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return bool(row) and row[0] == "ducklake"
