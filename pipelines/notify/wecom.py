"""WeCom (企业微信) group robot: ``POST <webhook>`` with a JSON ``markdown`` message.

Format (developer.work.weixin.qq.com, 群机器人配置说明): ``{"msgtype": "markdown",
"markdown": {"content": "…"}}``, content at most 4096 bytes of UTF-8; the answer is
``{"errcode": 0, "errmsg": "ok"}`` on success.
"""

from __future__ import annotations

import requests

from pipelines.notify.messages import HUB_NAME, Notice

MAX_BYTES = 4096
TIMEOUT = (5, 10)


def _truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def content(notice: Notice) -> str:
    colour = "warning" if notice.kind in ("failed", "refused") else "info"
    lines = [f'**【{HUB_NAME}】<font color="{colour}">{notice.title}</font>**']
    lines += [f"> {line}" for line in notice.text_lines()]
    if notice.link and notice.link.startswith("http"):
        lines.append(f"[查看运行记录]({notice.link})")
    return _truncate("\n".join(lines), MAX_BYTES)


def payload(notice: Notice) -> dict:
    return {"msgtype": "markdown", "markdown": {"content": content(notice)}}


def send(notice: Notice, target) -> None:
    answer = requests.post(target.address, json=payload(notice), timeout=TIMEOUT)
    check(answer)


def check(answer: requests.Response) -> None:
    """Both robots answer HTTP 200 with ``errcode`` 0; anything else is a failed delivery."""
    answer.raise_for_status()
    body = answer.json()
    if body.get("errcode") != 0:
        raise RuntimeError(f"robot answered errcode {body.get('errcode')}: {body.get('errmsg')}")
