"""Is a process, or the holder of a file lock, still alive? Asked by the crash-safety code
(the warehouse lock, leftover landings and publishes, dead Dagster runs) without waiting."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist (another user's process counts: we may not signal it)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flock_held(path: Path, *, exclusive: bool) -> bool:
    """Does some process hold a lock on ``path`` that conflicts with taking it ``exclusive``-ly
    (or shared) right now? A missing file holds no lock; the kernel frees a dead holder's."""
    try:
        fd = os.open(path, os.O_RDWR if exclusive else os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
