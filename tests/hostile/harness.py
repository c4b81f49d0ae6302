"""What the hostile-platform tests share: a hand-written loopback HTTP server that can misbehave
in ways a well-meaning fake never would (answers that never end, bodies that trickle in a byte at
a time), a real sync (``pipelines.sync.land`` then ``merge``) against it, a fingerprint of the
warehouse to prove a failed sync changed nothing, and a peak-RSS sampler.

Each kind's server (``bigdata.py``, ``battle.py``, ``workbook.py``) serves a tiny, clean county by
default and one hostile behaviour per scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import duckdb

from base import paths
from pipelines import sync
from pipelines.landing import read_manifest
from seeds.registry import County


@dataclass
class Request:
    method: str
    path: str  # raw path as sent (still percent-encoded)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: streamed instead of ``body``, without Content-Length, until it ends or the client leaves
    stream: Iterable[bytes] | None = None


def json_answer(payload, status: int = 200, **kw) -> Answer:
    return Answer(status, json.dumps(payload, ensure_ascii=False).encode(), **kw)


class LoopbackServer:
    """Serves ``handler(Request) -> Answer`` on 127.0.0.1 in a thread; records every request."""

    def __init__(self, handler: Callable[[Request], Answer]) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                outer.requests.append(req)
                answer = outer.handler(req)
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                try:
                    if answer.stream is None:
                        self.send_header("Content-Length", str(len(answer.body)))
                        self.end_headers()
                        self.wfile.write(answer.body)
                        return
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    self.end_headers()
                    for chunk in answer.stream:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up: exactly what we want

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------
# Running syncs and looking at the result


def point_county_at(monkeypatch, county: County, url: str, key: str, secret: str) -> None:
    monkeypatch.setenv(f"{county.env_prefix}URL", url)
    monkeypatch.setenv(f"{county.env_prefix}KEY", key)
    monkeypatch.setenv(f"{county.env_prefix}SECRET", secret)


def run_sync(county: County, mode: str = "incremental") -> sync.Merged:
    return sync.merge(county, sync.land(county, mode))


def warehouse_fingerprint(county: County) -> dict[str, str]:
    """A digest of everything a sync may change for the county: every core table, the
    watermarks and the succeeded sync runs (read-only, so it proves nothing was written)."""
    path = paths.live_db()
    if not Path(path).exists():
        return {}
    out = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'core' "
                "ORDER BY table_name"
            ).fetchall()
        ]
        queries = {f"core.{t}": f"SELECT * FROM core.{t}" for t in tables}
        queries["ops.watermark"] = "SELECT county_code, name, value FROM ops.watermark"
        queries["ops.sync_run"] = "SELECT * FROM ops.sync_run WHERE status = 'succeeded'"
        for name, sql in queries.items():
            rows = sorted(map(repr, con.execute(sql).fetchall()))
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    finally:
        con.close()
    return out


def watermarks(county: County) -> dict[str, str]:
    con = duckdb.connect(str(paths.live_db()), read_only=True)
    try:
        return dict(
            con.execute(
                "SELECT name, value FROM ops.watermark WHERE county_code = ?", [county.code]
            ).fetchall()
        )
    finally:
        con.close()


def query(sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(paths.live_db()), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def landings(county: County) -> list[Path]:
    """The county's landed sync directories, oldest first."""
    root = paths.landing_dir() / county.slug
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def last_landing(county: County):
    return read_manifest(landings(county)[-1])


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Samples this process's resident memory every 5 ms; ``result["growth_mb"]`` is the peak
    above the level at the start (the sync under test runs in this process)."""

    def rss() -> int:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    start = rss()
    result = {"start_mb": start / 2**20, "peak_mb": start / 2**20, "growth_mb": 0.0}
    peak = start
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss())
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        peak = max(peak, rss())
        result["peak_mb"] = peak / 2**20
        result["growth_mb"] = (peak - start) / 2**20


@contextmanager
def timed(limit_s: float) -> Iterator[dict[str, float]]:
    """Asserts the block ends (by returning or raising) within ``limit_s`` seconds."""
    result = {"seconds": 0.0}
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - started
        assert result["seconds"] < limit_s, f"took {result['seconds']:.1f} s (limit {limit_s} s)"
