"""Loopback stand-ins for the notification channels, checking each one's documented format.

- :class:`RobotReceiver`: an HTTP server answering as WeCom (``POST /cgi-bin/webhook/send?key=``)
  and DingTalk (``POST /robot/send?access_token=``) group robots do. A payload that breaks the
  format (or, for a signing DingTalk robot, a missing/wrong/old signature) is answered with the
  service's error code and recorded in ``errors``; a good one is recorded in ``messages``.
- :class:`MailReceiver`: a real SMTP server (aiosmtpd) keeping every message it receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WECOM_KEY = "wecom-key-0f3c9a"  # what a robot's key looks like: a secret in the URL
DINGTALK_TOKEN = "dingtalk-token-7b21e4"
DINGTALK_SECRET = "SEC0123456789abcdef"


def _wecom_problem(query: dict, body: dict) -> str | None:
    if query.get("key") != [WECOM_KEY]:
        return "invalid webhook key"
    kind = body.get("msgtype")
    if kind == "text":
        content = body.get("text", {}).get("content")
    elif kind == "markdown":
        content = body.get("markdown", {}).get("content")
    else:
        return f"unsupported msgtype {kind!r}"
    if not isinstance(content, str) or not content:
        return "missing content"
    if len(content.encode("utf-8")) > 4096:
        return "content exceeds 4096 bytes"
    return None


def _dingtalk_problem(query: dict, body: dict, secret: str | None) -> str | None:
    if query.get("access_token") != [DINGTALK_TOKEN]:
        return "token is not exist"
    if secret:
        try:
            ts = int(query["timestamp"][0])
            sign = query["sign"][0]
        except (KeyError, ValueError):
            return "sign not match: no timestamp/sign"
        if abs(time.time() * 1000 - ts) > 3600 * 1000:
            return "timestamp too old"
        expected = base64.b64encode(
            hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        ).decode()
        if sign != expected:  # parse_qs has URL-decoded it
            return "sign not match"
    kind = body.get("msgtype")
    if kind == "markdown":
        md = body.get("markdown", {})
        if not (isinstance(md.get("title"), str) and md["title"]):
            return "markdown without title"
        if not (isinstance(md.get("text"), str) and md["text"]):
            return "markdown without text"
    elif kind == "text":
        if not body.get("text", {}).get("content"):
            return "text without content"
    else:
        return f"unsupported msgtype {kind!r}"
    return None


class RobotReceiver:
    """WeCom and DingTalk robots on one loopback port."""

    def __init__(self, dingtalk_secret: str | None = None, fail_with: int | None = None):
        self.messages: list[dict] = []  # {"kind", "body", "query"}
        self.errors: list[str] = []
        self.dingtalk_secret = dingtalk_secret
        self.fail_with = fail_with  # answer every request with this HTTP status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.fail_with:
                    self.send_response(receiver.fail_with)
                    self.end_headers()
                    return
                try:
                    body = json.loads(raw.decode("utf-8"))
                    ctype_ok = self.headers.get("Content-Type", "").startswith("application/json")
                    problem = None if ctype_ok else "Content-Type is not application/json"
                except ValueError:
                    body, problem = {}, "body is not JSON"
                if parts.path == "/cgi-bin/webhook/send":
                    kind = "wecom"
                    problem = problem or _wecom_problem(query, body)
                    code = 93000 if problem else 0
                elif parts.path == "/robot/send":
                    kind = "dingtalk"
                    problem = problem or _dingtalk_problem(query, body, receiver.dingtalk_secret)
                    code = 310000 if problem else 0
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                if problem:
                    receiver.errors.append(f"{kind}: {problem}")
                else:
                    receiver.messages.append({"kind": kind, "body": body, "query": query})
                answer = json.dumps({"errcode": code, "errmsg": problem or "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def wecom_url(self) -> str:
        return f"{self.base}/cgi-bin/webhook/send?key={WECOM_KEY}"

    @property
    def dingtalk_url(self) -> str:
        return f"{self.base}/robot/send?access_token={DINGTALK_TOKEN}"

    def texts(self, kind: str = "wecom") -> list[str]:
        out = []
        for m in self.messages:
            if m["kind"] != kind:
                continue
            md = m["body"].get("markdown") or {}
            out.append(md.get("content") or md.get("text") or m["body"]["text"]["content"])
        return out

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class MailReceiver:
    """A local SMTP server (aiosmtpd) on loopback."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []  # email.message.EmailMessage, parsed with the default policy
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = message_from_bytes(envelope.original_content, policy=policy.default)
                receiver.messages.append((envelope.rcpt_tos, msg))
                return "250 Message accepted for delivery"

        with socket.socket() as probe:  # aiosmtpd's start() needs a concrete port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
