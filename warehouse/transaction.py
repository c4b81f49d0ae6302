"""The one transaction helper of the warehouse: BEGIN, COMMIT, and a ROLLBACK that never hides
the error that caused it. Before COMMIT it checks the keys of the keyed tables the transaction
writes (``warehouse.keys.check_keys``: neither backend builds PRIMARY KEY indexes). On the
DuckLake backend a transaction also holds the lake's write lock (``warehouse.lake.locks``) from
before BEGIN to after COMMIT, so two transactions cannot each pass the check and commit the
same key together."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import duckdb

import warehouse.keys as keys
from warehouse.lake import locks as lake_locks
from warehouse.lake.catalog import is_lake

log = logging.getLogger(__name__)


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after an error, never hiding that error: when the rollback fails too (disk
    full at COMMIT leaves "no transaction is active"), it is logged and the caller re-raises
    the original; closing the connection discards whatever the transaction had written."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.warning("ROLLBACK failed after an error (%s); the original error follows", exc)


@contextmanager
def transaction(
    con: duckdb.DuckDBPyConnection, keyed: keys.KeyScope | None = keys.EVERY_KEY
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in ONE transaction: COMMIT when it ends, ROLLBACK (see :func:`rollback`)
    and re-raise the original error when anything in it (or the COMMIT) fails.

    ``keyed``: the keyed tables the block writes and the rows it may have inserted
    (``warehouse.keys.KeyScope``), checked before COMMIT; default every keyed table, whole;
    ``keys.NO_KEYED_TABLE`` for a block that writes none."""
    lake = is_lake(con)
    with lake_locks.writer("write transaction") if lake else nullcontext():
        con.execute("BEGIN")
        try:
            yield con
            keys.check_keys(con, keyed)
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
