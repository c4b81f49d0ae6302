"""Fixtures of the hostile-platform suite: retries and deadlines shrunk so every failure path
ends in seconds, and an isolated hub home per test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def hostile_env(hub_home, monkeypatch):
    """Production knobs scaled down: a failing sync must end in seconds, not minutes."""
    for name, value in {
        "HUB_HTTP_BACKOFF": "0.01",
        "HUB_HTTP_BACKOFF_MAX": "0.05",
        "HUB_HTTP_RETRY_AFTER_MAX": "0.05",
        "HUB_HTTP_RETRIES": "1",
        "HUB_HTTP_BODY_ATTEMPTS": "2",
        "HUB_HTTP_READ_TIMEOUT": "5",
        "HUB_HTTP_CONNECT_TIMEOUT": "2",
        "HUB_SYNC_DEADLINE_SECONDS": "30",
        "HUB_PII_KEY": b"hostile-suite-pii-key".hex(),  # HUB_PII_KEY is hex
    }.items():
        monkeypatch.setenv(name, value)
    return hub_home
