"""Shared fixtures: a real simulator on loopback and an isolated hub home per test."""

from __future__ import annotations

import os

# The suite runs on the simulator: the demo profile (production, the default, never simulates),
# and no developer's .env (a test that needs one writes its own and points HUB_ENV_FILE at it).
# Set at import, before any test module imports pipelines.definitions.
os.environ["HUB_PROFILE"] = "demo"
os.environ["HUB_ENV_FILE"] = os.devnull
import hashlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from base import paths
from seeds.registry import counties

TEST_SCALE = float(os.environ.get("HUB_TEST_SCALE", "0.01"))
TEST_DEFECT_RATE = float(os.environ.get("HUB_TEST_DEFECT_RATE", "0.01"))
DIVISIONS = paths.DIVISIONS
#: The DuckLake backend's settings: unset (the DuckDB file) unless a test asks for the lake.
LAKE_SETTINGS = ("HUB_WAREHOUSE_BACKEND", "HUB_LAKE_CATALOG", "HUB_LAKE_DATA_PATH")


def _county_env_keys() -> list[str]:
    return [f"HUB_{c.slug.upper()}_{k}" for c in counties() for k in ("URL", "KEY", "SECRET")]


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """A fresh HUB_HOME (warehouse, snapshot, landing, state) for one test."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    for key in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT", *LAKE_SETTINGS):
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


# --- the DuckLake backend: a real PostgreSQL (Debian's package) per test worker ------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for this test worker (catalogs of DuckLake); the tests skip, saying
    why, on a machine without the server package (`make system-deps` installs it)."""
    from pipelines.lake.postgres import LocalPostgres, PostgresUnavailable

    # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="hub-postgres-"))
    root.chmod(0o755)
    server = LocalPostgres(root, port=_free_port())
    try:
        server.start()
    except PostgresUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server for the DuckLake catalog: {exc}")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def _database_name(request) -> str:
    """A catalog database of its own for one test (a lake remembers its data path)."""
    node = "".join(c if c.isalnum() else "_" for c in request.node.name).lower()
    return f"t_{node[:40]}_{hashlib.md5(request.node.nodeid.encode()).hexdigest()[:8]}"


@pytest.fixture
def lake_dsn(postgres, request) -> str:
    return postgres.database(_database_name(request))


#: The warehouse backends an end-to-end test runs on (the lake's cases carry the `lake` marker).
BACKENDS = ["duckdb", pytest.param("ducklake", marks=pytest.mark.lake)]


@pytest.fixture(params=BACKENDS)
def backend(request, hub_home, monkeypatch) -> str:
    """Run the test on the DuckDB file or on a fresh lake of this worker's PostgreSQL (its data
    files under the test's HUB_HOME)."""
    if request.param == "ducklake":
        server = request.getfixturevalue("postgres")
        monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
        monkeypatch.setenv("HUB_LAKE_CATALOG", server.database(_database_name(request)))
    return request.param
