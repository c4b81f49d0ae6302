"""Opening the lake: a DuckDB connection with the DuckLake attached and selected (``USE``), so
every statement the warehouse runs on the DuckDB file (``core.household``, ``ops.sync_run``,
temp tables, registered frames) runs unchanged.

Loading the two extensions and attaching the catalog cost most of a second, so a process keeps
ONE in-memory DuckDB instance per lake (catalog + data path) with the lake attached twice, read
-write as :data:`ALIAS` and read-only as :data:`READ_ONLY_ALIAS`; each :func:`open_lake` is a
new connection (``cursor()``) to it, with its own transaction, temp tables and registered
frames, closed by the caller. A forked child never reuses its parent's instance.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb

from base import paths, settings
from base.errors import HubError
from warehouse.lake import extensions, locks, object_store
from warehouse.statements import literal

#: The names the lake is attached under in the hub's DuckDB instance.
ALIAS = "hub_lake"
READ_ONLY_ALIAS = "hub_lake_read"

_lock = threading.Lock()
_instance: dict[str, object] = {}  # key, pid, connection (and read_only attached?)
_open: set[int] = set()  # ids of the lake connections open now (is_lake without a query)


class LakeUnavailable(HubError):
    """The lake's catalog could not be attached; says which catalog (no password) and why."""


def _attach(con: duckdb.DuckDBPyConnection, alias: str, read_only: bool) -> None:
    catalog, data_path = settings.lake_catalog(), settings.lake_data_path()
    options = [f"DATA_PATH {literal(data_path)}"] + (["READ_ONLY"] if read_only else [])
    statement = (
        f"ATTACH {literal('ducklake:postgres:' + catalog)} AS {alias} ({', '.join(options)})"
    )
    try:
        if read_only:
            con.execute(statement)
        else:  # the first read-write ATTACH creates the lake: never two processes at once
            with locks.hold("create", purpose="attach the lake"):
                con.execute(statement)
    except duckdb.Error as exc:
        message = str(exc).replace(catalog, settings.redact_dsn(catalog))
        raise LakeUnavailable(
            f"cannot attach the DuckLake catalog {settings.redact_dsn(catalog)!r} "
            f"(data path {data_path}): {message.splitlines()[0]}. Is its PostgreSQL running "
            "(`make postgres` for a local one) and does the database exist?"
        ) from None


def spill_config() -> dict[str, str]:
    """An in-memory DuckDB's temp directory under ``HUB_HOME`` (not DuckDB's default ``.tmp`` in
    the working directory), one per process so two processes' spill files never share a name.
    The parent is owner-only; DuckDB creates the process's own folder when it first spills and
    removes it when the instance closes."""
    spill = settings.private_dir(paths.duckdb_spill_dir()) / f"pid-{os.getpid()}"
    return {"temp_directory": spill.as_posix()}


def _shared_instance(read_only: bool) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance for the configured lake, attached as asked."""
    key = f"{settings.lake_catalog()}\0{settings.lake_data_path()}"
    if _instance.get("key") != key or _instance.get("pid") != os.getpid():
        if _instance.get("pid") == os.getpid():  # another lake now (tests): let the old one go
            _instance["con"].close()
        _instance.clear()
        data_path = settings.lake_data_path()
        if "://" not in data_path:  # a local directory: owner-only, like all under HUB_HOME
            settings.private_dir(Path(data_path))
        con = duckdb.connect(config=spill_config())
        extensions.load(con)
        if object_store.is_object_store(data_path):  # s3://: httpfs and the secret first
            try:
                object_store.prepare(con, data_path)
            except BaseException:
                con.close()
                raise
        _instance.update(key=key, pid=os.getpid(), con=con, attached=set())
    con, attached = _instance["con"], _instance["attached"]
    alias = READ_ONLY_ALIAS if read_only else ALIAS
    if alias not in attached:
        _attach(con, alias, read_only)
        attached.add(alias)
    return con


def open_lake(read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new connection to the lake, attached and in use (see the module docstring). The caller
    closes it with :func:`close_lake`."""
    with _lock:
        con = _shared_instance(read_only).cursor()
    try:
        con.execute(f"USE {READ_ONLY_ALIAS if read_only else ALIAS}")
    except BaseException:
        con.close()
        raise
    _open.add(id(con))
    return con


def close_lake(con: duckdb.DuckDBPyConnection) -> None:
    _open.discard(id(con))
    con.close()


def forget() -> None:
    """Close this process's lake instance (it is opened again on the next :func:`open_lake`)."""
    with _lock:
        if _instance.get("pid") == os.getpid():
            _instance["con"].close()
        _instance.clear()


#: DuckDB's memory for writing into the lake, where a DuckDB file would do with less: DuckLake's
#: Parquet writes into a wide table need memory by column count, and at 128 MB the marts
#: (scale 1.0) and the largest merges (scale 5.0) ran out of it; 512 MB passed both
#: (bench/README.md, "DuckLake"; duckdb/ducklake#1226). The default of the merge's and the
#: city step's limits on a lake connection (``HUB_MERGE_MEMORY_LIMIT`` / ``HUB_CITY_MEMORY_LIMIT``
#: still win).
WRITE_MEMORY_LIMIT = "512MB"


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Is ``con`` a lake connection from :func:`open_lake` (rather than a DuckDB file's)?"""
    return id(con) in _open
