"""The floor under any loader of 洛南: fetch the eight listings' pages and do nothing with them.

Started by ``dlt_vs_hub.py`` next to dlt and the hub, on the same simulator, with the same
token auth, cursor paging and 5,000 items a page as ``_dlt_luonan.py``. Each page's body is
read whole, and only its cursor is decoded (msgspec skips every other field without building
it); no record is parsed, kept or written. Whatever a loader does with the records, it cannot
take less time than this: the platform's rate limit, its page building and the HTTP exchange
are all here. So ``dlt's time / this time`` is the largest speed-up over dlt any loader can
show on these endpoints. Writes one JSON line with its timings and counts to stdout.

    BENCH_URL=… BENCH_KEY=… BENCH_SECRET=… .venv/bin/python bench/_fetch_floor.py
"""

from __future__ import annotations

import json
import os
import time

import msgspec
import requests
from _luonan_endpoints import ENDPOINTS


class _Page(msgspec.Struct):
    nextCursor: str | None = None
    hasMore: bool = False


class _Envelope(msgspec.Struct):
    code: int
    data: _Page | None = None


def authorised_session() -> tuple[requests.Session, str]:
    """A session holding 洛南's bearer token (``POST /api/v2/auth/token`` with the key and
    secret in the environment) and the API's base URL (also used by ``_load_floor.py``)."""
    api = os.environ["BENCH_URL"].rstrip("/") + "/api/v2"
    session = requests.Session()
    answer = session.post(
        f"{api}/auth/token",
        json={"appKey": os.environ["BENCH_KEY"], "appSecret": os.environ["BENCH_SECRET"]},
        timeout=30,
    )
    answer.raise_for_status()
    session.headers["Authorization"] = "Bearer " + answer.json()["data"]["accessToken"]
    return session, api


def main() -> None:
    started = time.perf_counter()
    session, api = authorised_session()
    decode = msgspec.json.Decoder(_Envelope).decode
    pages = body_bytes = throttled = 0
    for path in ENDPOINTS:
        params: dict[str, object] = {"limit": 5000}
        while True:
            got = session.get(f"{api}/{path}", params=params, timeout=60)
            if got.status_code == 429:  # the platform's rate limit: wait as it says, like dlt
                throttled += 1
                time.sleep(float(got.headers.get("Retry-After", "1")))
                continue
            got.raise_for_status()
            envelope = decode(got.content)
            if envelope.code != 0 or envelope.data is None:
                raise SystemExit(f"{path}: platform answered code {envelope.code}")
            pages += 1
            body_bytes += len(got.content)
            if not (envelope.data.hasMore and envelope.data.nextCursor):
                break
            params = {"limit": 5000, "cursor": envelope.data.nextCursor}
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "pages": pages,
                "body_mb": body_bytes / 2**20,
                "throttled": throttled,
            }
        )
    )


if __name__ == "__main__":
    main()
