"""洛南 (bigdata) against a hostile platform: one scenario per row of issue 10's table, and more.

Every failing sync must end within seconds with a ``SourceError`` naming county, entity and URL
(no secret), leave the warehouse exactly as it was, and leave its landing incomplete (never
merged). Bad records are rejected with the right rule and never move a watermark.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import warehouse
from base.errors import RejectThresholdExceeded, SourceError
from pipelines import sync
from seeds.registry import county
from tests.hostile.bigdata import KEY, SECRET, VILLAGE, HostileBigdata, household, member
from tests.hostile.harness import (
    landings,
    last_landing,
    peak_rss,
    point_county_at,
    query,
    run_sync,
    timed,
    warehouse_fingerprint,
    watermarks,
)

LUONAN = county("luonan")
PREFIX = "洛南县 (611021, luonan): http://127.0.0.1:"


@pytest.fixture
def platform(monkeypatch):
    p = HostileBigdata()
    with p.server:
        point_county_at(monkeypatch, LUONAN, p.server.url, KEY, SECRET)
        yield p


def baseline(platform: HostileBigdata) -> dict[str, str]:
    """A clean full sync; the warehouse's fingerprint after it."""
    platform.set(None)
    merged = run_sync(LUONAN, "full")
    assert merged.counts["person"]["accepted"] == 6
    assert query("SELECT rule, count(*) FROM ops.reject GROUP BY rule") == []  # a clean county
    return warehouse_fingerprint(LUONAN)


def assert_failed_cleanly(err: SourceError, before: dict[str, str], *words: str) -> None:
    message = str(err)
    assert message.startswith(PREFIX), message
    for word in words:
        assert word in message, message
    for secret in (KEY, SECRET, "tok-"):
        assert secret not in message
    assert warehouse_fingerprint(LUONAN) == before
    manifest = last_landing(LUONAN)
    assert not manifest.complete
    landed = sync.Landed(
        county_code=LUONAN.code,
        sync_id=manifest.sync_id,
        mode="full",
        manifest_path=str(manifest.path),
        staged_path=str(Path(manifest.path).parent / "staged"),
        pages=len(manifest.pages),
        bytes=0,
        seconds=0.0,
        watermarks_before={},
    )
    with pytest.raises(SourceError, match="did not complete; it is never merged"):
        sync.merge(LUONAN, landed)
    assert warehouse_fingerprint(LUONAN) == before


# ---------------------------------------------------------------------------------------------
# Syncs that must fail: (scenario, words the error must contain, seconds allowed, extra env)
FAILURES = {
    "cursor_loop": (["/api/v2/members", "person: paging loops", "'c2'"], 5, {}),
    "empty_forever": (["/api/v2/members", "5 empty pages in a row"], 5, {}),
    "beyond_count": (["/api/v2/members", "platform counts 6"], 10, {}),
    "deep_nesting": (["/api/v2/members", "nested too deeply"], 5, {}),
    "nan": (["/api/v2/members", "NaN, which is not a JSON number"], 5, {}),
    "infinity": (["/api/v2/members", "Infinity, which is not a JSON number"], 5, {}),
    "not_json": (["/api/v2/members", "not JSON: Expecting value at line 1 column 1"], 5, {}),
    "not_envelope": (["/api/v2/members", "not an API envelope"], 5, {}),
    "deletion_slash": (["/api/v2/deletions?entity=households", "'../households'"], 5, {}),
    "login_refused": (["/api/v2/auth/token", "authentication refused", "40301"], 5, {}),
    "slow_pages": (
        ["/api/v2/members", "sync deadline of 1.5 s passed while fetching members (person)"],
        4,
        {"HUB_SYNC_DEADLINE_SECONDS": "1.5"},
    ),
    "drip": (
        ["/api/v2/members", "sync deadline of 1.5 s passed while fetching members"],
        4,
        {"HUB_SYNC_DEADLINE_SECONDS": "1.5"},
    ),
}


@pytest.mark.parametrize("scenario", list(FAILURES))
def test_hostile_answer_fails_the_sync_fast_and_cleanly(platform, monkeypatch, scenario) -> None:
    words, seconds, env = FAILURES[scenario]
    before = baseline(platform)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    platform.set(scenario)
    auth_before = platform.auth_calls
    with timed(seconds), pytest.raises(SourceError) as err:
        run_sync(LUONAN, "full")
    assert_failed_cleanly(err.value, before, *words)
    if scenario == "login_refused":  # refused at once: one login, no retry
        assert platform.auth_calls == auth_before + 1
    if scenario == "empty_forever":  # bounded landing: 3 real pages, 5 empty ones
        member_pages = [p for p in last_landing(LUONAN).pages if p.entity == "person"]
        assert len(member_pages) == 3 + 5


