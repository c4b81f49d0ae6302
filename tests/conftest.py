"""Shared fixtures: a real simulator on loopback and an isolated hub home per test."""

from __future__ import annotations

import os

# The suite runs on the simulator: the demo profile (production, the default, never simulates),
# and no developer's .env (a test that needs one writes its own and points HUB_ENV_FILE at it).
# Set at import, before any test module imports pipelines.definitions.
os.environ["HUB_PROFILE"] = "demo"
os.environ["HUB_ENV_FILE"] = os.devnull
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from base import paths
from seeds.registry import counties

TEST_SCALE = float(os.environ.get("HUB_TEST_SCALE", "0.01"))
TEST_DEFECT_RATE = float(os.environ.get("HUB_TEST_DEFECT_RATE", "0.01"))
DIVISIONS = paths.DIVISIONS


def _county_env_keys() -> list[str]:
    return [f"HUB_{c.slug.upper()}_{k}" for c in counties() for k in ("URL", "KEY", "SECRET")]


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """A fresh HUB_HOME (warehouse, snapshot, landing, state) for one test."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    for key in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT"):
        monkeypatch.delenv(key, raising=False)
    for key in list(os.environ):  # tests never notify the real channels of a developer's .env
        if key.endswith(("_WEBHOOK", "_WEBHOOK_SECRET", "_EMAIL")) or key.startswith("HUB_SMTP_"):
            monkeypatch.delenv(key)
    return tmp_path / "hub"


@contextmanager
def serving(monkeypatch, **world: object) -> Iterator:
    """A simulator world (seed 7, test scale, ``world`` overriding) served over HTTP on
    127.0.0.1, with every county's HUB_<SLUG>_URL/_KEY/_SECRET pointing at it."""
    from simulator import embedded

    handle = embedded.start_in_thread(
        **{"seed": 7, "scale": TEST_SCALE, "defect_rate": TEST_DEFECT_RATE, **world}
    )
    try:
        for key in _county_env_keys():
            monkeypatch.delenv(key, raising=False)
        for key, value in handle.env().items():
            monkeypatch.setenv(key, value)
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def simulator(monkeypatch):
    """A fresh simulator world for one test (tests advance its clock)."""
    with serving(monkeypatch) as handle:
        yield handle


@pytest.fixture
def fast_retries(monkeypatch):
    """Client retries without the production back-off (0.5 s doubling, Retry-After honoured up
    to 2 minutes), so failure-path tests spend their time on the failure, not on sleeping."""
    monkeypatch.setenv("HUB_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("HUB_HTTP_RETRY_AFTER_MAX", "0.05")
