"""Client of 洛南县's big-data platform, data-sharing API v2 (``shared/platforms/bigdata.md``).

Pages are yielded exactly as received; this module reads only what paging, re-authentication
and the layout check need. Watermarks (committed by the merge, named by canonical entity):
``<entity>`` = last ``updatedAt`` seen, ``deletions:<entity>`` = last ``deletedAt``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from pipelines.connectors.bigdata.layout import DELETION_FIELDS, ENTITIES, FIELDS
from pipelines.connectors.bigdata.listing_json import decode_listing
from pipelines.http import Fetched, PlatformClient, TransientProblem
from pipelines.landing import Page
from pipelines.paging import PagingGuard
from schemas.sanity import watermark_in_future

log = logging.getLogger(__name__)

API = "/api/v2"

TOKEN_EXPIRED = 40101
BAD_PARAMETER = 40001
FORBIDDEN = 40301
#: Envelope codes that mean "try again shortly": rate limited, database busy, maintenance.
TRANSIENT_CODES = {42901: "rate limited", 50001: "database busy", 50301: "maintenance"}
MAX_LIMIT = 5000
#: Records become visible up to 5 minutes after their updatedAt (the write transaction starts
#: before it commits), so an incremental sync re-reads that window; the merge is idempotent.
VISIBILITY_LAG = timedelta(minutes=5)
BEIJING = timezone(timedelta(hours=8))
TOKEN_MARGIN_S = 30.0  # renew a token this long before the platform says it expires
MAX_CURSOR_LENGTH = 4096  # an opaque cursor goes into the next URL; real ones are < 200


def shift_iso(value: str, delta: timedelta) -> str:
    """``value`` (ISO-8601; Beijing time if it has no offset) moved by ``delta``, millisecond
    precision, offset kept."""
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BEIJING)
    return (dt + delta).isoformat(timespec="milliseconds")


def check_layout(items: list, fields: tuple[str, ...]) -> str | None:
    """A problem description when the first item lacks documented fields, else None."""
    if not items:
        return None
    first = items[0]
    if not isinstance(first, dict):
        return f"unexpected item layout: items are {type(first).__name__}, not objects"
    missing = [f for f in fields if f not in first]
    if not missing:
        return None
    unexpected = sorted(set(first) - set(fields))
    hint = f" (undocumented fields present: {', '.join(unexpected)})" if unexpected else ""
    return f"layout changed: documented field(s) {', '.join(missing)} missing{hint}"


class BigdataClient(PlatformClient):
    kind = "bigdata"

    def __init__(self, *args: Any, limit: int = MAX_LIMIT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = self.base_url + API
        self.limit = max(1, min(limit, MAX_LIMIT))
        self._token_deadline = 0.0

    # -- authentication -------------------------------------------------------------------
    def _authenticate(self) -> str:
        url = f"{self.api}/auth/token"
        if not (self.settings.key and self.settings.secret):
            raise self.error(url, f"no credentials: set {self.county.env_prefix}KEY and _SECRET")
        fetched = self.fetcher.request(
            "POST",
            url,
            json_body={"appKey": self.settings.key, "appSecret": self.settings.secret},
            check=self._check_envelope,
        )
        env = fetched.data
        if fetched.status != 200 or env.get("code") != 0:
            raise self.error(url, f"authentication refused{_envelope_hint(env, fetched.status)}")
        data = env.get("data") or {}
        token = data.get("accessToken") if isinstance(data, dict) else None
        if not token:
            raise self.error(url, "authentication answer carries no accessToken")
        self._token = str(token)
        expires_in = float(data.get("expiresIn") or 1800)
        self._token_deadline = time.monotonic() + max(1.0, expires_in - TOKEN_MARGIN_S)
        return self._token

    def _bearer(self) -> str:
        if self._token is None or time.monotonic() >= self._token_deadline:
            self._authenticate()
        return f"Bearer {self._token}"

    # -- one request ----------------------------------------------------------------------
    @staticmethod
    def _check_envelope(fetched: Fetched) -> None:
        env = fetched.data
        if not isinstance(env, dict) or "code" not in env:
            raise TransientProblem(f"answer is not an API envelope (HTTP {fetched.status})")
        code = env.get("code")
        if code in TRANSIENT_CODES:
            after = fetched.headers.get("Retry-After")
            raise TransientProblem(
                f"platform answered code {code} ({TRANSIENT_CODES[code]}: "
                f"{str(env.get('message'))[:80]})",
                retry_after=float(after) if after and after.isdigit() else None,
            )

    def _get(self, path: str, params: Mapping[str, Any], listing: bool = False) -> Fetched:
        """GET an API path; re-authenticates once if the token is refused, then repeats.
        ``listing``: a page of records, its envelope decoded without the records (``listing_json``)."""
        url = self.api + path
        refusals = 0
        while True:
            fetched = self.fetcher.request(
                "GET",
                url,
                params=params,
                headers={"Authorization": self._bearer()},
                check=self._check_envelope,
                parse_json=decode_listing if listing else True,
            )
            env = fetched.data
            code = env.get("code")
            if fetched.status == 401 or code == TOKEN_EXPIRED:
                refusals += 1
                self.token_refused(fetched.url, refusals, "token refused (40101)")
                self._token = None
                continue
            if fetched.status != 200 or code != 0:
                what = {BAD_PARAMETER: "bad parameter", FORBIDDEN: "not allowed"}.get(
                    code, "platform error"
                )
                raise self.error(fetched.url, f"{what}{_envelope_hint(env, fetched.status)}")
            return fetched

    # -- listings -------------------------------------------------------------------------
    def _pages(
        self,
        path: str,
        params: dict[str, Any],
        page_entity: str,
        fields: tuple[str, ...],
        meta: dict[str, Any],
        expected: int | None = None,
    ) -> Iterator[Page]:
        """Follow ``nextCursor`` while ``hasMore``; yield each page, then check its layout and
        that the paging still makes sense (``PagingGuard``; ``expected``: the platform's own
        count of the records this listing can hold)."""
        cursor: str | None = None
        page_no = 0
        guard = PagingGuard(self, page_entity, expected=expected)
        self.fetching(f"{path.strip('/')} ({page_entity})")
        while True:
            query = {**params, "limit": self.limit}
            if cursor is not None:
                query["cursor"] = cursor
            guard.before(self.api + path, cursor)
            fetched = self._get(path, query, listing=True)
            page_no += 1
            data = fetched.data.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                raise self.error(fetched.url, "listing answer has no data.items list")
            items = data["items"]
            has_more = data.get("hasMore")
            if not isinstance(has_more, bool):
                # "true" as text, or missing: guessing either way could end a full listing early
                # (absence = deletion) or page forever
                raise self.error(fetched.url, f"hasMore is {has_more!r:.40}, not true or false")
            next_cursor = data.get("nextCursor")
            yield Page(
                entity=page_entity,
                url=fetched.url,
                body=fetched.body,
                content_type=fetched.content_type,
                meta={
                    **meta,
                    "pageNo": page_no,
                    "cursor": cursor,
                    "nextCursor": next_cursor,
                    "hasMore": has_more,
                    "items": len(items),
                },
            )
            # Checked after landing so the offending page is kept for whoever investigates.
            problem = check_layout(items, fields)
            if problem:
                raise self.error(fetched.url, problem)
            if page_entity.startswith("deletions:"):
                problem = check_deletion_entities(items, params["entity"])
                if problem:
                    raise self.error(fetched.url, problem)
            guard.after(fetched.url, len(items), has_more)
            if not has_more:
                return
            if not isinstance(next_cursor, str) or not next_cursor or next_cursor == cursor:
                raise self.error(fetched.url, "hasMore is true but nextCursor does not advance")
            if len(next_cursor) > MAX_CURSOR_LENGTH:
                raise self.error(
                    fetched.url,
                    f"nextCursor of {len(next_cursor):,} characters (at most "
                    f"{MAX_CURSOR_LENGTH:,} accepted: it goes into the next URL)",
                )
            cursor = next_cursor

    def _since(self, watermarks: Mapping[str, str], name: str) -> str | None:
        value = watermarks.get(name)
        if not value:
            return None
        try:
            if watermark_in_future(value):
                # A poisoned watermark (committed before source_time_in_future existed): asking
                # for changes after it returns nothing, forever. List the entity in full
                # instead; the full listing then sets the watermark from what it sees.
                log.warning(
                    "%s: watermark %s = %s lies in the future; listing it in full",
                    self.county.label,
                    name,
                    value[:40],
                )
                return None
            return shift_iso(value, -VISIBILITY_LAG)
        except (ValueError, OverflowError):
            raise self.error(f"watermark {name}", f"not an ISO-8601 time: {value[:40]!r}") from None

    def fetch(self, mode: str, watermarks: Mapping[str, str] | None = None) -> Iterator[Page]:
        """Every entity (full or since its watermark), each entity's deletion feed, then the
        platform's live counts (``stats``) for reconciliation."""
        self.check_mode(mode)
        self.start_sync()
        watermarks = watermarks or {}
        # The platform's own counts first: they bound every listing (PagingGuard). Landed too;
        # the normaliser reconciles against the last stats page (fetched after the listings).
        stats = yield from self._stats()
        for api_entity, entity in ENTITIES.items():
            params: dict[str, Any] = {}
            since = self._since(watermarks, entity) if mode == "incremental" else None
            if since:
                params["updatedAfter"] = since
            count = stats.get(api_entity)
            yield from self._pages(
                f"/{api_entity}",
                params,
                entity,
                FIELDS[api_entity],
                {"apiEntity": api_entity, "mode": "incremental" if since else "full", **params},
                expected=count if isinstance(count, int) and count >= 0 else None,
            )
        # Deletions are fetched after the listings: a record deleted while we listed it then
        # shows up as deleted rather than lingering as live.
        for api_entity, entity in ENTITIES.items():
            params = {"entity": api_entity}
            since = self._since(watermarks, f"deletions:{entity}")
            if since:
                params["deletedAfter"] = since
            yield from self._pages(
                "/deletions", params, f"deletions:{entity}", DELETION_FIELDS, dict(params)
            )
        yield from self._stats()

    def _stats(self) -> Generator[Page, None, dict[str, Any]]:
        """Land one ``/stats`` answer; return its ``counts`` (api entity → live records)."""
        self.fetching("stats")
        fetched = self._get("/stats", {})
        data = fetched.data.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict):
            raise self.error(fetched.url, "stats answer has no data.counts object")
        yield Page(
            "stats", fetched.url, fetched.body, fetched.content_type, {"asOf": data.get("asOf")}
        )
        return data["counts"]


def check_deletion_entities(items: list, requested: str) -> str | None:
    """A problem when a deletion item names another entity than the one asked for: the name is
    used to file the deletion (and once crashed staging, holding a ``/``)."""
    wrong = {str(i.get("entity"))[:40] for i in items if i.get("entity") != requested}
    if not wrong:
        return None
    allowed = "" if requested in ENTITIES else f" (not even a documented entity: {requested!r})"
    return (
        f"deletion items name entity {', '.join(sorted(map(repr, wrong)))} in the feed of "
        f"{requested!r}; the contract allows only {requested!r} here{allowed}"
    )


def _envelope_hint(env: Any, status: int) -> str:
    if isinstance(env, dict):
        message = json.dumps(env.get("message"), ensure_ascii=False)[:120]
        return f" (HTTP {status}, code {env.get('code')}: {message})"
    return f" (HTTP {status})"