def test_an_answer_that_never_ends_is_refused_at_the_size_cap(platform, monkeypatch) -> None:
    before = baseline(platform)
    monkeypatch.setenv("HUB_HTTP_MAX_BODY_BYTES", str(4 * 2**20))
    platform.set("endless_body")
    with peak_rss() as rss, timed(10), pytest.raises(SourceError) as err:
        run_sync(LUONAN, "full")
    assert_failed_cleanly(err.value, before, "/api/v2/members", "answer refused at", "4,194,304")
    assert rss["growth_mb"] < 100, rss


def test_two_token_expiries_in_a_row_are_survived(platform) -> None:
    baseline(platform)
    platform.set("token_expires_twice")
    calls = platform.auth_calls
    with timed(10):  # backoff between the re-authentications is bounded too
        merged = run_sync(LUONAN, "full")
    assert merged.counts["person"]["accepted"] == 6
    assert platform.auth_calls == calls + 3  # the sync's login, then two re-authentications


# ---------------------------------------------------------------------------------------------
# Bad records: rejected with the right rule, nothing else disturbed


def rejects(rule: str) -> list[tuple]:
    return query(
        "SELECT entity, source_key, column_name, value FROM ops.reject "
        "WHERE county_code = '611021' AND rule = ? ORDER BY source_key",
        [rule],
    )


@pytest.mark.parametrize(
    "updated_at", ["9999-12-31T23:59:59.000+08:00", "9999-12-31T23:59:59-10:00"]
)
def test_a_future_timestamp_is_rejected_and_never_becomes_a_watermark(platform, updated_at) -> None:
    baseline(platform)
    marks = watermarks(LUONAN)
    spouse = platform.items["members"][1]["id"]
    platform.member_named(1, updatedAt=updated_at)
    with timed(15):
        run_sync(LUONAN, "full")
        run_sync(LUONAN, "incremental")
    assert [(e, k, c) for e, k, c, _ in rejects("source_time_in_future")] == [
        ("person", spouse, "source_updated_at")
    ] * 2
    assert watermarks(LUONAN) == marks  # the person watermark stayed at the real newest time
    assert not marks["person"].startswith("9999")


def test_a_poisoned_watermark_heals(platform) -> None:
    baseline(platform)
    good = watermarks(LUONAN)
    poisoned = {**good, "person": "9999-12-31T23:59:59.000+08:00"}
    # what the old code committed: a watermark in year 9999 (warehouse and state cache)
    with warehouse.connect() as con:
        con.execute(
            "UPDATE ops.watermark SET value = ? WHERE county_code = '611021' AND name = 'person'",
            [poisoned["person"]],
        )
    warehouse.write_state(LUONAN, poisoned)
    before = len(platform.server.requests)
    with timed(10):
        run_sync(LUONAN, "incremental")
    member_requests = [r for r in platform.server.requests[before:] if r.path.endswith("/members")]
    # the client does not ask for changes after year 9999: it lists members in full …
    assert member_requests and all("updatedAfter" not in r.query for r in member_requests)
    # … and that full listing sets the watermark from what it saw
    assert watermarks(LUONAN)["person"] == good["person"]
    # a full sync heals it too (never max(previous, new))
    with warehouse.connect() as con:
        con.execute(
            "UPDATE ops.watermark SET value = ? WHERE county_code = '611021' AND name = 'person'",
            [poisoned["person"]],
        )
    run_sync(LUONAN, "full")
    assert watermarks(LUONAN)["person"] == good["person"]


def test_a_name_of_millions_of_characters_is_rejected_not_stored(platform) -> None:
    baseline(platform)
    marks = watermarks(LUONAN)
    spouse = platform.items["members"][1]["id"]
    platform.member_named(1, name="名" * 3_500_000, updatedAt="2016-07-01T09:00:00.000+08:00")
    with peak_rss() as rss, timed(20):
        run_sync(LUONAN, "incremental")
    [(entity, key, column, value)] = rejects("text_too_long")
    assert (entity, key, column) == ("person", spouse, "name")
    assert len(value) <= 61 and value.endswith("…")
    longest = query("SELECT max(length(name)) FROM core.person_history")[0][0]
    assert longest < 50
    message = query("SELECT message FROM ops.reject WHERE rule = 'text_too_long'")[0][0]
    assert "3500000 characters" in message and len(message) < 200
    assert rss["growth_mb"] < 400, rss
    assert watermarks(LUONAN)["person"] >= marks["person"]


