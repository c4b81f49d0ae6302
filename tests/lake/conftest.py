"""Fixtures of the lake tests that use object storage: moto's S3 server on loopback."""

from __future__ import annotations

import pytest


@pytest.fixture
def s3_server():
    """An S3-compatible HTTP server on 127.0.0.1 (moto's ``ThreadedMotoServer``); its
    ``host:port``. moto emulates the API: no real store's permissions, latency or consistency."""
    import requests
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto keeps its buckets and users per process, not per server: start from none
        requests.post(f"http://{host}:{port}/moto-api/reset", timeout=10).raise_for_status()
        yield f"{host}:{port}"
    finally:
        server.stop()
