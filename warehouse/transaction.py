"""The one transaction helper of the warehouse: BEGIN, COMMIT, and a ROLLBACK that never hides
the error that caused it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

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
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in ONE transaction: COMMIT when it ends, ROLLBACK (see :func:`rollback`)
    and re-raise the original error when anything in it (or the COMMIT) fails."""
    con.execute("BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
