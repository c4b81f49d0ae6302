"""商南 (battle platform v3, offset paging) against a hostile platform: the classes of issue 10's
table as this platform shows them, plus its own ways to go wrong (a ``pageNum`` it ignores, a
``total`` that keeps growing or lies, empty pages under a positive total)."""

from __future__ import annotations

import pytest

from base.errors import SourceError
from seeds.registry import county
from tests.hostile.battle import PASSWORD, USERNAME, HostileBattle
from tests.hostile.harness import (
    last_landing,
    point_county_at,
    query,
    run_sync,
    timed,
    warehouse_fingerprint,
    watermarks,
)

SHANGNAN = county("shangnan")
PREFIX = "商南县 (611023, shangnan): http://127.0.0.1:"


@pytest.fixture
def platform(monkeypatch):
    p = HostileBattle()
    with p.server:
        point_county_at(monkeypatch, SHANGNAN, p.server.url, USERNAME, PASSWORD)
        yield p


def baseline(platform: HostileBattle) -> dict[str, str]:
    platform.set(None)
    merged = run_sync(SHANGNAN, "full")
    assert merged.counts["person"]["accepted"] == 6
    assert query("SELECT rule, count(*) FROM ops.reject GROUP BY rule") == []  # a clean county
    return warehouse_fingerprint(SHANGNAN)


FAILURES = {
    "page_ignored": (["/fpzz/pkry/list", "person: page 2 repeats page 1 row for row"], 5, {}),
    "total_inflating": (
        ["/fpzz/pkry/list", "person: 4000 records over 4 pages", "counts 2001"],
        10,
        {},
    ),
    "empty_pages": (["/fpzz/pkry/list", "listing incomplete: 0 distinct", "total 10"], 5, {}),
    "negative_total": (["/fpzz/pkry/list", "lacks rows or a total ≥ 0"], 5, {}),
    "deep_nesting": (["/fpzz/pkry/list", "nested too deeply"], 5, {}),
    "nan": (["/fpzz/pkry/list", "NaN, which is not a JSON number"], 5, {}),
    "not_json": (["/fpzz/pkry/list", "not JSON: Expecting value at line 1 column 1"], 5, {}),
    "not_envelope": (["/fpzz/pkry/list", "no code/msg envelope"], 5, {}),
    "login_refused": (["/login", "login refused", "用户不存在/密码错误"], 5, {}),
    "slow_pages": (
        ["/fpzz/pkry/list", "sync deadline of 1.2 s passed while fetching /fpzz/pkry/list (person"],
        4,
        {"HUB_SYNC_DEADLINE_SECONDS": "1.2"},
    ),
}


@pytest.mark.parametrize("scenario", list(FAILURES))
def test_hostile_answer_fails_the_sync_fast_and_cleanly(platform, monkeypatch, scenario) -> None:
    words, seconds, env = FAILURES[scenario]
    before = baseline(platform)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    platform.set(scenario)
    logins = platform.logins
    with timed(seconds), pytest.raises(SourceError) as err:
        run_sync(SHANGNAN, "full")
    message = str(err.value)
    assert message.startswith(PREFIX), message
    for word in words:
        assert word in message, message
    assert PASSWORD not in message and "tok-" not in message
    assert warehouse_fingerprint(SHANGNAN) == before
    assert not last_landing(SHANGNAN).complete
    # staged while landing (pipelines/staging_alongside.py): a failed landing leaves none
    assert not (last_landing(SHANGNAN).path.parent / "staged").exists()
    if scenario == "login_refused":  # a wrong password is not repeated (it locks accounts)
        assert platform.logins == logins + 1


def test_a_session_that_expires_twice_in_a_row_is_survived(platform) -> None:
    baseline(platform)
    platform.set("session_expires_twice")
    logins = platform.logins
    with timed(10):
        merged = run_sync(SHANGNAN, "full")
    assert merged.counts["person"]["accepted"] == 6
    assert platform.logins == logins + 3


def rejects(rule: str) -> list[tuple]:
    return query(
        "SELECT source_key, column_name, value FROM ops.reject "
        "WHERE county_code = '611023' AND rule = ? ORDER BY source_key",
        [rule],
    )


def test_bad_records_are_rejected_and_never_move_a_watermark(platform) -> None:
    baseline(platform)
    marks = watermarks(SHANGNAN)
    people = platform.rows["person"]
    people[1].update(updateTime="9999-12-31 23:59:59")
    people[3].update(xm="名" * 200_000, updateTime="2016-07-01 09:00:00")
    people[5].update(xm="赵\u202e六", updateTime="2016-07-01 09:00:01")
    people[4].update(xm="钱\x00七", updateTime="2016-07-01 08:59:00")
    with timed(10):
        run_sync(SHANGNAN, "incremental")
    assert rejects("source_time_in_future") == [
        (people[1]["rybh"], "source_updated_at", "9999-12-31 23:59:59")  # as sent
    ]
    assert [(k, c) for k, c, _ in rejects("text_too_long")] == [(people[3]["rybh"], "name")]
    assert rejects("text_control_character") == [
        (people[4]["rybh"], "name", "钱<U+0000>七"),
        (people[5]["rybh"], "name", "赵<U+202E>六"),
    ]
    # the newest *believable* time seen (a rejected record comes back with a newer time once
    # it is fixed at the source); never the one in year 9999
    assert marks["person"] < watermarks(SHANGNAN)["person"] == "2016-07-01 09:00:01"


def test_a_poisoned_watermark_heals(platform) -> None:
    import warehouse

    baseline(platform)
    good = watermarks(SHANGNAN)
    with warehouse.connect() as con:
        con.execute(
            "UPDATE ops.watermark SET value = '9999-12-31 23:59:59' "
            "WHERE county_code = '611023' AND name = 'person'"
        )
    warehouse.write_state(SHANGNAN, {**good, "person": "9999-12-31 23:59:59"})
    before = len(platform.server.requests)
    with timed(10):
        run_sync(SHANGNAN, "incremental")
    person_requests = [r for r in platform.server.requests[before:] if r.path == "/fpzz/pkry/list"]
    assert person_requests and all(
        "params[beginUpdateTime]" not in r.query for r in person_requests
    )
    assert watermarks(SHANGNAN)["person"] == good["person"]
