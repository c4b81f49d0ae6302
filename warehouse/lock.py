"""The warehouse lock: one writer at a time, whoever it is (a Dagster step or `hub sync`).

DuckDB itself lets one process open a file read-write and refuses a second one at once with
"Could not set lock on file". The Dagster pool ``duckdb_warehouse`` keeps Dagster's steps in
line, but a `hub sync`, `hub restore` or a step of another Dagster instance does not see the
pool. So every process that opens the live file takes this lock first:

- ``exclusive`` (writers: merges, marts, migrations, restore): nobody else inside;
- ``shared`` (consistent readers: the snapshot copy, `hub backup`, a landing that reads the
  warehouse's cursors): any number of readers, no writer.

It is an ``flock`` on ``<live file>.lock``: the kernel releases it when its holder dies, even by
``kill -9``, so a crashed writer never leaves the warehouse locked. The holder writes who it is
(county, run, PID, since) into ``<live file>.lock.json``, so a waiter can say whom it waits for.
A waiter waits at most ``HUB_WAREHOUSE_LOCK_TIMEOUT`` seconds (default 600), saying so every
``HUB_WAREHOUSE_LOCK_NOTICE`` seconds (default 10), then raises :class:`WarehouseBusy`.
"""

from __future__ import annotations

import contextvars
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from base.errors import HubError
from base.processes import flock_held

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_NOTICE_SECONDS = 10.0
_POLL_SECONDS = 0.05

#: Locks this thread holds: resolved path -> "shared" / "exclusive" (for re-entrant use).
_local = threading.local()


def _held() -> dict[str, str]:
    if not hasattr(_local, "held"):
        _local.held = {}
    return _local.held


#: Who this process is working for (county, run): set by the sync and the Dagster steps, shown
#: to whoever waits for the lock.
_identity: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "hub_warehouse_lock_identity", default=None
)


class WarehouseBusy(HubError):
    """The warehouse lock could not be had within the timeout: another writer holds it."""

    def __init__(self, path: object, waited: float, holder: str, purpose: str = "") -> None:
        self.path, self.waited, self.holder, self.purpose = str(path), waited, holder, purpose
        super().__init__(
            f"{purpose + ': ' if purpose else ''}the warehouse {path} is busy: waited "
            f"{waited:.0f} s for its lock, held by {holder}; nothing was written. "
            "Run again when that writer has finished (raise HUB_WAREHOUSE_LOCK_TIMEOUT to wait "
            "longer); if the holder's process is gone, the lock is already free."
        )

    def __reduce__(self):
        return (WarehouseBusy, (self.path, self.waited, self.holder, self.purpose))


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def holder_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock.json")


@contextmanager
def working_for(**identity: str | None) -> Iterator[None]:
    """Name what this process does while it holds the lock (``county=``, ``run=``, ``step=``)."""
    current = dict(_identity.get() or {})
    current.update({k: str(v) for k, v in identity.items() if v})
    token = _identity.set(current)
    try:
        yield
    finally:
        _identity.reset(token)


def _me(purpose: str) -> dict[str, str]:
    return {
        "purpose": purpose,  # what working_for() said this process is doing wins
        **(_identity.get() or {}),
        "pid": str(os.getpid()),
        "command": " ".join(os.path.basename(a) for a in sys.argv[:2]) or "python",
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe_holder(db_path: Path) -> str:
    """Who holds (or last held) the lock, as a phrase: ``luonan merge (run …, PID 123, since …)``."""
    try:
        info = json.loads(holder_path(db_path).read_text(encoding="utf-8"))
        pid = int(info.get("pid", 0))
        os.kill(pid, 0)
    except PermissionError:
        pass
    except (OSError, ValueError, TypeError):  # no note, or its writer is gone
        return "another process (it did not say who)"
    what = " ".join(v for v in (info.get("county"), info.get("purpose")) if v) or "a writer"
    details = [f"run {info['run']}" if info.get("run") else None]
    details += [f"PID {info.get('pid')}", f"`{info.get('command')}`", f"since {info.get('since')}"]
    return f"{what} ({', '.join(d for d in details if d)})"


def writer_active(db_path: Path | str) -> bool:
    """Does a writer hold the lock of ``db_path`` right now (without waiting)?"""
    return flock_held(lock_path(Path(db_path)), exclusive=False)


def _timeout() -> float:
    return float(os.environ.get("HUB_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))


def _notice_every() -> float:
    return float(os.environ.get("HUB_WAREHOUSE_LOCK_NOTICE", DEFAULT_NOTICE_SECONDS))


@contextmanager
def hold(
    db_path: Path | str,
    *,
    shared: bool = False,
    purpose: str = "write",
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold the warehouse lock of ``db_path`` for the ``with`` block, waiting politely for it.

    Re-entrant within a thread: a block that already holds the lock (exclusive, or shared when
    ``shared`` is asked) nests without waiting for itself. Another thread of the same process
    waits like any other process (each ``hold`` opens its own descriptor)."""
    db_path = Path(db_path)
    key = str(db_path.resolve())
    held = _held().get(key)
    if held is not None and (held == "exclusive" or shared):
        yield
        return
    db_path.parent.mkdir(parents=True, exist_ok=True)
    timeout = _timeout() if timeout is None else timeout
    fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, db_path, shared, purpose, timeout)
        # shared holders note themselves too (the last one wins): a waiting writer names one
        _write_holder(db_path, _me(purpose))
        _held()[key] = "shared" if shared else "exclusive"
        try:
            yield
        finally:
            _held().pop(key, None)
            if not shared:  # nobody else is inside: the note would only mislead a later waiter
                holder_path(db_path).unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(fd: int, db_path: Path, shared: bool, purpose: str, timeout: float) -> None:
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    started = time.monotonic()
    next_notice = started + min(_notice_every(), max(timeout, 0.0))
    announced = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            if announced:
                _say(
                    f"got the warehouse lock for {purpose} after {time.monotonic() - started:.0f} s"
                )
            return
        now = time.monotonic()
        if now - started >= timeout:
            raise WarehouseBusy(db_path, now - started, describe_holder(db_path), _purpose(purpose))
        if now >= next_notice or not announced:
            _say(
                f"{_purpose(purpose)}: waiting for the warehouse {db_path}, held by "
                f"{describe_holder(db_path)} ({now - started:.0f} s of at most {timeout:.0f} s)"
            )
            announced = True
            next_notice = now + _notice_every()
        time.sleep(_POLL_SECONDS)


def _purpose(purpose: str) -> str:
    identity = _identity.get() or {}
    purpose = identity.get("purpose", purpose)
    return f"{identity['county']} {purpose}" if identity.get("county") else purpose


def _say(message: str) -> None:
    # stderr: `hub sync` users see it, and Dagster keeps it in the step's compute logs
    log.info(message)
    print(message, file=sys.stderr, flush=True)


def _write_holder(db_path: Path, info: dict[str, str]) -> None:
    target = holder_path(db_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:  # who holds the lock is a courtesy; the lock itself is held
        log.warning("could not note the warehouse lock holder in %s: %s", target, exc)
