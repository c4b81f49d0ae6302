"""The battle client's pages in flight (``pipelines/connectors/battle/page_pool.py``, issue 13):
several pages of a pass requested at once, landed in page order; a failing page fails the sync
naming its URL with nothing after it landed; one re-login serves every page in flight."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from base.errors import SourceError
from pipelines.connectors.battle.client import BattleClient
from pipelines.http import source_settings
from seeds.registry import county
from tests.unit.test_clients_battle import (
    PASSWORD,
    PATHS,
    USER,
    FakeBattle,
    newest_by_key,
    serve,
)
from tests.unit.test_clients_http import FAST, Req, Resp, jresp

PERSON = PATHS["person"]


class Watched(FakeBattle):
    """FakeBattle that holds each list answer a moment and counts the requests in flight."""

    def __init__(self, *args, delay: float = 0.03, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.hook = None  # (req) -> Resp | None, before the platform answers

    def __call__(self, req: Req) -> Resp:
        if req.path == "/login":
            return super().__call__(req)
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            threading.Event().wait(self.delay)  # the platform renders the page
            answer = self.hook(req) if self.hook else None
            return answer or super().__call__(req)
        finally:
            with self.lock:
                self.in_flight -= 1


def client(fake: FakeBattle, concurrency: int) -> BattleClient:
    c = county("shangnan")
    settings = {"HUB_SHANGNAN_KEY": USER, "HUB_SHANGNAN_SECRET": PASSWORD}
    settings["HUB_SHANGNAN_URL"] = fake.server.url
    policy = dataclasses.replace(FAST, page_concurrency=concurrency)
    return BattleClient(c, source_settings(c, settings), policy, page_size=4)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_pages_in_flight_are_bounded_and_landed_in_page_order(concurrency: int) -> None:
    fake = Watched(n=40)
    with serve(fake):
        pages = list(client(fake, concurrency).fetch("full", {}))
    for entity in PATHS:
        assert [p.meta["pageNum"] for p in pages if p.entity == entity] == list(range(1, 11))
        assert len(newest_by_key(pages, entity)) == 40
    assert pages[-1].entity == "listing"
    if concurrency == 1:
        assert fake.most_in_flight == 1  # the old sequential paging
    else:
        assert 2 <= fake.most_in_flight <= concurrency
    # never a page beyond what the platform's total implies (10 pages of 4)
    asked = [int(r.query["pageNum"]) for r in fake.server.requests if r.path == PERSON]
    assert sorted(asked) == list(range(1, 11))


def test_a_failing_page_fails_the_sync_naming_it_and_nothing_after_it_lands() -> None:
    fake = Watched(n=40)
    fake.hook = lambda req: (
        jresp({"code": 500, "msg": "系统繁忙，请稍后再试"})
        if req.path == PERSON and req.query["pageNum"] == "6"
        else None
    )
    landed = []
    with serve(fake), pytest.raises(SourceError) as err:
        for page in client(fake, 4).fetch("full", {}):
            landed.append(page)
    message = str(err.value)
    assert message.startswith("商南县 (611023, shangnan): http://127.0.0.1:"), message
    assert f"{PERSON}?pageNum=6&pageSize=4" in message and "系统繁忙" in message
    assert "gave up after 3 attempts" in message and PASSWORD not in message
    assert [p.meta["pageNum"] for p in landed if p.entity == "person"] == [1, 2, 3, 4, 5]


def test_one_login_again_serves_every_page_in_flight() -> None:
    fake = Watched(n=40)
    expired = threading.Event()

    def expire_once(req: Req) -> Resp | None:
        if req.path == PERSON and req.query["pageNum"] == "3" and not expired.is_set():
            expired.set()
            fake.tokens.clear()  # the pages in flight with the old token are refused too
        return None

    fake.hook = expire_once
    with serve(fake):
        pages = list(client(fake, 4).fetch("full", {}))
    assert expired.is_set() and fake.logins == 2
    assert len(newest_by_key(pages, "person")) == 40
    listing = json.loads(pages[-1].body)
    assert listing["person"]["complete"] and listing["person"]["distinct"] == 40
