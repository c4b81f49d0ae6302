"""DingTalk (钉钉) custom robot: ``POST <webhook>`` with a JSON ``markdown`` message.

Format (open.dingtalk.com, 自定义机器人发送群消息): ``{"msgtype": "markdown", "markdown":
{"title": "…", "text": "…"}}``; the answer is ``{"errcode": 0, "errmsg": "ok"}``. A robot with
加签 (signing) needs ``&timestamp=<ms>&sign=<s>`` on the URL, where ``s`` is the URL-encoded
base64 of HMAC-SHA256(key = secret, message = "<timestamp>\\n<secret>").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

import requests

from pipelines.notify.messages import HUB_NAME, Notice
from pipelines.notify.wecom import TIMEOUT, _truncate, check

MAX_BYTES = 20000


def sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value for ``timestamp_ms`` (already URL-encoded)."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    if not secret:
        return url
    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    return f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={sign(secret, ts)}"


def payload(notice: Notice) -> dict:
    lines = [f"#### 【{HUB_NAME}】{notice.title}"]
    lines += [f"- {line}" for line in notice.text_lines()]
    if notice.link and notice.link.startswith("http"):
        lines.append(f"\n[查看运行记录]({notice.link})")
    text = _truncate("\n".join(lines), MAX_BYTES)
    return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": text}}


def send(notice: Notice, target) -> None:
    answer = requests.post(
        signed_url(target.address, target.secret), json=payload(notice), timeout=TIMEOUT
    )
    check(answer)
