"""The shared HTTP layer (``pipelines/http.py``) and error messages (``base/errors.py``),
against a small stdlib HTTP server on loopback that misbehaves on request.

``FakeServer`` is also used by the client tests as a stand-in for platforms in unit tests that
need precise control over faults (the real simulator is used where it is available)."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from base.errors import RejectThresholdExceeded, SafetyStop, SourceError, redact_url
from pipelines.http import Fetcher, HttpPolicy, make_session, source_settings
from seeds.registry import County

FAST = HttpPolicy(
    retries=3,
    backoff_factor=0.01,
    backoff_max=0.05,
    retry_after_max=2.0,
    connect_timeout=1.0,
    read_timeout=1.0,
    body_attempts=3,
)
COUNTY = County("611021", "洛南县", "Luonan County", "luonan", "bigdata", "2", 0.05, "t")


# ---------------------------------------------------------------------------------------------
# A tiny programmable HTTP server
# ---------------------------------------------------------------------------------------------
@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Resp:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    mode: str = "normal"  # normal / drop (close, no answer) / short (Content-Length lies)


def jresp(payload, status: int = 200, **kw) -> Resp:
    return Resp(status, json.dumps(payload, ensure_ascii=False).encode(), **kw)


HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

# Faults a fake applies to its next requests (outside login), mirroring the simulator's kinds.
FAULT_KINDS = ("http500", "html502", "html200", "rate_limit", "drop_connection", "truncate")


def fault_response(kind: str, real: Resp) -> Resp:
    if kind == "http500":
        return Resp(500, b"Internal Server Error", "text/plain")
    if kind == "html502":
        return Resp(502, HTML_PAGE, "text/html")
    if kind == "html200":
        return Resp(200, HTML_PAGE, "text/html")
    if kind == "rate_limit":
        return Resp(
            429, b'{"code":42901,"message":"too many requests"}', headers={"Retry-After": "0"}
        )
    if kind == "drop_connection":
        return Resp(mode="drop")
    if kind == "truncate":  # a body cut in half that still claims to be complete JSON
        return Resp(real.status, real.body[: len(real.body) // 2], real.content_type)
    if kind == "short":  # Content-Length larger than what arrives
        return Resp(real.status, real.body, real.content_type, mode="short")
    raise ValueError(kind)


class FakeServer:
    """Serves ``handler(Req) -> Resp`` on 127.0.0.1 in a thread; records every request."""

    def __init__(self, handler: Callable[[Req], Resp]) -> None:
        self.handler = handler
        self.requests: list[Req] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def setup(self):
                super().setup()
                # headers and body go out in separate writes: without this, delayed ACKs
                # cost ~40 ms per request on loopback
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Req(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                outer.requests.append(req)
                resp = outer.handler(req)
                if resp.delay:
                    time.sleep(resp.delay)
                if resp.mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                declared = len(resp.body) * 2 + 10 if resp.mode == "short" else len(resp.body)
                self.send_header("Content-Length", str(declared))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                if resp.mode == "short":
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(resp.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if resp.mode == "short":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Script:
    """A handler answering the next requests with scripted responses, then ``default``."""

    def __init__(self, default: Resp, *script: Resp) -> None:
        self.default = default
        self.script = list(script)

    def __call__(self, req: Req) -> Resp:
        return self.script.pop(0) if self.script else self.default


def fetcher(server: FakeServer, policy: HttpPolicy = FAST, secrets=()) -> Fetcher:
    return Fetcher(make_session(COUNTY, policy), COUNTY, policy, secrets=lambda: secrets)


OK = jresp({"code": 0, "data": {"x": 1}})


# ---------------------------------------------------------------------------------------------
# Transient failures are survived
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        Resp(200, HTML_PAGE, "text/html"),  # gateway page with status 200
        Resp(200, HTML_PAGE, "application/json"),  # ... even when it claims to be JSON
        Resp(200, b'{"code":0,"data":{"x":', "application/json"),  # truncated JSON
        Resp(mode="drop"),  # connection closed without an answer
        Resp(500, b"oops", "text/plain"),  # 5xx retried by urllib3
        Resp(502, HTML_PAGE, "text/html"),
        Resp(503, b"", "text/plain", headers={"Retry-After": "0"}),
        fault_response("short", OK),  # Content-Length says more than arrives
    ],
    ids=["html200", "html-as-json", "truncated", "drop", "http500", "html502", "503", "short"],
)
def test_transient_failures_are_retried(bad: Resp) -> None:
    with FakeServer(Script(OK, bad, bad)) as server:
        got = fetcher(server).request("GET", server.url + "/api/v2/x")
        assert got.data == {"code": 0, "data": {"x": 1}}
        assert len(server.requests) == 3


def test_read_timeout_is_retried() -> None:
    slow = Resp(200, OK.body, delay=1.5)
    with FakeServer(Script(OK, slow)) as server:
        assert fetcher(server).request("GET", server.url + "/x").data["code"] == 0
        assert len(server.requests) == 2


def test_retry_after_is_respected() -> None:
    limited = Resp(429, b'{"code":42901}', headers={"Retry-After": "1"})
    with FakeServer(Script(OK, limited)) as server:
        started = time.monotonic()
        fetcher(server).request("GET", server.url + "/x")
        assert time.monotonic() - started >= 0.9
        assert len(server.requests) == 2


def test_post_is_retried_for_logins() -> None:
    with FakeServer(Script(OK, Resp(mode="drop"), Resp(502, HTML_PAGE, "text/html"))) as server:
        got = fetcher(server).request("POST", server.url + "/login", json_body={"u": "a"})
        assert got.status == 200
        assert [r.method for r in server.requests] == ["POST"] * 3


# ---------------------------------------------------------------------------------------------
# Persistent failures end in a clear SourceError
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (Resp(200, HTML_PAGE, "text/html"), "HTML page instead of JSON"),
        (Resp(200, b'{"rows": [1, 2', "application/json"), "truncated JSON"),
        (Resp(500, b"oops", "text/plain"), "HTTP 500"),
        (Resp(502, HTML_PAGE, "text/html"), "HTTP 502"),
        (Resp(mode="drop"), "connection failed after 3 retries"),
        (Resp(404, b"not found", "text/plain"), "HTTP 404"),
        (fault_response("short", OK), "transfer interrupted"),
    ],
)
def test_persistent_failures_raise_source_error(bad: Resp, words: str) -> None:
    with FakeServer(Script(bad)) as server:
        url = server.url + "/api/v2/households?limit=5"
        with pytest.raises(SourceError) as err:
            fetcher(server).request("GET", url)
        message = str(err.value)
        assert message.startswith("洛南县 (611021, luonan): http://127.0.0.1:")
        assert "/api/v2/households?limit=5" in message
        assert words in message
        # bounded: never more than (urllib3 retries + 1) x body attempts requests
        assert len(server.requests) <= (FAST.retries + 1) * FAST.body_attempts


def test_unreachable_host_is_a_source_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    session = make_session(COUNTY, FAST)
    f = Fetcher(session, COUNTY, FAST)
    with pytest.raises(SourceError, match=r"connection failed after 3 retries"):
        f.request("GET", f"http://127.0.0.1:{port}/api/v2/stats")


def test_non_2xx_json_is_returned_for_the_client_to_interpret() -> None:
    expired = jresp({"code": 40101, "message": "token expired"}, status=401)
    with FakeServer(Script(expired)) as server:
        got = fetcher(server).request("GET", server.url + "/x")
        assert got.status == 401
        assert got.data["code"] == 40101


# ---------------------------------------------------------------------------------------------
# No secret in any message
# ---------------------------------------------------------------------------------------------
def test_source_error_strips_credentials() -> None:
    err = SourceError(
        COUNTY,
        "https://user:pa55word@fp.example.cn/api/v2/x?cursor=abc&access_token=tok123&appSecret=s3cret",
        "refused with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y and key s3cret-value",
        secrets=["s3cret-value"],
    )
    text = str(err)
    for secret in ("pa55word", "user:", "tok123", "s3cret", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in text
    assert "cursor=abc" in text
    assert text.startswith("洛南县 (611021, luonan): https://fp.example.cn/api/v2/x?")
    assert "refused with" in text
    # survives pickling (Dagster moves exceptions between processes) without regaining secrets
    assert str(pickle.loads(pickle.dumps(err))) == text


def test_error_bodies_never_leak_known_secrets() -> None:
    echo = Resp(200, b"<html>appSecret=TOPSECRET-42 rejected</html>", "text/html")
    with FakeServer(Script(echo)) as server:
        with pytest.raises(SourceError) as err:
            fetcher(server, secrets=("TOPSECRET-42",)).request(
                "GET", server.url + "/x", params={"token": "TOPSECRET-42"}
            )
        assert "TOPSECRET-42" not in str(err.value)
        assert "token=%2A%2A%2A" in str(err.value) or "token=***" in str(err.value)


def test_redact_url_leaves_ordinary_urls_and_paths_alone() -> None:
    url = (
        "http://127.0.0.1:8000/fpzz/pkh/list?pageNum=2&pageSize=1000&params%5BbeginUpdateTime%5D=x"
    )
    assert redact_url(url) == url
    assert redact_url("/var/landing/x.json") == "/var/landing/x.json"


def test_other_errors_have_clear_messages() -> None:
    stop = SafetyStop(COUNTY, "household", 300, 1000, 0.2)
    assert "洛南县" in str(stop) and "300 of 1000" in str(stop) and "30.0%" in str(stop)
    reasons = [{"entity": "person", "rule": "unknown_code", "column_name": "ethnicity",
                "records": 50, "message": "…"}]  # fmt: skip
    refused = RejectThresholdExceeded(COUNTY, 0.08, 0.05, reasons, rejected=80, total=1000)
    text = str(refused)
    assert "8.0% of 80 of 1000 records" in text and "threshold of 5.0%" in text
    assert "unknown_code (person.ethnicity) ×50" in text
    assert str(pickle.loads(pickle.dumps(refused))) == text
    assert "missing_value ×3" in str(
        RejectThresholdExceeded("x", 0.5, 0.05, [("missing_value", 3)])
    )


def test_settings_from_mapping_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_LUONAN_KEY", "from-env")
    monkeypatch.delenv("HUB_LUONAN_URL", raising=False)
    got = source_settings(COUNTY, {"HUB_LUONAN_URL": "http://h:1/", "HUB_LUONAN_SECRET": "s"})
    assert (got.url, got.key, got.secret) == ("http://h:1", "from-env", "s")
    # pipelines.sources.connection_settings hands over lower-case keys
    got = source_settings(COUNTY, {"url": "http://h:2", "key": "k", "secret": "s2"})
    assert (got.url, got.key, got.secret) == ("http://h:2", "k", "s2")
    assert "from-env" not in repr(got)
    with pytest.raises(SourceError, match="HUB_LUONAN_URL: not set"):
        source_settings(COUNTY, {})
    assert HttpPolicy.from_settings({"HUB_HTTP_RETRIES": "2"}).retries == 2
