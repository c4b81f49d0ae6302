"""A write transaction on the lake retried whole when DuckLake refuses its COMMIT.

DuckLake's concurrency is optimistic: a COMMIT that touched a table another transaction changed
since this one began fails with "Transaction conflict" and rolls back. The hub's own writers
take the lake's write lock (``warehouse.lake.locks``), so this is rare; a writer outside the
hub, or one that does not lock, can still cause it. The transaction is then run again from the
start, on the newer snapshot, at most ``HUB_LAKE_COMMIT_RETRIES`` times (default 5), each retry
logged; after that :class:`CommitConflicts` says so clearly and nothing was written.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

import duckdb

from base.errors import HubError

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_RETRIES = 5


class CommitConflicts(HubError):
    """A lake transaction lost every retry to concurrent commits."""


def is_commit_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and "Transaction conflict" in str(exc)


def retries() -> int:
    return int(os.environ.get("HUB_LAKE_COMMIT_RETRIES", DEFAULT_RETRIES))


def retry_conflicts(work: Callable[[], T], what: str) -> T:
    """Run ``work`` (one whole transaction); on a DuckLake commit conflict run it again, up to
    :func:`retries` more times with a short random back-off."""
    limit = retries()
    for attempt in range(limit + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if not is_commit_conflict(exc):
                raise
            if attempt == limit:
                raise CommitConflicts(
                    f"{what}: DuckLake refused the commit {limit + 1} times because other "
                    f"transactions changed the same tables meanwhile ({str(exc).splitlines()[-1]}); "
                    "nothing was written. Run it again; raise HUB_LAKE_COMMIT_RETRIES if the "
                    "lake is this busy every time"
                ) from exc
            log.warning(
                "%s: DuckLake commit conflict (attempt %d of %d), running it again: %s",
                what, attempt + 1, limit + 1, str(exc).splitlines()[-1],
            )  # fmt: skip
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise AssertionError("unreachable")
