"""A real PostgreSQL (Debian's package) per test session, as the DuckLake catalog."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from pipelines.lake.postgres import LocalPostgres, PostgresUnavailable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="hub-postgres-"))
    root.chmod(0o755)
    server = LocalPostgres(root, port=_free_port())
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def lake_dsn(postgres, request) -> str:
    """A fresh catalog database for one test (a lake remembers its data path)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return postgres.database(name)
