"""Bounds on one listing, so a hostile or broken platform cannot keep a sync paging forever.

What a platform has been seen to do (issue 10): a ``nextCursor`` that loops back to an earlier
page (the client hung, 2,595 pages in 90 s); ``hasMore: true`` with empty pages forever (47,150
files in 90 s). :class:`PagingGuard` is told about every page a client receives and raises a
:class:`~base.errors.SourceError` naming county, entity and URL as soon as

- a cursor / page position comes round a second time (``position`` seen before),
- a page repeats an earlier page of the same listing row for row (``fingerprint`` seen before:
  a platform that ignores ``pageNum``),
- ``policy.max_empty_pages`` pages in a row are empty yet say more follow,
- the listing holds more records, or more pages, than the platform's own count justifies
  (bigdata ``stats``, battle ``total``) with slack (``paging_slack_share`` of the count plus
  ``paging_slack_items``: records move while we page),

and the per-sync deadline (``HttpPolicy.sync_deadline``) bounds everything else. The pages that
arrived are already landed; the landing stays incomplete and is never merged.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from base.errors import SourceError
from pipelines.http import HttpPolicy


@dataclass
class PagingGuard:
    """Watches one listing (one entity, one pass) of one county's sync."""

    client: Any  # a PlatformClient: county, policy and secret masking for the errors
    entity: str  # canonical entity, or "deletions:<entity>"
    expected: int | None = None  # the platform's own count of what this listing holds
    page_size: int | None = None  # records per full page, when the platform fills pages
    pages: int = 0
    records: int = 0
    _empty_run: int = 0
    _positions: dict[Hashable, int] = field(default_factory=dict)
    _fingerprints: dict[int, int] = field(default_factory=dict)

    @property
    def policy(self) -> HttpPolicy:
        return self.client.policy

    def _error(self, url: str, problem: str) -> SourceError:
        return self.client.error(url, f"{self.entity}: {problem}; the sync was stopped")

    def max_records(self) -> int | None:
        if self.expected is None:
            return None
        share = self.policy.paging_slack_share
        return math.ceil(self.expected * (1 + share)) + self.policy.paging_slack_items

    def max_pages(self) -> int | None:
        most = self.max_records()
        if most is None or not self.page_size:
            return None
        return math.ceil(most / self.page_size) + self.policy.max_empty_pages

    def before(self, url: str, position: Hashable) -> None:
        """Call before requesting the page at ``position`` (cursor, pageNum): a position met
        before means the platform's paging loops."""
        if position in self._positions:
            raise self._error(
                url,
                f"paging loops: position {_short(position)} was already requested for page "
                f"{self._positions[position]} (now page {self.pages + 1})",
            )
        self._positions[position] = self.pages + 1

    def after(self, url: str, records: int, more: bool, fingerprint: Hashable = None) -> None:
        """Call with each page received: its record count, whether it says more follow, and
        optionally a fingerprint of its rows (their keys) to catch a page served twice."""
        self.pages += 1
        self.records += records
        if fingerprint is not None and records:
            digest = hash(fingerprint)
            if digest in self._fingerprints:
                raise self._error(
                    url,
                    f"page {self.pages} repeats page {self._fingerprints[digest]} row for row "
                    "(the platform ignores the page position?)",
                )
            self._fingerprints[digest] = self.pages
        if records == 0 and more:
            self._empty_run += 1
            if self._empty_run >= self.policy.max_empty_pages:
                raise self._error(
                    url,
                    f"{self._empty_run} empty pages in a row that still say more follow "
                    f"({self.records} records over {self.pages} pages)",
                )
        else:
            self._empty_run = 0
        most = self.max_records()
        if more and most is not None and self.records > most:
            raise self._error(
                url,
                f"{self.records} records over {self.pages} pages and more announced, while the "
                f"platform counts {self.expected} (allowed up to {most} with slack)",
            )
        most_pages = self.max_pages()
        if more and most_pages is not None and self.pages >= most_pages:
            raise self._error(
                url,
                f"{self.pages} pages and more announced, more than the platform's count of "
                f"{self.expected} justifies at {self.page_size} per page",
            )


def _short(position: Hashable) -> str:
    text = repr(position)
    return text if len(text) <= 60 else text[:57] + "…"
