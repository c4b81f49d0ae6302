"""The fault suite: each fault is a real process (killed with SIGKILL, filling a real disk,
racing for the real lock). Every test has its own HUB_HOME, DAGSTER_HOME and simulator port, so
the suite runs in parallel (pytest -n)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from base import paths
from tests.conftest import serving

REPO = paths.REPO


@pytest.fixture
def world(monkeypatch, hub_home, fast_retries):
    """A simulator on its own loopback port, every county pointing at it, a fresh HUB_HOME and
    a DAGSTER_HOME inside it; the lock waits are short so a stuck test fails fast."""
    monkeypatch.setenv("DAGSTER_HOME", str(hub_home / "dagster"))
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_NOTICE", "0.5")
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_TIMEOUT", "60")
    with serving(monkeypatch) as handle:
        yield handle


class Proc:
    """A hub command in its own process group (so SIGKILL reaches its step processes too)."""

    def __init__(self, args: list[str], tmp: Path, name: str, env: dict | None = None) -> None:
        self.ready = tmp / f"{name}.ready"
        self.go = tmp / f"{name}.go"
        self.log = tmp / f"{name}.log"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.driver", *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(lambda: self.ready.exists(), timeout, f"{self.log.name} never paused", self)

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def release(self) -> None:
        self.go.write_text("go\n")

    def finish(self, timeout: float = 120) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"timed out; output:\n{self.output()}") from None


def wait_for(condition, timeout: float, what: str, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"{what}: process exited {proc.popen.returncode}:\n{proc.output()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s" + (f":\n{proc.output()}" if proc else ""))


def hub(
    tmp: Path,
    name: str,
    *args: str,
    pause_at: str | None = None,
    go: bool = False,
    env: dict | None = None,
) -> Proc:
    """Start ``hub <args>`` as a process; with ``pause_at`` it stops there (see driver.py)."""
    extra = []
    if pause_at:
        extra = ["--pause-at", pause_at, "--ready", str(tmp / f"{name}.ready")]
        if go:
            extra += ["--go", str(tmp / f"{name}.go")]
    return Proc([*extra, "--", *args], tmp, name, env)


def run_hub(tmp: Path, name: str, *args: str, env: dict | None = None, expect: int = 0) -> str:
    proc = hub(tmp, name, *args, env=env)
    code = proc.finish()
    assert code == expect, f"hub {' '.join(args)} exited {code}:\n{proc.output()}"
    return proc.output()


@contextmanager
def home(path: Path) -> Iterator[Path]:
    """Point this process's HUB_HOME at ``path`` for a block (a second, clean hub)."""
    saved = {k: os.environ.get(k) for k in ("HUB_HOME", "HUB_WAREHOUSE", "HUB_SNAPSHOT")}
    os.environ["HUB_HOME"] = str(path)
    os.environ.pop("HUB_WAREHOUSE", None)
    os.environ.pop("HUB_SNAPSHOT", None)
    try:
        yield path
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sync_in_process(county, mode: str = "incremental"):
    from pipelines import sync

    return sync.merge(county, sync.land(county, mode))


def county_content(county, hub_home: Path) -> dict:
    """What the warehouse under ``hub_home`` says about ``county`` (tests/e2e content_digest)."""
    from tests.e2e.helpers import content_digest

    with home(hub_home):
        return content_digest(county)


def changed(world, days: int = 30) -> dict:
    """Move the simulator's clock far enough that the county really changes (at test scale a
    single day often brings nothing), and check that it did."""
    changes = world.advance(days=days)
    assert changes["registered"] + changes["exited"] + changes["deleted"] > 0, changes
    return changes
