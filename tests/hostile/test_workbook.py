"""丹凤 (workbook drop, GB18030 CSV) against a hostile file service: names from the index that would
leave ``/exports/`` (or name no file the contract allows), sizes that lie, files that never end
or trickle in, indexes that are not JSON, and bad values inside a register."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from base.errors import SourceError
from seeds.registry import county
from tests.hostile.harness import (
    last_landing,
    peak_rss,
    point_county_at,
    query,
    run_sync,
    timed,
    warehouse_fingerprint,
    watermarks,
)
from tests.hostile.workbook import PASSWORD, USER, HostileDrop, clean_rows, register_csv

DANFENG = county("danfeng")
PREFIX = "丹凤县 (611022, danfeng): http://127.0.0.1:"
NEXT = "丹凤县贫困人口_20160702.csv"


@pytest.fixture
def drop(monkeypatch):
    d = HostileDrop()
    with d.server:
        point_county_at(monkeypatch, DANFENG, d.server.url, USER, PASSWORD)
        yield d


def baseline(drop: HostileDrop) -> dict[str, str]:
    merged = run_sync(DANFENG, "full")
    assert merged.counts["person"]["accepted"] == 6
    assert query("SELECT rule, count(*) FROM ops.reject GROUP BY rule") == []  # a clean county
    return warehouse_fingerprint(DANFENG)


BODY = register_csv(clean_rows())


def named(name: str):
    return lambda d: d.upload(name, BODY, "2016-07-02")


def endless(d: HostileDrop) -> None:
    d.upload(NEXT, b"x" * 1000, "2016-07-02")
    d.stream_file = NEXT


def drip(d: HostileDrop) -> None:
    d.upload(NEXT, BODY, "2016-07-02")
    d.drip_file = NEXT


def index(body: bytes):
    def prepare(d: HostileDrop) -> None:
        d.index_override = body

    return prepare


def duplicate(d: HostileDrop) -> None:
    d.upload(NEXT, BODY, "2016-07-02")
    d.upload(NEXT, BODY + BODY[-50:], "2016-07-03")


FAILURES = {
    "path traversal": (
        named("../../etc/x.csv"),
        ["index.json", "'../../etc/x.csv' is not one the contract allows"],
        5,
        {},
    ),
    "a folder in the name": (
        named("子目录/丹凤县贫困人口_20160702.csv"),
        ["index.json", "is not one the contract allows"],
        5,
        {},
    ),
    "percent-encoded dots": (
        named("%2e%2e%2fx.csv"),
        ["index.json", "'%2e%2e%2fx.csv' is not one"],
        5,
        {},
    ),
    "a control character": (
        named("丹凤县\x00.csv"),
        ["index.json", "is not one the contract allows"],
        5,
        {},
    ),
    "not a register file": (
        named("丹凤县贫困人口_20160702.exe"),
        ["index.json", "ending in .xlsx or .csv"],
        5,
        {},
    ),
    "size not a number": (
        lambda d: (named(NEXT)(d), d.index_with(size="abc")),
        ["index.json", "size 'abc' is not a count of bytes"],
        5,
        {},
    ),
    "size beyond the cap": (
        lambda d: (named(NEXT)(d), d.index_with(size=10**12)),
        ["index.json", "1,000,000,000,000 bytes, more than"],
        5,
        {},
    ),
    "sha256 not hex": (
        lambda d: (named(NEXT)(d), d.index_with(sha256="../x")),
        ["index.json", "is not 64 hex digits"],
        5,
        {},
    ),
    "one name, two contents": (
        duplicate,
        ["index.json", f"lists '{NEXT}' twice with different contents"],
        5,
        {},
    ),
    "a file that never ends": (
        endless,
        ["/exports/", "more than the 1,000 bytes expected arrived", "gave up after 2 attempts"],
        5,
        {},
    ),
    "a file that trickles in": (
        drip,
        ["/exports/", f"sync deadline of 1.5 s passed while fetching file {NEXT}"],
        4,
        {"HUB_SYNC_DEADLINE_SECONDS": "1.5"},
    ),
    "index nested 10,000 deep": (
        index(b'{"files":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        ["index.json", "nested too deeply"],
        5,
        {},
    ),
    "index with NaN": (
        index(b'{"files": [{"size": NaN}]}'),
        ["index.json", "NaN, which is not a JSON number"],
        5,
        {},
    ),
    "index not JSON": (
        index(b"files: none"),
        ["index.json", "not JSON: Expecting value at line 1 column 1"],
        5,
        {},
    ),
    "index not the envelope": (
        index(b"[]"),
        ["index.json", "index has no 'files' list"],
        5,
        {},
    ),
}


def test_refused_credentials_fail_at_once(drop, monkeypatch) -> None:
    before = baseline(drop)
    monkeypatch.setenv(f"{DANFENG.env_prefix}SECRET", "not-the-password")
    seen = len(drop.server.requests)
    with timed(5), pytest.raises(SourceError) as err:
        run_sync(DANFENG, "incremental")
    assert str(err.value).startswith(PREFIX) and "index.json: HTTP 401" in str(err.value)
    assert "not-the-password" not in str(err.value)
    assert len(drop.server.requests) == seen + 1  # not retried
    assert warehouse_fingerprint(DANFENG) == before


@pytest.mark.parametrize("scenario", list(FAILURES))
def test_hostile_file_service_fails_the_sync_fast_and_cleanly(drop, monkeypatch, scenario) -> None:
    prepare, words, seconds, env = FAILURES[scenario]
    before = baseline(drop)
    marks = watermarks(DANFENG)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prepare(drop)
    seen = len(drop.server.requests)
    with peak_rss() as rss, timed(seconds), pytest.raises(SourceError) as err:
        run_sync(DANFENG, "incremental")
    message = str(err.value)
    assert message.startswith(PREFIX), message
    for word in words:
        assert word in message, message
    assert PASSWORD not in message
    assert warehouse_fingerprint(DANFENG) == before
    assert watermarks(DANFENG) == marks
    assert not last_landing(DANFENG).complete
    # nothing outside /exports/ was ever requested with the county's credentials
    for req in drop.server.requests[seen:]:
        path = unquote(req.path)
        assert path.startswith("/exports/") and "/etc" not in path and ".." not in path, path
    assert rss["growth_mb"] < 100, rss


def test_bad_values_in_a_register_are_rejected(drop) -> None:
    baseline(drop)
    rows = clean_rows()
    rows[1]["姓名"] = "名" * 100_000
    rows[3]["姓名"] = "王\u202e五"
    rows[5]["姓名"] = "赵\x00六"
    drop.upload(NEXT, register_csv(rows), "2016-07-02")
    with timed(10):
        run_sync(DANFENG, "incremental")
    found = query(
        "SELECT rule, source_key, column_name FROM ops.reject WHERE county_code = '611022' "
        "ORDER BY rule"
    )
    assert found == [
        ("text_control_character", rows[3]["人编号"], "name"),
        ("text_control_character", rows[5]["人编号"], "name"),
        ("text_too_long", rows[1]["人编号"], "name"),
    ]
    assert watermarks(DANFENG)["file"] == NEXT


@pytest.mark.parametrize("uploaded", ["9999-12-31T23:59:59-10:00", "9999-01-01T00:00:00+08:00"])
def test_an_upload_time_in_the_future_never_becomes_the_file_watermark(drop, uploaded) -> None:
    """A file stamped in the future would sort after every real upload and, once processed,
    hide them all; it is left out (and named in the index page's meta) until its time comes."""
    baseline(drop)
    first = watermarks(DANFENG)["file"]
    future = drop.upload("丹凤县贫困人口_99991231.csv", BODY, "2016-07-02")
    future["uploadedAt"] = uploaded
    with timed(10):
        run_sync(DANFENG, "incremental")
    assert watermarks(DANFENG)["file"] == first
    index_page = next(p for p in last_landing(DANFENG).pages if p.entity == "index")
    assert index_page.meta["skipped_future"] == ["丹凤县贫困人口_99991231.csv"]
    assert not [p for p in last_landing(DANFENG).pages if p.entity == "file"]
    rows = clean_rows()
    rows[0]["联系电话"] = "13911111111"
    drop.upload(NEXT, register_csv(rows), "2016-07-03")
    run_sync(DANFENG, "incremental")
    assert watermarks(DANFENG)["file"] == NEXT
