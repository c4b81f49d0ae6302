"""洛南's listing envelopes decoded without the records (issue 13): the same answers to the
client's checks as ``json.loads``; anything else raises, and ``pipelines.http`` parses in full."""

from __future__ import annotations

import json

import msgspec
import pytest

from pipelines.connectors.bigdata.listing_json import RawRecords, decode_listing

PAGE = {
    "code": 0,
    "message": "ok",
    "data": {
        "items": [{"id": "h1", "size": 3, "tags": ["a"]}, {"id": "h2", "size": None}, [1, 2]],
        "hasMore": True,
        "nextCursor": "c2",
        "total": 3,
    },
}


def test_a_listing_page_reads_as_json_loads_reads_it():
    body = json.dumps(PAGE).encode()
    fast, full = decode_listing(body), json.loads(body)
    assert (fast["code"], fast["message"]) == (full["code"], full["message"])
    data = fast["data"]
    assert (data["hasMore"], data["nextCursor"]) == (True, "c2")
    items = data["items"]
    assert isinstance(items, list) and isinstance(items, RawRecords) and len(items) == 3
    assert items[0] == full["data"]["items"][0] and list(items) == full["data"]["items"]
    assert items[1:] == full["data"]["items"][1:]


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":0,"data":{"items":[{"workMonths":NaN}],"hasMore":false}}',
        b'{"code":0,"data":{"items":' + b"[" * 10_000 + b"]" * 10_000 + b',"hasMore":false}}',
        b'{"code":0,"data":{"items":{"id":1},"hasMore":false}}',  # items not a list
        b'{"code":0,"data":{"items":[{"id":1}],"hasMore":false}',  # cut off
        b'{"message":"no code","data":{"items":[]}}',
        b"[]",
    ],
)
def test_what_is_not_a_plain_listing_page_raises(body):
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError, RecursionError)):
        decode_listing(body)
