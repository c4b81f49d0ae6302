"""Client of the vendor "battle platform" (脱贫攻坚作战平台), v3 and v2 (``shared/platforms/battle.md``).

The platform pages by offset over rows ordered by ``updateTime``; a record that changes while we
page moves to the end, so one pass can skip rows (the rows after it shift up across a page
boundary) and see others twice. The client therefore counts the distinct keys it has seen and
repeats the listing (bounded) until it has at least ``total`` of them. Every page of every pass
is landed; the normaliser keeps the newest ``updateTime`` per key.

Watermarks (canonical entity names): ``<entity>`` = last ``updateTime`` seen
("yyyy-MM-dd HH:mm:ss", Beijing time). v2 has no update filter: every sync is a full listing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from pipelines.connectors.battle.keys import DistinctKeys, fingerprint, list_decoder, page_keys
from pipelines.connectors.battle.layout import (
    FIELDS_V2,
    FIELDS_V3,
    VERSIONS_WITHOUT_TIME_FILTER,
)
from pipelines.connectors.battle.page_pool import PagePool, Pager, new_fetcher
from pipelines.http import Fetched, Fetcher, PlatformClient, TransientProblem, make_session
from pipelines.landing import Page
from pipelines.paging import PagingGuard
from schemas.sanity import watermark_in_future

log = logging.getLogger(__name__)

#: Canonical entity -> list path, in dependency order (parents first).
PATHS: dict[str, str] = {
    "region": "/system/area/list",
    "household": "/fpzz/pkh/list",
    "person": "/fpzz/pkry/list",
    "measure": "/fpzz/bfcs/list",
    "loan": "/fpzz/xd/list",
    "project": "/fpzz/xmk/list",
    "cadre": "/fpzz/bfr/list",
    "household_cadre": "/fpzz/bfgx/list",
}
KEYS: dict[str, tuple[str, ...]] = {
    "region": ("areaCode",),
    "household": ("hbh",),
    "person": ("rybh",),
    "measure": ("csbh",),
    "loan": ("dkbh",),
    "project": ("xmbh",),
    "cadre": ("bfrbh",),
    "household_cadre": ("hbh", "bfrbh"),
}

OK, NOT_LOGGED_IN, SERVER_ERROR = 200, 401, 500
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Re-read the last 5 minutes on incremental syncs (late-committing writes, second precision);
#: the merge is idempotent, so the overlap is harmless.
VISIBILITY_LAG = timedelta(minutes=5)
PAGE_SIZE = {"3": 1000, "2": 200}
MAX_PASSES = 5
BEGIN = "params[beginUpdateTime]"


def shift_time(value: str, delta: timedelta) -> str:
    """A "yyyy-MM-dd HH:mm:ss" (or ISO) time moved by ``delta``, as "yyyy-MM-dd HH:mm:ss"."""
    text = value.strip().replace("T", " ")
    try:
        dt = datetime.strptime(text[:19], TIME_FORMAT)
    except ValueError:
        dt = datetime.fromisoformat(value.strip()).replace(tzinfo=None)
    return (dt + delta).strftime(TIME_FORMAT)


class BattleClient(PlatformClient):
    kind = "battle"

    def __init__(
        self,
        *args: Any,
        page_size: int | None = None,
        max_passes: int = MAX_PASSES,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.version = str(getattr(self.county, "version", "3") or "3")
        cap = PAGE_SIZE.get(self.version, 1000)
        self.page_size = max(1, min(page_size or cap, cap))
        self.max_passes = max(1, max_passes)
        self.fields = FIELDS_V2 if self.version == "2" else FIELDS_V3
        #: per entity: its list answers decoded without Python objects for the rows (keys.py)
        self.decoders = {entity: list_decoder(key) for entity, key in KEYS.items()}
        #: pages in flight at once within a pass (page_pool.py); the token is shared by them
        self.concurrency = max(1, self.policy.page_concurrency)
        self._pool: PagePool | None = None
        self._auth = threading.Lock()

    @property
    def supports_incremental(self) -> bool:
        return self.version not in VERSIONS_WITHOUT_TIME_FILTER

    # -- login ----------------------------------------------------------------------------
    def _login(self, fetcher: Fetcher | None = None) -> str:
        fetcher = fetcher or self.fetcher
        url = f"{self.base_url}/login"
        if not (self.settings.key and self.settings.secret):
            raise self.error(url, f"no credentials: set {self.county.env_prefix}KEY and _SECRET")
        credentials = {"username": self.settings.key, "password": self.settings.secret}
        # Code 500 at login is *not* retried: it is how the platform says "wrong password", and
        # repeating a wrong password locks the account. Transport failures are still retried.
        if self.version == "2":  # v2 takes form fields, v3 a JSON body
            fetched = fetcher.request("POST", url, form=credentials, check=_is_envelope)
        else:
            fetched = fetcher.request("POST", url, json_body=credentials, check=_is_envelope)
        body = fetched.data
        if body.get("code") != OK or not body.get("token"):
            raise self.error(url, f"login refused{_hint(body)}")
        self._token = str(body["token"])
        return self._token

    # -- one request ----------------------------------------------------------------------
    @staticmethod
    def _check(fetched: Fetched) -> None:
        body = fetched.data
        if not isinstance(body, dict) or "code" not in body:
            raise TransientProblem("answer has no code/msg envelope")
        if body.get("code") == SERVER_ERROR:
            raise TransientProblem(f"platform error{_hint(body)}")

    def _get(
        self,
        path: str,
        params: Mapping[str, Any],
        decode: Any = True,
        fetcher: Fetcher | None = None,
    ) -> Fetched:
        """GET a list; on code 401 log in again once and repeat the request. ``decode``: a
        fast decoder of the usual answer (``keys.list_decoder``), else parsed in full.
        ``fetcher``: a page pool thread's own (one login serves all of them)."""
        fetcher = fetcher or self.fetcher
        url = self.base_url + path
        refusals = 0
        while True:
            with self._auth:  # the pages in flight share one token: one login at a time
                token = self._token or self._login(fetcher)
            fetched = fetcher.request(
                "GET", url, params=params, headers={"Authorization": f"Bearer {token}"},
                check=self._check, parse_json=decode,
            )  # fmt: skip
            body = fetched.data
            if body.get("code") == NOT_LOGGED_IN:
                refusals += 1
                self.token_refused(fetched.url, refusals, f"session refused{_hint(body)}")
                with self._auth:  # unless another page has logged in again meanwhile
                    if self._token == token:
                        self._token = None
                continue
            if body.get("code") != OK:
                raise self.error(fetched.url, f"platform error{_hint(body)}")
            total = body.get("total")
            if not isinstance(body.get("rows"), list) or type(total) is not int or total < 0:
                raise self.error(fetched.url, "list answer lacks rows or a total ≥ 0")
            return fetched

    # -- listing --------------------------------------------------------------------------
    def _pass(
        self, entity: str, pass_no: int, params: dict[str, Any], seen: DistinctKeys
    ) -> Generator[Page, None, int]:
        """One offset pass over ``entity``; adds the keys seen to ``seen``, returns the last
        ``total`` the platform reported."""
        path = PATHS[entity]
        # Bounds on the pass: a page served twice (pageNum ignored), more pages than the first
        # answer's total justifies (with slack), the sync's deadline (pipelines/paging.py).
        guard = PagingGuard(self, entity, page_size=self.page_size)
        self.fetching(f"{path} ({entity}, pass {pass_no})")

        def request(fetcher: Fetcher, page_num: int) -> Fetched:
            query = {**params, "pageNum": page_num, "pageSize": self.page_size}
            return self._get(path, query, self.decoders[entity], fetcher)

        with self._page_pool() as pool:
            pager = Pager(
                pool, request, lambda page_num: guard.before(self.base_url + path, page_num),
                page_size=self.page_size, window=self.concurrency, activity=self.fetcher.activity,
            )  # fmt: skip
            try:
                return (yield from self._pages(entity, pass_no, params, seen, guard, pager))
            finally:
                pager.close()

    def _page_pool(self) -> AbstractContextManager[PagePool]:
        """The sync's page pool (``fetch``; not closed by the pass), or one for this pass alone
        (a pass run by itself)."""
        if self._pool is not None:
            return nullcontext(self._pool)
        return self._new_pool()

    def _new_pool(self) -> PagePool:
        def session():
            made = make_session(self.county, self.policy)
            made.trust_env = self.session.trust_env  # loopback: no intranet proxy (http.py)
            return made

        return PagePool(self.concurrency, lambda: new_fetcher(self, session))

    def _pages(
        self,
        entity: str,
        pass_no: int,
        params: dict[str, Any],
        seen: DistinctKeys,
        guard: PagingGuard,
        pager: Pager,
    ) -> Generator[Page, None, int]:
        """The pass's pages in page order, landed and checked one by one as they always were;
        returns the last ``total``."""
        key_fields, fields = KEYS[entity], self.fields[entity]
        page_num, total, reported = 1, 0, None
        while True:
            fetched = pager.get(page_num, reported)
            rows, total = fetched.data["rows"], fetched.data["total"]
            reported = total
            if guard.expected is None:
                guard.expected = total
            yield Page(
                entity=entity,
                url=fetched.url,
                body=fetched.body,
                content_type=fetched.content_type,
                meta={
                    "pass": pass_no,
                    "pageNum": page_num,
                    "pageSize": self.page_size,
                    "total": total,
                    "rows": len(rows),
                    "mode": "incremental" if params else "full",
                    "beginUpdateTime": params.get(BEGIN),
                },
            )
            if rows:
                # Layout checked after landing so the offending page is kept for inspection.
                first = rows[0]
                missing = (
                    [f for f in fields if f not in first] if isinstance(first, dict) else ["*"]
                )
                if missing:
                    extra = sorted(set(first) - set(fields)) if isinstance(first, dict) else []
                    hint = f" (undocumented fields present: {', '.join(extra)})" if extra else ""
                    raise self.error(
                        fetched.url,
                        f"layout changed: documented field(s) {', '.join(missing)} missing{hint}",
                    )
                try:
                    keys = page_keys(key_fields, rows, getattr(fetched.data, "row_keys", None))
                except (KeyError, TypeError):
                    raise self.error(
                        fetched.url,
                        f"a row lacks its key field(s) {'+'.join(key_fields)}, or a key is "
                        "not a plain value",
                    ) from None
                seen.add(keys)
                page_print = fingerprint(keys)
            else:
                page_print = None
            last = len(rows) < self.page_size or page_num * self.page_size >= total
            guard.after(fetched.url, len(rows), not last, fingerprint=page_print)
            if last:
                return total
            page_num += 1

    def _listing(self, entity: str, params: dict[str, Any], stats: dict) -> Iterator[Page]:
        """Passes over ``entity`` until the distinct keys seen reach the platform's total
        (counted out of core: ``keys.DistinctKeys``)."""
        with DistinctKeys() as seen:
            yield from self._passes(entity, params, stats, seen)

    def _passes(
        self, entity: str, params: dict[str, Any], stats: dict, seen: DistinctKeys
    ) -> Iterator[Page]:
        total = distinct = 0
        for pass_no in range(1, self.max_passes + 1):
            total = yield from self._pass(entity, pass_no, params, seen)
            distinct = seen.count()
            if distinct >= total:
                stats[entity] = {
                    "total": total,
                    "distinct": distinct,
                    "passes": pass_no,
                    "mode": "incremental" if params else "full",
                    "beginUpdateTime": params.get(BEGIN),
                    "complete": True,
                }
                return
        raise self.error(
            self.base_url + PATHS[entity],
            f"listing incomplete: {distinct} distinct {KEYS[entity]} keys after "
            f"{self.max_passes} passes, platform reports total {total} (records keep moving "
            "while paging)",
        )

    def fetch(self, mode: str, watermarks: Mapping[str, str] | None = None) -> Iterator[Page]:
        """Every entity (full, or since its watermark on v3), then a ``listing`` page stating,
        per entity, the total, the distinct keys landed and whether it was a full listing."""
        self.check_mode(mode)
        self.start_sync()
        with self._new_pool() as self._pool:  # one pool (threads, sessions) for the sync
            try:
                yield from self._fetch(mode, watermarks or {})
            finally:
                self._pool = None

    def _fetch(self, mode: str, watermarks: Mapping[str, str]) -> Iterator[Page]:
        stats: dict[str, dict] = {}
        for entity in PATHS:
            params: dict[str, Any] = {}
            mark = watermarks.get(entity)
            if mode == "incremental" and self.supports_incremental and mark:
                try:
                    if watermark_in_future(mark):
                        # a poisoned watermark: list in full, which sets it from what it sees
                        log.warning(
                            "%s: watermark %s = %s lies in the future; listing it in full",
                            self.county.label,
                            entity,
                            mark[:40],
                        )
                    else:
                        params[BEGIN] = shift_time(mark, -VISIBILITY_LAG)
                except (ValueError, OverflowError):
                    raise self.error(
                        f"watermark {entity}", f"not a 'yyyy-MM-dd HH:mm:ss' time: {mark[:40]!r}"
                    ) from None
            yield from self._listing(entity, params, stats)
        body = json.dumps(stats, ensure_ascii=False).encode("utf-8")
        yield Page("listing", self.base_url, body, "application/json", {"complete": True})


def _is_envelope(fetched: Fetched) -> None:
    if not isinstance(fetched.data, dict) or "code" not in fetched.data:
        raise TransientProblem("answer has no code/msg envelope")


def _hint(body: Any) -> str:
    if isinstance(body, dict):
        return f" (code {body.get('code')}: {str(body.get('msg'))[:120]})"
    return ""