def test_control_and_bidi_characters_in_names_are_rejected(platform) -> None:
    baseline(platform)
    platform.member_named(1, name="李\x00四", updatedAt="2016-07-01T09:00:00.000+08:00")
    platform.member_named(3, name="王\u202e五", updatedAt="2016-07-01T09:00:01.000+08:00")
    with timed(10):
        run_sync(LUONAN, "incremental")
    found = rejects("text_control_character")
    assert [(k, c, v) for _, k, c, v in found] == [
        (platform.items["members"][1]["id"], "name", "李<U+0000>四"),
        (platform.items["members"][3]["id"], "name", "王<U+202E>五"),
    ]
    names = {n for (n,) in query("SELECT name FROM core.person_history")}
    assert not any("\x00" in n or "\u202e" in n for n in names)


# ---------------------------------------------------------------------------------------------
# One page of tens of thousands of children of rejected households


@pytest.mark.parametrize(
    "households",
    [600, pytest.param(2000, marks=pytest.mark.slow, id="200000-members")],
)
def test_a_page_of_children_of_rejected_households_is_refused_on_the_reject_rate(
    platform, households
) -> None:
    """Issue 10: one page of 200,000 members, children of rejected households, crashed
    validation (ShapeError from polars' literal filter predicate from 16,384 rows on)."""
    before = baseline(platform)
    per_household = 100
    platform.page_cap = 10**6  # the platform sends it all in one page
    platform.items["households"] = [
        household(n, 30, attribute="77")  # an unknown attribute code: every household rejected
        for n in range(1, households + 1)
    ]
    platform.items["members"] = [
        member(f"{VILLAGE}{n:04d}", seq, 31)
        for n in range(1, households + 1)
        for seq in range(1, per_household + 1)
    ]
    with peak_rss() as rss, timed(120), pytest.raises(RejectThresholdExceeded) as err:
        run_sync(LUONAN, "full")
    assert "611021" in str(err.value) and "parent_rejected" in str(err.value)
    children = query(
        "SELECT count(*) FROM ops.reject WHERE county_code = '611021' AND rule = 'parent_rejected'"
    )[0][0]
    assert children == households * per_household >= 50_000
    assert warehouse_fingerprint(LUONAN) == before
    assert rss["growth_mb"] < 1500, rss  # measured: 360 MB at 60,000, 830 MB at 200,000
    assert len(landings(LUONAN)) == 2
    print(json.dumps({"children_rejected": children, **rss}))


def test_a_landed_deletion_naming_no_entity_is_a_clear_error_in_staging(hub_home) -> None:
    """A landing from before the client checked deletion entities (a replay) must not crash
    staging with a file name built from ``../households``."""
    from pipelines.connectors.bigdata.normalise import normalise
    from pipelines.landing import LandingWriter, Page, read_manifest

    body = json.dumps(
        {
            "code": 0,
            "data": {
                "items": [
                    {"entity": "../households", "id": "x", "deletedAt": "2016-07-01T08:00:00+08:00"}
                ],
                "hasMore": False,
                "nextCursor": None,
            },
        }
    ).encode()
    url = "http://127.0.0.1:1/api/v2/deletions?entity=households"
    with LandingWriter(LUONAN) as writer:
        writer.write(Page("deletions:households", url, body, "application/json", {}))
    manifest = read_manifest(landings(LUONAN)[-1])
    with pytest.raises(SourceError, match=r"deletions\?entity=households: .*'\.\./households'"):
        normalise(LUONAN, manifest, {})


def test_the_warehouse_never_commits_a_future_watermark_even_from_an_old_staging(platform) -> None:
    """A landing staged before source_time_in_future existed carries max(previous, 9999) in its
    staged.json; merging (replaying) it must not commit that. And an entity listed in full that
    saw no time at all drops its old watermark instead of keeping a poisoned one."""
    baseline(platform)
    good = watermarks(LUONAN)
    with warehouse.connect() as con:  # an old poisoned watermark on an empty entity
        con.execute(
            "INSERT INTO ops.watermark (county_code, name, value, updated_at, sync_run_id) "
            "VALUES ('611021', 'measure', '9999-12-31T23:59:59.000+08:00', now(), 'old')"
        )
    landed = sync.land(LUONAN, "full")
    staged_json = Path(landed.staged_path) / "staged.json"
    header = json.loads(staged_json.read_text(encoding="utf-8"))
    header["watermarks"]["person"] = "9999-12-31T23:59:59-10:00"
    staged_json.write_text(json.dumps(header), encoding="utf-8")
    sync.merge(LUONAN, landed)
    after = watermarks(LUONAN)
    assert after["person"] == good["person"]
    assert "measure" not in after
