"""E-mail over SMTP (UTF-8 text, the weekly letter attached).

Settings: ``HUB_SMTP_HOST`` (required to send e-mail), ``HUB_SMTP_PORT`` (default 25),
``HUB_SMTP_SECURITY`` (``none`` / ``starttls`` / ``ssl``; default ``ssl`` on port 465,
``starttls`` on 587, else ``none``), ``HUB_SMTP_USER`` and ``HUB_SMTP_PASSWORD`` (login, when
the server needs one), ``HUB_SMTP_FROM`` (default ``hub@localhost``).
"""

from __future__ import annotations

import mimetypes
import os
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from pipelines.notify.messages import HUB_NAME, Notice

TIMEOUT = 15


def _env(name: str, default: str | None = None) -> str | None:
    return (os.environ.get(name) or "").strip() or default


def message(notice: Notice, recipients: list[str], sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"【{HUB_NAME}】{notice.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="hub.shangluo")
    msg.set_content("\n".join(notice.text_lines()) + "\n", charset="utf-8")
    for path in notice.attachments:
        p = Path(path)
        ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(p.read_bytes(), maintype=maintype, subtype=subtype, filename=p.name)
    return msg


def send(notice: Notice, target) -> None:
    host = _env("HUB_SMTP_HOST")
    if not host:
        raise RuntimeError("HUB_SMTP_HOST is not set")
    port = int(_env("HUB_SMTP_PORT", "25"))
    security = _env("HUB_SMTP_SECURITY") or {465: "ssl", 587: "starttls"}.get(port, "none")
    recipients = [a.strip() for a in target.address.split(",") if a.strip()]
    msg = message(notice, recipients, _env("HUB_SMTP_FROM", "hub@localhost"))
    smtp_class = smtplib.SMTP_SSL if security == "ssl" else smtplib.SMTP
    with smtp_class(host, port, timeout=TIMEOUT) as smtp:
        if security == "starttls":
            smtp.starttls()
        if user := _env("HUB_SMTP_USER"):
            smtp.login(user, _env("HUB_SMTP_PASSWORD", ""))
        smtp.send_message(msg)
