"""Where a county's notifications go, from settings, and delivering to each.

- ``HUB_<SLUG>_WEBHOOK``: one or more robot webhook URLs (comma-separated). The kind is taken
  from the URL's path as the services publish it (WeCom ``/cgi-bin/webhook/send?key=…``,
  DingTalk ``/robot/send?access_token=…``) or from a ``wecom:`` / ``dingtalk:`` prefix.
- ``HUB_<SLUG>_WEBHOOK_SECRET``: the DingTalk robot's signing secret (加签, ``SEC…``), if set.
- ``HUB_<SLUG>_EMAIL``: e-mail addresses (comma-separated); SMTP settings in ``mail.py``.
- ``HUB_CITY_WEBHOOK``, ``HUB_CITY_WEBHOOK_SECRET``, ``HUB_CITY_EMAIL``: the city's channel,
  which receives every county's notifications as well.

Webhook URLs carry their secret (``key``, ``access_token``): they are never logged; a channel is
named in logs by its kind and host only.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import pipelines.notify.dingtalk as dingtalk
import pipelines.notify.mail as mail
import pipelines.notify.wecom as wecom
from base.errors import redact_text
from pipelines.notify.messages import Notice

log = logging.getLogger("pipelines.notify")

_SECRET_QUERY = re.compile(r"\b(key|access_token|sign|timestamp|secret)=[^&\s\"']+")


class _MaskRobotSecrets(logging.Filter):
    """urllib3 logs request lines ("POST /cgi-bin/webhook/send?key=… HTTP/1.1") at DEBUG level
    and retried URLs as warnings: the robots' keys and signatures are masked there as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _SECRET_QUERY.sub(r"\1=***", text)
        if masked != text:
            record.msg, record.args = masked, ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_MaskRobotSecrets())


@dataclass(frozen=True)
class Target:
    kind: str  # wecom / dingtalk / email
    address: str  # webhook URL, or comma-separated e-mail addresses
    secret: str | None = None  # DingTalk signing secret

    def describe(self) -> str:
        """Safe to log: the kind and host, never the path's key or the query."""
        if self.kind == "email":
            return f"e-mail to {len(self.address.split(','))} recipient(s)"
        return f"{self.kind} robot at {urlsplit(self.address).hostname}"

    def secrets(self) -> list[str]:
        """Every part of the address that must not appear in a log line."""
        if self.kind == "email":
            return []
        parts = urlsplit(self.address)
        values = [v for _, v in parse_qsl(parts.query)]
        return [self.address, parts.query, *values, *([self.secret] if self.secret else [])]


def _env(name: str) -> str | None:
    return (os.environ.get(name) or "").strip() or None


def webhook_kind(url: str) -> tuple[str, str]:
    """(kind, url without the kind prefix) of a robot webhook URL."""
    for kind in ("wecom", "dingtalk"):
        if url.startswith(kind + ":") and not url.startswith(kind + "://"):
            return kind, url[len(kind) + 1 :]
    path = urlsplit(url).path
    if path.endswith("/cgi-bin/webhook/send"):
        return "wecom", url
    if path.endswith("/robot/send"):
        return "dingtalk", url
    raise ValueError(
        f"cannot tell the robot kind of a webhook on {urlsplit(url).hostname}: expected "
        "…/cgi-bin/webhook/send (WeCom) or …/robot/send (DingTalk), or a wecom:/dingtalk: prefix"
    )


def _targets(prefix: str) -> list[Target]:
    out = []
    for url in (_env(prefix + "WEBHOOK") or "").split(","):
        url = url.strip()
        if not url:
            continue
        try:
            kind, url = webhook_kind(url)
        except ValueError as exc:
            log.warning("%sWEBHOOK skipped: %s", prefix, exc)
            continue
        out.append(Target(kind, url, _env(prefix + "WEBHOOK_SECRET")))
    if emails := _env(prefix + "EMAIL"):
        out.append(Target("email", emails))
    return out


def channels_for(county) -> list[Target]:
    """The county's own channels, then the city's (duplicates removed)."""
    own = _targets(county.env_prefix) if county is not None else []
    seen, out = set(), []
    for t in [*own, *_targets("HUB_CITY_")]:
        if (t.kind, t.address) not in seen:
            seen.add((t.kind, t.address))
            out.append(t)
    return out


SENDERS = {"wecom": wecom.send, "dingtalk": dingtalk.send, "email": mail.send}


def deliver(notice: Notice, targets: list[Target]) -> int:
    """Send to every target; returns how many accepted it. Failures are logged, never raised."""
    delivered = 0
    for target in targets:
        try:
            SENDERS[target.kind](notice, target)
            delivered += 1
            log.info("notified %s: %s", target.describe(), notice.title)
        except Exception as exc:  # one channel failing must not stop the others
            detail = redact_text(f"{type(exc).__name__}: {exc}", target.secrets())
            log.warning("notification to %s failed: %s", target.describe(), detail[:300])
    return delivered
