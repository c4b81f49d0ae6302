"""Locks of the DuckLake backend: PostgreSQL advisory locks on the catalog's database.

The lake is written from many processes, possibly on many machines, so its locks live where
every writer already connects: the catalog's PostgreSQL. An advisory lock is held by a session;
PostgreSQL releases it when the session ends, so a writer that dies (even by ``kill -9``, or
its machine) never leaves the lake locked.

- the **write lock** (``writer``): one write transaction on the lake at a time. DuckLake detects
  conflicts per table (a commit that touched a table another transaction changed since it
  began fails), and every merge updates the shared core tables, so merges' write sections could
  not commit side by side anyway; holding this lock from BEGIN to COMMIT makes them commit one
  after the other, each seeing everything committed before it. That is what keeps cross-county
  identity exact (a household_no or ID number claimed by two counties at the same moment: the
  second sees the first's rows, as a serial run would). Parallel merges run everything before
  their write transaction (reading the landing, normalising, validating) at the same time.
- the **county lock** (``county:<code>``): one merge of a county at a time (its cursor and
  stale-replay checks read the county's state before the write transaction starts).

Both are re-entrant within a process. A waiter waits at most ``HUB_WAREHOUSE_LOCK_TIMEOUT``
seconds (as for the DuckDB file's lock), saying whom it waits for, then raises WarehouseBusy.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from base import settings
from warehouse.lock import DEFAULT_NOTICE_SECONDS, DEFAULT_TIMEOUT_SECONDS, WarehouseBusy

log = logging.getLogger(__name__)

#: First half of every hub advisory lock key ("hu"), so other users of the server never collide.
_NAMESPACE = 0x6875
_POLL_SECONDS = 0.02
_local = threading.local()


def _held() -> dict[str, list]:
    if not hasattr(_local, "held"):
        _local.held = {}
    return _local.held


def _key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


@contextmanager
def hold(name: str, purpose: str = "write") -> Iterator[None]:
    """Hold the lake's advisory lock ``name`` for the block (re-entrant in this thread)."""
    held = _held()
    if name in held:
        held[name][1] += 1
        try:
            yield
        finally:
            held[name][1] -= 1
        return
    import psycopg

    catalog = settings.lake_catalog()
    try:
        session = psycopg.connect(
            catalog, autocommit=True, application_name=f"hub {purpose} (PID {os.getpid()})"[:63]
        )
    except psycopg.Error as exc:
        raise WarehouseBusy(
            settings.redact_dsn(catalog), 0, f"nobody: the catalog is unreachable ({exc})", purpose
        ) from None
    try:
        _acquire(session, name, purpose)
        held[name] = [session, 1]
        try:
            yield
        finally:
            del held[name]
    finally:
        session.close()  # ending the session releases the lock


def _acquire(session, name: str, purpose: str) -> None:
    timeout = float(os.environ.get("HUB_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
    notice = float(os.environ.get("HUB_WAREHOUSE_LOCK_NOTICE", DEFAULT_NOTICE_SECONDS))
    started = time.monotonic()
    next_notice = started + notice
    while True:
        got = session.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_NAMESPACE, _key(name))
        ).fetchone()[0]
        if got:
            return
        now = time.monotonic()
        if now - started >= timeout:
            raise WarehouseBusy(f"lake lock {name}", now - started, _holder(session, name), purpose)
        if now >= next_notice:
            message = (
                f"{purpose}: waiting for the lake lock {name}, held by {_holder(session, name)} "
                f"({now - started:.0f} s of at most {timeout:.0f} s)"
            )
            log.info(message)
            print(message, file=sys.stderr, flush=True)
            next_notice = now + notice
        time.sleep(_POLL_SECONDS)


def _holder(session, name: str) -> str:
    """Who holds lock ``name``: the holder's application name and client PID, from pg_locks."""
    row = session.execute(
        "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.granted",
        (_NAMESPACE, _key(name)),
    ).fetchone()
    return f"{row[0]} (server PID {row[1]})" if row else "another session"


def writer(purpose: str = "write") -> AbstractContextManager[None]:
    """The lake's write lock: one write transaction at a time (see the module docstring)."""
    return hold("writer", purpose)


def county(code: str, purpose: str = "merge") -> AbstractContextManager[None]:
    """One merge of county ``code`` at a time."""
    return hold(f"county:{code}", purpose)


def county_lock(code: str, purpose: str = "merge") -> AbstractContextManager[None]:
    """The county's merge lock on the DuckLake backend; nothing on the DuckDB file, whose own
    lock already admits one writer at a time."""
    return county(code, purpose) if settings.is_lake() else nullcontext()
