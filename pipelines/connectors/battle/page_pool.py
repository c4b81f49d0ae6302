"""Concurrent page requests of the battle platform's offset listings (issue 13).

商州's v2 platform caps a page at 200 rows and cannot filter by time, so every sync reads its
~175k records in ~900 requests; one at a time, the sync waited on each answer in turn (the
platform's rendering, the transfer, our decode) and the landing was the incremental's critical
path. The platform documents no rate limit and no rule against concurrent requests
(``shared/platforms/battle.md``: it gets slow under load and sometimes drops a connection), so
a pass keeps a few pages in flight: ``HUB_HTTP_PAGE_CONCURRENCY`` (``HttpPolicy``, default 4;
1 = the old strictly sequential paging).

- :class:`PagePool`: a few daemon threads, each with its own ``requests`` session (sessions are
  not thread-safe) and :class:`~pipelines.http.Fetcher`, so urllib3's transport retries, the
  body retries, the timeouts, the size bounds and the sync's deadline apply to every request
  exactly as before. Closing the pool cancels what is queued and stops what runs at its next
  attempt or body chunk (its deadline is moved to the past); threads are daemons, so a request
  hung on a dead platform never holds up the process's exit.
- :class:`Pager`: one pass's pages, requested in page order up to ``window`` ahead of the page
  being handed out, never beyond the last page the platform's latest ``total`` implies, and
  handed out strictly in page order. The client processes them exactly as before (landing,
  layout check, keys, ``PagingGuard``, the last-page rule); a page that failed raises its
  ``SourceError`` (county, URL, problem) when its turn comes, and the pages after it are
  dropped. With a window of 1 a page is requested only once the one before it was handled.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pipelines.http import Fetched, Fetcher

#: A page request run on a pool thread with that thread's fetcher.
Request = Callable[[Fetcher], Fetched]


class PagePool:
    """``size`` daemon threads running page requests, each with its own fetcher (session)."""

    def __init__(self, size: int, make_fetcher: Callable[[], Fetcher]) -> None:
        self.size = max(1, size)
        self._tasks: queue.SimpleQueue[tuple[Future, Request, str] | None] = queue.SimpleQueue()
        self._closed = False
        self._fetchers: list[Fetcher] = []
        for i in range(self.size):
            fetcher = make_fetcher()
            self._fetchers.append(fetcher)
            threading.Thread(
                target=self._work, args=(fetcher,), name=f"battle-pages-{i}", daemon=True
            ).start()

    def submit(self, request: Request, activity: str = "") -> Future:
        """Run ``request(fetcher)`` on a pool thread; ``activity`` names what is fetched in a
        deadline's message (``Fetcher.activity``)."""
        future: Future = Future()
        if self._closed:
            future.cancel()
        else:
            self._tasks.put((future, request, activity))
        return future

    def _work(self, fetcher: Fetcher) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, request, activity = task
                if self._closed or not future.set_running_or_notify_cancel():
                    continue
                fetcher.activity = activity
                try:
                    future.set_result(request(fetcher))
                except BaseException as exc:  # handed to the pass, raised in its turn
                    future.set_exception(exc)
        finally:
            fetcher.session.close()

    def close(self) -> None:
        """Cancel what is queued, stop what runs (at its next attempt or body chunk), end the
        threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for fetcher in self._fetchers:
            fetcher.deadline = -math.inf
        for _ in range(self.size):
            self._tasks.put(None)

    def __enter__(self) -> PagePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pager:
    """The pages of one offset pass, requested up to ``window`` ahead and handed out in order.

    ``request(fetcher, page_num)`` fetches one page; ``before(page_num)`` is called (in page
    order, in the caller's thread) just before a page is requested (``PagingGuard.before``)."""

    def __init__(
        self,
        pool: PagePool,
        request: Callable[[Fetcher, int], Fetched],
        before: Callable[[int], None],
        *,
        page_size: int,
        window: int,
        activity: str = "",
    ) -> None:
        self.pool = pool
        self.request = request
        self.before = before
        self.page_size = page_size
        self.window = max(1, window)
        self.activity = activity
        self._futures: dict[int, Future] = {}
        self._requested = 0  # the highest page number requested so far

    def get(self, page_num: int, total: int | None) -> Fetched:
        """Page ``page_num`` once it has arrived; ``total``: the platform's latest count (None
        before the first answer), which bounds how far ahead pages are requested."""
        last_known = page_num
        if total is not None:
            last_known = max(page_num, math.ceil(total / self.page_size))
        self._request_up_to(min(page_num + self.window - 1, last_known))
        return self._futures.pop(page_num).result()

    def _request_up_to(self, last: int) -> None:
        while self._requested < last:
            self._requested += 1
            page_num = self._requested
            self.before(page_num)
            self._futures[page_num] = self.pool.submit(
                lambda fetcher, n=page_num: self.request(fetcher, n), self.activity
            )

    def close(self) -> None:
        """Drop the pages requested and not handed out (the pass ended or failed before)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()


def new_fetcher(client: Any, make_session: Callable[[], Any]) -> Fetcher:
    """A fetcher like ``client.fetcher`` (policy, secrets, backoff sleep, the sync's deadline)
    on a session of its own."""
    base: Fetcher = client.fetcher
    return Fetcher(
        make_session(),
        base.county,
        base.policy,
        secrets=base.secrets,
        sleep=base.sleep,
        deadline=base.deadline,
        activity=base.activity,
    )
