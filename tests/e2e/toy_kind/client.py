"""The toy platform's client: two listings, each one JSON page."""

from __future__ import annotations

from collections.abc import Iterator

from pipelines.http import PlatformClient
from pipelines.landing import Page

LISTINGS = {"region": "/regions", "project": "/projects"}


class ToyClient(PlatformClient):
    kind = "toy"

    def fetch(self, mode: str, watermarks: dict) -> Iterator[Page]:
        self.check_mode(mode)
        self.start_sync()
        headers = {"Authorization": f"Bearer {self.settings.key}"}
        for entity, path in LISTINGS.items():
            self.fetching(entity)
            got = self.fetcher.request("GET", self.base_url + path, headers=headers)
            if not isinstance(got.data, list):
                raise self.error(got.url, "expected a JSON list of records")
            yield Page(entity, got.url, got.body, got.content_type, {"total": len(got.data)})
