"""BigdataClient (洛南, API v2) against a loopback fake that speaks ``platforms/bigdata.md``."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest

from base.errors import SourceError
from pipelines.connectors.bigdata.client import ENTITIES, FIELDS, BigdataClient, shift_iso
from pipelines.http import source_settings
from pipelines.landing import read_manifest
from pipelines.sources import client_for
from tests.unit.test_clients_http import FAST, FakeServer, Req, Resp, fault_response, jresp

KEY, SECRET = "luonan-app-key-7781", "luonan-app-secret-XYZ-9912"
SETTINGS = {"HUB_LUONAN_KEY": KEY, "HUB_LUONAN_SECRET": SECRET}
T0 = datetime.fromisoformat("2016-07-01T08:00:00.000+08:00")


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


class FakeBigdata:
    """Token auth, envelopes, keyset cursors, deletions, stats, and armed faults."""

    def __init__(self, n: int = 7, page_cap: int = 4) -> None:
        self.page_cap = page_cap  # the platform caps pages below the client's limit
        self.tokens: set[str] = set()
        self.auth_calls = 0
        self.faults: list[list] = []  # [kind, remaining, api_entity or None]
        self.items: dict[str, list[dict]] = {}
        for k, api in enumerate(ENTITIES):
            rows = []
            for i in range(n):
                row = {f: None for f in FIELDS[api]}
                row["id"] = f"{api}-{i:03d}"
                # pairs of records share an updatedAt, as the doc warns
                row["updatedAt"] = iso(T0 + timedelta(minutes=10 * (i // 2) + k))
                rows.append(row)
            self.items[api] = rows
        self.deletions = [
            {"entity": "households", "id": "households-900", "deletedAt": iso(T0 + timedelta(hours=1))},
            {"entity": "members", "id": "members-900", "deletedAt": iso(T0 + timedelta(hours=2))},
        ]  # fmt: skip

    def arm(self, kind: str, count: int = 1, entity: str | None = None) -> None:
        self.faults.append([kind, count, entity])

    def _fault(self, api: str | None) -> str | None:
        for f in self.faults:
            if f[1] > 0 and f[2] in (None, api):
                f[1] -= 1
                return f[0]
        return None

    def __call__(self, req: Req) -> Resp:
        path = req.path.removeprefix("/api/v2")
        if path == "/auth/token":
            self.auth_calls += 1
            body = req.json()
            if (body.get("appKey"), body.get("appSecret")) != (KEY, SECRET):
                return jresp({"code": 40301, "message": "invalid app credentials"}, 200)
            token = f"tok-{self.auth_calls}-abcdefgh"
            self.tokens.add(token)
            return jresp({"code": 0, "data": {"accessToken": token, "expiresIn": 1800}})
        api = req.query.get("entity") if path == "/deletions" else path.strip("/")
        kind = self._fault(api)
        if kind == "expire_token":
            self.tokens.clear()
        if req.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return jresp({"code": 40101, "message": "token expired"}, 401)
        real = self._answer(path, req)
        if kind == "busy":
            return jresp({"code": 50001, "message": "数据库繁忙"})
        if kind == "maintenance":
            return jresp(
                {"code": 50301, "message": "系统维护中"}, 503, headers={"Retry-After": "0"}
            )
        if kind == "bad_parameter":
            return jresp({"code": 40001, "message": "limit out of range"}, 400)
        if kind == "forbidden":
            return jresp({"code": 40301, "message": "not allowed"}, 403)
        if kind == "rename_field":
            env = json.loads(real.body)
            for item in env["data"].get("items", []):
                item["householdNumber"] = item.pop("householdNo", None)
            return jresp(env)
        if kind and kind != "expire_token":
            return fault_response(kind, real)
        return real

    def _answer(self, path: str, req: Req) -> Resp:
        if path == "/stats":
            counts = {api: len(rows) for api, rows in self.items.items()}
            return jresp(
                {"code": 0, "data": {"asOf": iso(T0), "counts": counts, "byAttribute": {}}}
            )
        if path == "/deletions":
            rows = [d for d in self.deletions if d["entity"] == req.query["entity"]]
            after, stamp = req.query.get("deletedAfter"), "deletedAt"
        elif path.strip("/") in self.items:
            rows = self.items[path.strip("/")]
            after, stamp = req.query.get("updatedAfter"), "updatedAt"
        else:
            return jresp({"code": 40001, "message": "unknown path"}, 404)
        rows = sorted(rows, key=lambda r: (datetime.fromisoformat(r[stamp]), r["id"]))
        if after:
            rows = [
                r for r in rows if datetime.fromisoformat(r[stamp]) > datetime.fromisoformat(after)
            ]
        if req.query.get("cursor"):
            last = json.loads(base64.b64decode(req.query["cursor"]))
            last_key = (datetime.fromisoformat(last[0]), last[1])
            rows = [r for r in rows if (datetime.fromisoformat(r[stamp]), r["id"]) > last_key]
        limit = min(int(req.query.get("limit", 100)), self.page_cap)
        page, more = rows[:limit], len(rows) > limit
        cursor = (
            base64.b64encode(json.dumps([page[-1][stamp], page[-1]["id"]]).encode()).decode()
            if more
            else None
        )
        return jresp({"code": 0, "message": "ok", "requestId": "r", "data": {"items": page, "nextCursor": cursor, "hasMore": more}})  # fmt: skip


@pytest.fixture
def platform():
    fake = FakeBigdata()
    with FakeServer(fake) as server:
        fake.server = server
        yield fake


def client(fake: FakeBigdata, limit: int = 5000) -> BigdataClient:
    from seeds.registry import county

    luonan = county("luonan")
    settings = source_settings(luonan, {**SETTINGS, "HUB_LUONAN_URL": fake.server.url})
    return BigdataClient(luonan, settings, FAST, limit=limit)


def items_by_entity(pages) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in pages:
        if p.entity == "stats":
            continue
        for item in json.loads(p.body)["data"]["items"]:
            out.setdefault(p.entity, []).append(item["id"])
    return out


def test_full_sync_lists_every_entity_deletions_and_stats(platform: FakeBigdata) -> None:
    pages = list(client(platform).fetch("full", {}))
    got = items_by_entity(pages)
    for api, entity in ENTITIES.items():
        # every record exactly once, across pages capped below the limit (7 items, cap 4)
        assert got[entity] == [r["id"] for r in platform.items[api]]
        assert [p.meta["pageNo"] for p in pages if p.entity == entity] == [1, 2]
    assert got["deletions:household"] == ["households-900"]
    assert got["deletions:person"] == ["members-900"]
    assert pages[-1].entity == "stats"
    assert json.loads(pages[-1].body)["data"]["counts"]["households"] == 7
    first = next(p for p in pages if p.entity == "household")
    assert first.meta["hasMore"] and first.meta["cursor"] is None and first.meta["nextCursor"]
    assert all(p.url.startswith(platform.server.url + "/api/v2/") for p in pages)
    assert platform.auth_calls == 1
    data_requests = [r for r in platform.server.requests if r.path != "/api/v2/auth/token"]
    assert all(r.query.get("limit") in ("5000", None) for r in data_requests)
    assert not any("updatedAfter" in r.query for r in data_requests)


def test_incremental_rereads_the_visibility_window(platform: FakeBigdata) -> None:
    mark = iso(T0 + timedelta(minutes=30))
    list(client(platform).fetch("incremental", {"household": mark, "deletions:person": mark}))
    sent = {
        (r.path, r.query.get("entity")): r.query
        for r in platform.server.requests
        if "cursor" not in r.query
    }
    assert sent[("/api/v2/households", None)]["updatedAfter"] == "2016-07-01T08:25:00.000+08:00"
    assert "updatedAfter" not in sent[("/api/v2/members", None)]  # no watermark: full listing
    assert sent[("/api/v2/deletions", "members")]["deletedAfter"] == "2016-07-01T08:25:00.000+08:00"
    assert "deletedAfter" not in sent[("/api/v2/deletions", "households")]
    # a record stamped 2 minutes before the watermark but committed later is not missed
    late = {f: None for f in FIELDS["households"]} | {
        "id": "households-late",
        "updatedAt": iso(T0 + timedelta(minutes=28)),
    }
    platform.items["households"].append(late)
    pages = list(client(platform).fetch("incremental", {"household": mark}))
    assert "households-late" in items_by_entity(pages)["household"]


def test_shift_iso() -> None:
    assert shift_iso("2016-07-14T09:30:00.123+08:00", -timedelta(minutes=5)) == (
        "2016-07-14T09:25:00.123+08:00"
    )
    assert shift_iso("2016-07-14T01:30:00Z", timedelta(0)) == "2016-07-14T01:30:00.000+00:00"


def test_expired_token_reauthenticates_once_and_repeats(platform: FakeBigdata) -> None:
    platform.arm("expire_token", 1, "members")
    pages = list(client(platform).fetch("full", {}))
    assert platform.auth_calls == 2
    assert items_by_entity(pages)["person"] == [r["id"] for r in platform.items["members"]]


def test_token_refused_after_reauthentication_is_a_source_error(platform: FakeBigdata) -> None:
    platform.arm("expire_token", 10, "households")
    with pytest.raises(SourceError, match=r"/api/v2/households.*token refused .* in a row") as err:
        list(client(platform).fetch("full", {}))
    assert "tok-" not in str(err.value)
    # the first refusal is an ordinary expiry; then HUB_HTTP_REAUTH_ATTEMPTS (3) more logins
    assert platform.auth_calls == 1 + 3


def test_a_token_that_expires_twice_in_a_row_is_survived(platform: FakeBigdata) -> None:
    platform.arm("expire_token", 2, "households")
    pages = list(client(platform).fetch("full", {}))
    assert platform.auth_calls == 3
    assert items_by_entity(pages)["household"] == [r["id"] for r in platform.items["households"]]


@pytest.mark.parametrize(
    "kind",
    ["busy", "maintenance", "rate_limit", "http500", "html502", "html200", "truncate",
     "drop_connection"],
)  # fmt: skip
def test_transient_faults_in_the_middle_of_paging_are_survived(
    platform: FakeBigdata, kind: str
) -> None:
    clean = items_by_entity(list(client(platform).fetch("full", {})))
    platform.arm(kind, 2, "members")
    assert items_by_entity(list(client(platform).fetch("full", {}))) == clean


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("busy", "code 50001 (database busy"),
        ("maintenance", "HTTP 503"),
        ("html200", "HTML page instead of JSON"),
        ("truncate", "truncated JSON"),
        ("bad_parameter", "bad parameter (HTTP 400, code 40001"),
        ("forbidden", "not allowed (HTTP 403, code 40301"),
    ],
)
def test_persistent_faults_end_in_source_error(
    platform: FakeBigdata, kind: str, words: str
) -> None:
    platform.arm(kind, 100, "loans")
    with pytest.raises(SourceError) as err:
        list(client(platform).fetch("full", {}))
    message = str(err.value)
    assert message.startswith("洛南县 (611021, luonan): http://127.0.0.1:")
    assert "/api/v2/loans?limit=5000" in message and words in message
    for secret in (KEY, SECRET, "tok-"):
        assert secret not in message


def test_renamed_field_is_named_after_the_page_is_landed(platform: FakeBigdata, tmp_path) -> None:
    from pipelines.landing import land
    from seeds.registry import county

    platform.arm("rename_field", 1, "households")
    with pytest.raises(SourceError, match=r"householdNo missing \(undocumented fields present: householdNumber\)"):  # fmt: skip
        land(county("luonan"), client(platform), "full", {}, sync_id="S", root=tmp_path)
    manifest = read_manifest(tmp_path / "luonan" / "S")
    assert not manifest.complete
    assert manifest.pages[-1].entity == "household"  # the offending page is kept
    assert b"householdNumber" in manifest.pages[-1].body()


def test_bad_credentials_never_leak(platform: FakeBigdata) -> None:
    c = client(platform)
    c.settings = type(c.settings)(c.settings.url, KEY, "wrong-secret-1234")
    with pytest.raises(SourceError, match="authentication refused") as err:
        list(c.fetch("full", {}))
    assert "wrong-secret-1234" not in str(err.value) and KEY not in str(err.value)
    assert "wrong-secret" not in repr(c) and "wrong-secret" not in repr(c.settings)


def test_client_for_reads_settings(platform: FakeBigdata, monkeypatch) -> None:
    from seeds.registry import county

    monkeypatch.setenv("HUB_LUONAN_URL", platform.server.url)
    monkeypatch.setenv("HUB_LUONAN_KEY", KEY)
    monkeypatch.setenv("HUB_LUONAN_SECRET", SECRET)
    c = client_for(county("luonan"))
    assert isinstance(c, BigdataClient)
    assert next(p for p in c.fetch("full", {}) if p.entity != "stats").entity == "region"
    with pytest.raises(ValueError):
        next(iter(c.fetch("delta", {})))


# ---------------------------------------------------------------------------------------------
# Against the real simulator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    from seeds.registry import county

    embedded = pytest.importorskip("simulator.embedded")
    handle = embedded.start_in_thread(seed=5, scale=0.004, counties=[county("luonan")])
    yield handle
    handle.stop()


def sim_client(sim, **extra) -> BigdataClient:
    from seeds.registry import county

    env = {**sim.env(), "HUB_HTTP_BACKOFF": "0.01", "HUB_HTTP_READ_TIMEOUT": "1", **extra}
    return client_for(county("luonan"), env)


def arm(sim, kind: str, count: int = 1, entity: str | None = None, **more) -> None:
    import requests

    spec = {"county": "611021", "kind": kind, "count": count, "entity": entity, **more}
    requests.post(f"{sim.url}/_sim/faults", json=spec, timeout=5).raise_for_status()


def test_simulator_full_sync_matches_its_stats(sim) -> None:
    pages = list(sim_client(sim).fetch("full", {}))
    counts = json.loads(pages[-1].body)["data"]["counts"]
    got = items_by_entity(pages)
    for api, entity in ENTITIES.items():
        assert len(got.get(entity, [])) == counts[api] == len(set(got.get(entity, []))), api


@pytest.mark.parametrize(
    "kind",
    ["http500", "html502", "html200", "rate_limit", "busy", "maintenance", "expire_token",
     "drop_connection", "truncate", "slow"],
)  # fmt: skip
def test_simulator_transient_faults_are_survived(sim, kind: str) -> None:
    clean = items_by_entity(list(sim_client(sim).fetch("full", {})))
    arm(sim, kind, 1, "members", **({"seconds": 1.5} if kind == "slow" else {}))
    arm(
        sim, kind, 1, "deletions:households", **({"variant": "abort"} if kind == "truncate" else {})
    )
    assert items_by_entity(list(sim_client(sim).fetch("full", {}))) == clean


def test_simulator_persistent_faults_and_renames_are_source_errors(sim) -> None:
    arm(sim, "busy", 50, "loans")
    with pytest.raises(SourceError, match=r"luonan\): http://127.*/luonan/api/v2/loans\?limit=5000.*50001"):  # fmt: skip
        list(sim_client(sim).fetch("full", {}))
    import requests

    requests.delete(f"{sim.url}/_sim/faults", params={"county": "611021"}, timeout=5)
    arm(sim, "rename_field", 1, "households")
    with pytest.raises(SourceError, match="layout changed: documented field") as err:
        list(sim_client(sim).fetch("full", {}))
    assert "sim-luonan-secret" not in str(err.value)


def test_simulator_incremental_after_a_week(sim) -> None:
    import requests

    full = list(sim_client(sim).fetch("full", {}))
    marks: dict[str, str] = {}
    for p in full:
        if p.entity == "stats":
            continue
        for item in json.loads(p.body)["data"]["items"]:
            stamp = item.get("deletedAt") or item["updatedAt"]
            if p.entity not in marks or stamp > marks[p.entity]:
                marks[p.entity] = stamp
    advanced = requests.post(f"{sim.url}/_sim/clock/advance", params={"days": 7}, timeout=60)
    assert sum(advanced.json()["changes"].values()) > 0
    after = list(sim_client(sim).fetch("full", {}))
    inc = list(sim_client(sim).fetch("incremental", marks))
    got = items_by_entity(inc)
    changed = 0
    for p in after:
        if p.entity == "stats" or p.entity.startswith("deletions:"):
            continue
        for item in json.loads(p.body)["data"]["items"]:
            if item["updatedAt"] > marks.get(p.entity, ""):
                changed += 1
                assert item["id"] in got[p.entity]
    assert changed > 0
    deleted = [
        i
        for p in inc
        if p.entity.startswith("deletions:")
        for i in json.loads(p.body)["data"]["items"]
    ]
    assert deleted and all(
        d["deletedAt"] > marks.get(f"deletions:{ENTITIES[d['entity']]}", "") for d in deleted
    )
    # the incremental sync read much less than the full one
    assert sum(len(v) for v in got.values()) < sum(len(v) for v in items_by_entity(after).values())
