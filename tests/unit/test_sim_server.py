"""The simulator's HTTP server: the three platform kinds, faults and the control API, over real
HTTP on loopback (tiny fake world: every value is known)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import requests

from schemas.columns import ENTITIES
from seeds import codes, registry
from simulator.embedded import SimulatorHandle, start_in_thread
from simulator.platforms.workbook import COLUMNS
from simulator.server import SimConfig

# -- a tiny deterministic stand-in for simulator.world.World (same interface) --------------------
START = datetime(2016, 7, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TS = pl.Datetime("ms", "UTC")
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(body17: str) -> str:
    total = sum(int(c) * w for c, w in zip(body17, WEIGHTS, strict=True))
    return body17 + "10X98765432"[total % 11]


class FakeWorld:
    """Every county: 4 villages, ``households`` households of 1-4 members, one of each other
    record per household; known defects; ``advance`` corrects, deletes and registers one
    household per call (the new one committed 2 minutes after the clock)."""

    def __init__(self, households: int = 30, start: datetime = START) -> None:
        self.now = start
        self.lock = threading.RLock()
        self._frames: dict[tuple[str, str], pl.DataFrame] = {}
        self._n = households
        for c in registry.counties():
            self._build(c.code)

    # -- generation ---------------------------------------------------------------------------
    def _build(self, county: str) -> None:
        t0 = self.now.astimezone(UTC) - timedelta(days=30)
        towns = [f"{county}100", f"{county}101"]
        villages = [f"{t}{v:03d}" for t in towns for v in (200, 201)]
        regions = [dict(code=county, level="county", name=f"县{county}", parent_code="611000",
                        is_poor_village=None, poor_village_exit_year=None)]  # fmt: skip
        regions += [dict(code=t, level="town", name=f"镇{t[-3:]}", parent_code=county,
                         is_poor_village=None, poor_village_exit_year=None) for t in towns]  # fmt: skip
        regions += [dict(code=v, level="village", name=f"村{v[-4:]}", parent_code=v[:9],
                         is_poor_village=i % 2 == 0, poor_village_exit_year=2019 if i == 1 else None)
                    for i, v in enumerate(villages)]  # fmt: skip
        for r in regions:
            r["is_statistical_unit"] = False
        hh, people, measures, loans, pairs = [], [], [], [], []
        for i in range(self._n):
            village = villages[i % len(villages)]
            hno = f"{village}{i:04d}"
            size = 1 + i % 4
            attr = ("general", "dibao", "tekun")[i % 3]
            hh.append(dict(
                household_no=hno, town_code=village[:9], village_code=village, head_person_no=hno + "01",
                poverty_attribute="!一般户X" if i == 7 else attr,
                poverty_status="exited" if i % 5 == 0 else "not_exited",
                main_cause="other" if i == 3 else "illness", main_cause_label="因婚" if i == 3 else None,
                other_causes=["lack_skills", "lack_capital"] if i % 2 else [],
                identified_year=2014, exit_year=2016 if i % 5 == 0 else None, relapse_year=None,
                income_per_capita=1234567.5 if i == 2 else 3520.5 + i, member_count=size,
                housing_safe=i % 6 != 0, water_safe=True, phone=f"1390000{i:04d}",
            ))  # fmt: skip
            for m in range(size):
                year = 1950 + (i * 7 + m * 13) % 60
                birth = date(year, 1 + m, 1 + i % 28)
                sex = "male" if m % 2 == 0 else "female"
                seq = f"{(i * 4 + m) % 100:02d}{1 if sex == 'male' else 2}"
                idn = id_number(f"612527{birth:%Y%m%d}{seq}")
                if i == 4 and m == 0:
                    idn = idn[:17] + ("0" if idn[17] != "0" else "1")  # checksum defect
                people.append(dict(
                    person_no=f"{hno}{m + 1:02d}", household_no=hno, name=f"人{i}-{m}", id_number=idn,
                    id_upgraded=False, sex=sex, birth_date=birth,
                    relation_to_head=("head", "spouse", "son", "daughter")[m],
                    ethnicity="01", education="primary", school_status="not_in_school",
                    health=["chronic", "disabled"] if m == 1 else ["healthy"], labor_skill="ordinary",
                    work_status="in_town", work_months=6, serious_illness_insured=True,
                    render_hint="id_as_number" if i == 5 and m == 0 else None,
                ))  # fmt: skip
            measures.append(dict(measure_id=f"M{hno}", household_no=hno, category="industry",
                                 year=2016, amount=1500.0 if i % 2 else None, description="养殖"))  # fmt: skip
            loans.append(dict(loan_id=f"L{hno}", household_no=hno, lender="信用社", principal=50000.0,
                              issued_on=date(2016, 3, 1), term_months=36, annual_rate=0.0435,
                              interest_subsidy=2175.0, status="active"))  # fmt: skip
            pairs.append(
                dict(household_no=hno, cadre_id=f"C{county}{i % 3}", since=date(2016, 1, 1))
            )
        projects = [dict(project_id=f"P{county}{k}", village_code=villages[k] if k else None,
                         category="road", name=f"道路{k}", budget=100000.0, disbursed=5e4, status="in_progress",
                         start_on=date(2016, 4, 1), end_on=None, households_benefited=10) for k in range(3)]  # fmt: skip
        cadres = [dict(cadre_id=f"C{county}{k}", name=f"干部{k}", id_number=id_number(f"61102119800101{900 + k}"),
                       sex="male", phone="13800000000", unit_name="县扶贫局", unit_type="gov_agency",
                       is_first_secretary=k == 0, is_resident_team=True) for k in range(3)]  # fmt: skip
        rows = dict(region=regions, household=hh, person=people, measure=measures, loan=loans,
                    project=projects, cadre=cadres, household_cadre=pairs)  # fmt: skip
        for entity, data in rows.items():
            schema = dict(ENTITIES[entity])
            if entity == "person":
                schema["render_hint"] = pl.String()
            df = pl.DataFrame(data, schema=schema)
            key = {"household_cadre": pl.concat_str("household_no", pl.lit(":"), "cadre_id")}.get(
                entity, pl.col(next(iter(ENTITIES[entity])))
            )
            n = df.height
            # many records share one updated_at (pairs of rows), spread over 30 days
            stamps = [t0 + timedelta(hours=(k // 2) * 3, milliseconds=123) for k in range(n)]
            df = df.with_columns(
                key.alias("source_key"),
                pl.Series("updated_at", stamps, dtype=TS),
                pl.Series("visible_at", stamps, dtype=TS),
                pl.lit(None, TS).alias("deleted_at"),
            )
            self._frames[(county, entity)] = df

    # -- the World interface -------------------------------------------------------------------
    def records(self, county_code: str, entity: str, include_deleted: bool = False) -> pl.DataFrame:
        with self.lock:
            df = self._frames[(county_code, entity)]
        return df if include_deleted else df.filter(pl.col("deleted_at").is_null())

    def truth(self, county_code: str) -> pl.DataFrame:
        hh = self._frames[(county_code, "household")]["household_no"]
        return pl.DataFrame(
            {
                "county_code": [county_code, county_code],
                "entity": ["household", "person"],
                "source_key": [hh[7], hh[4] + "01"],
                "rule": ["unknown_code", "id_number_checksum"],
                "level": ["reject", "reject"],
            }
        )

    def advance(self, days: float = 0, minutes: float = 0) -> dict[str, int]:
        """Each call: one household corrected, the last household deleted (with its members),
        one new household registered but committed 3 minutes after its updated_at."""
        with self.lock:
            self.now = self.now + timedelta(days=days, minutes=minutes)
            now = self.now.astimezone(UTC)
            changes = {}
            for county in {c for c, _ in self._frames}:
                hh = self._frames[(county, "household")]
                live = hh.filter(pl.col("deleted_at").is_null())
                original = live.filter(pl.col("household_no").str.slice(12, 1) != "9")
                first, last = original["household_no"][0], original["household_no"][-1]
                new = (
                    live.head(1)
                    .with_columns(
                        (
                            pl.col("household_no").str.slice(0, 12) + "9" + pl.lit(f"{len(hh):03d}")
                        ).alias("household_no"),
                        pl.lit(now - timedelta(minutes=3)).cast(TS).alias("updated_at"),
                        pl.lit(now + timedelta(minutes=2)).cast(TS).alias("visible_at"),
                    )
                    .with_columns(pl.col("household_no").alias("source_key"))
                )
                hh = pl.concat([
                    hh.with_columns(
                        pl.when(pl.col("household_no") == first).then(pl.lit(now).cast(TS))
                        .otherwise(pl.col("updated_at")).alias("updated_at"),
                        pl.when(pl.col("household_no") == first).then(pl.col("income_per_capita") + 100)
                        .otherwise(pl.col("income_per_capita")).alias("income_per_capita"),
                        pl.when(pl.col("household_no") == last).then(pl.lit(now).cast(TS))
                        .otherwise(pl.col("deleted_at")).alias("deleted_at"),
                    ),
                    new,
                ])  # fmt: skip
                self._frames[(county, "household")] = hh
                per = self._frames[(county, "person")]
                self._frames[(county, "person")] = per.with_columns(
                    pl.when(pl.col("household_no") == last)
                    .then(pl.lit(now).cast(TS))
                    .otherwise(pl.col("deleted_at"))
                    .alias("deleted_at")
                )
                changes[county] = 3
        return {"corrected": 1, "deleted": 1, "registered": 1}

    def stats(self, county_code: str) -> dict:
        return {e: self.records(county_code, e).height for e in ENTITIES}


LUONAN, SHANGNAN, SHANGZHOU, ZHASHUI, DANFENG = "611021", "611023", "611002", "611026", "611022"


def _start(households: int = 30, **config) -> SimulatorHandle:
    return start_in_thread(
        world=FakeWorld(households=households), config=SimConfig(**config), seed=1, scale=0.0
    )


@pytest.fixture
def sim():
    handle = _start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def big():
    """A read-only simulator with enough rows to page (no clock moves, no faults)."""
    handle = _start(households=120)
    yield handle
    handle.stop()


# -- clients --------------------------------------------------------------------------------------
def bigdata(sim: SimulatorHandle) -> requests.Session:
    s = requests.Session()
    c = sim.credentials("luonan")
    r = s.post(
        f"{sim.base_url('luonan')}/api/v2/auth/token",
        json={"appKey": c["key"], "appSecret": c["secret"]},
    )
    s.headers["Authorization"] = "Bearer " + r.json()["data"]["accessToken"]
    return s


def bd_all(sim, s, entity, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        p = {**params, **({"cursor": cursor} if cursor else {})}
        data = s.get(f"{sim.base_url('luonan')}/api/v2/{entity}", params=p).json()["data"]
        items += data["items"]
        if not data["hasMore"]:
            return items
        cursor = data["nextCursor"]


def battle(sim: SimulatorHandle, slug: str = "shangnan") -> requests.Session:
    s = requests.Session()
    c = sim.credentials(slug)
    creds = {"username": c["key"], "password": c["secret"]}
    url = f"{sim.base_url(slug)}/login"
    r = s.post(url, data=creds) if slug == "shangzhou" else s.post(url, json=creds)
    s.headers["Authorization"] = "Bearer " + r.json()["token"]
    return s


def bt_all(sim, s, path, slug="shangnan", size=7, **params) -> list[dict]:
    rows, page = [], 1
    while True:
        body = s.get(
            f"{sim.base_url(slug)}{path}", params={"pageNum": page, "pageSize": size, **params}
        ).json()
        rows += body["rows"]
        if page * size >= body["total"]:
            return rows
        page += 1


def live(sim, county, entity) -> pl.DataFrame:
    now = sim.world.now.astimezone(UTC)
    df = sim.world.records(county, entity)
    return df.filter(pl.col("visible_at") <= now)


def arm(sim, **spec):
    r = requests.post(f"{sim.url}/_sim/faults", json=spec)
    assert r.status_code == 200, r.text


# -- bigdata ---------------------------------------------------------------------------------------
def test_bigdata_auth_and_expiry(sim):
    url = f"{sim.base_url('luonan')}/api/v2/households"
    r = requests.get(url)
    assert r.status_code == 401 and r.json()["code"] == 40101
    bad = requests.post(
        f"{sim.base_url('luonan')}/api/v2/auth/token", json={"appKey": "x", "appSecret": "y"}
    )
    assert bad.json()["code"] == 40301
    s = bigdata(sim)
    assert s.get(url).json()["code"] == 0
    requests.post(f"{sim.url}/_sim/config", json={"token_ttl": 0})
    s = bigdata(sim)
    r = s.get(url)
    assert r.status_code == 401 and r.json()["code"] == 40101


def test_bigdata_keyset_paging_is_complete_and_ordered(big):
    s = bigdata(big)
    items = bd_all(big, s, "members", limit=7)
    expected = live(big, LUONAN, "person")
    assert sorted(i["id"] for i in items) == sorted(expected["source_key"].to_list())
    keys = [(i["updatedAt"], i["id"]) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    first = items[0]
    assert set(first) >= {"memberNo", "householdNo", "idNo", "birthDate", "health", "updatedAt"}
    assert first["updatedAt"].endswith("+08:00") and len(first["updatedAt"]) == 29  # ms precision
    assert first["sex"] in ("1", "2") and first["relation"] in codes.from_bigdata(
        "relation_to_head"
    )


def test_bigdata_cursor_is_stable_while_records_change(sim):
    s = bigdata(sim)
    url = f"{sim.base_url('luonan')}/api/v2/households"
    page1 = s.get(url, params={"limit": 5}).json()["data"]
    requests.post(f"{sim.url}/_sim/clock/advance", params={"days": 1})
    rest = bd_all(sim, s, "households", limit=5)  # fresh listing for comparison
    page2 = s.get(url, params={"limit": 50, "cursor": page1["nextCursor"]}).json()["data"]
    last = (page1["items"][-1]["updatedAt"], page1["items"][-1]["id"])
    assert all((i["updatedAt"], i["id"]) > last for i in page2["items"])
    assert {i["id"] for i in page1["items"]} | {i["id"] for i in page2["items"]} >= {
        i["id"] for i in rest
    }


def test_bigdata_updated_after_is_exclusive(big):
    s = bigdata(big)
    items = bd_all(big, s, "households", limit=100)
    shared = items[10]["updatedAt"]
    assert sum(i["updatedAt"] == shared for i in items) >= 2  # the fake world pairs timestamps
    after = bd_all(big, s, "households", limit=100, updatedAfter=shared)
    assert all(i["updatedAt"] > shared for i in after)
    assert len(after) == sum(i["updatedAt"] > shared for i in items)


def test_bigdata_deletions_visibility_and_stats(sim):
    s = bigdata(sim)
    base = f"{sim.base_url('luonan')}/api/v2"
    before = {i["id"] for i in bd_all(sim, s, "households", limit=1000)}
    requests.post(f"{sim.url}/_sim/clock/advance", params={"days": 1})
    after = {i["id"] for i in bd_all(sim, s, "households", limit=1000)}
    gone = before - after
    assert len(gone) == 1
    feed = s.get(f"{base}/deletions", params={"entity": "households"}).json()["data"]["items"]
    assert [d["id"] for d in feed] == list(gone) and feed[0]["entity"] == "households"
    members = s.get(f"{base}/deletions", params={"entity": "members"}).json()["data"]["items"]
    assert members and all(m["id"][:16] in gone for m in members)
    # the new household is stamped 3 minutes back but commits 2 minutes ahead: not yet visible
    assert after == before - gone
    requests.post(f"{sim.url}/_sim/clock/advance", params={"minutes": 2})
    assert len({i["id"] for i in bd_all(sim, s, "households", limit=1000)} - before) >= 1
    stats = s.get(f"{base}/stats").json()["data"]
    for plural in (
        "regions",
        "households",
        "members",
        "measures",
        "loans",
        "projects",
        "cadres",
        "household-cadres",
    ):
        assert stats["counts"][plural] == len(bd_all(sim, s, plural, limit=5000))
    hh = bd_all(sim, s, "households", limit=5000)
    by = pl.DataFrame(hh).group_by("attribute").len()
    assert {r["attribute"]: r["len"] for r in by.to_dicts()} == {
        k: v["households"] for k, v in stats["byAttribute"].items()
    }
    assert "一般户X" in stats["byAttribute"]  # an injected unknown code is sent verbatim, no "!"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 5001},
        {"limit": "x"},
        {"cursor": "!!notacursor"},
        {"updatedAfter": "yesterday"},
    ],
)
def test_bigdata_envelope_errors(big, params):
    s = bigdata(big)
    r = s.get(f"{big.base_url('luonan')}/api/v2/households", params=params)
    assert r.status_code == 400 and r.json()["code"] == 40001 and "requestId" in r.json()


def test_bigdata_rate_limit(sim):
    requests.post(f"{sim.url}/_sim/config", json={"rate_limit": 3})
    s = bigdata(sim)  # the token request counts too
    answers = [s.get(f"{sim.base_url('luonan')}/api/v2/stats") for _ in range(4)]
    limited = [r for r in answers if r.status_code == 429]
    assert (
        limited and limited[0].headers["Retry-After"] == "1" and limited[0].json()["code"] == 42901
    )


# -- battle ------------------------------------------------------------------------------------
def _normalise_id(raw: str) -> str:
    s = raw.strip().translate({0xFF10 + d: str(d) for d in range(10)}).upper()
    if len(s) == 15:
        body = s[:6] + "19" + s[6:]
        w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
        s = body + "10X98765432"[sum(int(c) * k for c, k in zip(body, w, strict=True)) % 11]
    return s


def _date(raw: str):
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            pass
    raise AssertionError(raw)


def test_battle_v3_paging_labels_and_formats(big):
    s = battle(big)
    rows = bt_all(big, s, "/fpzz/pkry/list", size=13)
    truth = live(big, SHANGNAN, "person")
    assert sorted(r["rybh"] for r in rows) == sorted(truth["person_no"].to_list())
    order = [(r["updateTime"], r["rybh"]) for r in rows]
    assert order == sorted(order)
    by_key = {r["person_no"]: r for r in truth.to_dicts()}
    rel = codes.from_labels("relation_to_head")
    eth = codes.from_labels("ethnicity")
    for r in rows:
        t = by_key[r["rybh"]]
        assert _normalise_id(r["sfzh"]) == t["id_number"]
        assert _date(r["csrq"]) == t["birth_date"]
        assert rel[r["yhzgx"]] == t["relation_to_head"] and eth[r["mz"]] == t["ethnicity"]
        assert codes.from_labels("sex")[r["xb"]] == t["sex"]
    assert any(len(r["sfzh"].strip()) == 15 for r in rows)  # legacy numbers occur
    assert len({r["csrq"][4] for r in rows}) > 1  # several date formats occur
    hh = bt_all(big, s, "/fpzz/pkh/list", size=50)
    incomes = {
        r["household_no"]: r["income_per_capita"]
        for r in live(big, SHANGNAN, "household").to_dicts()
    }
    for r in hh:
        value = float(r["rjcsr"].replace(",", "").removesuffix("元"))
        assert value == pytest.approx(incomes[r["hbh"]])
        assert codes.from_labels("poverty_attribute").get(r["pkhsx"]) or r["pkhsx"] == "一般户X"
    assert any("," in r["rjcsr"] for r in hh) and any(r["rjcsr"].endswith("元") for r in hh)
    assert any(r["zyzpyy"] == "因婚" for r in hh)  # the label as sent is kept
    loans = bt_all(big, s, "/fpzz/xd/list", size=200)
    assert {r["nll"] for r in loans} == {"4.35%", "0.0435"}


def test_battle_begin_update_time_and_total(big):
    s = battle(big)
    rows = bt_all(big, s, "/fpzz/pkh/list", size=1000)
    cut = rows[len(rows) // 2]["updateTime"]
    body = s.get(
        f"{big.base_url('shangnan')}/fpzz/pkh/list",
        params={"pageSize": 1000, "params[beginUpdateTime]": cut},
    ).json()
    assert body["total"] == sum(r["updateTime"] >= cut for r in rows) == len(body["rows"])
    capped = s.get(f"{big.base_url('shangnan')}/fpzz/pkry/list", params={"pageSize": 5000}).json()
    assert len(capped["rows"]) == min(capped["total"], 1000)


def test_battle_auth(sim):
    url = f"{sim.base_url('shangnan')}/fpzz/pkh/list"
    r = requests.get(url)
    assert r.status_code == 200 and r.json()["code"] == 401
    wrong = requests.post(
        f"{sim.base_url('shangnan')}/login", json={"username": "a", "password": "b"}
    )
    assert wrong.json()["code"] == 500
    s = battle(sim)
    assert s.get(url).json()["code"] == 200
    requests.post(f"{sim.url}/_sim/config", json={"session_timeout": 0})
    time.sleep(0.01)
    assert s.get(url).json()["code"] == 401


def test_battle_v2_differences(big):
    base = big.base_url("shangzhou")
    c = big.credentials("shangzhou")
    assert (
        requests.post(f"{base}/login", json={"username": c["key"], "password": c["secret"]}).json()[
            "code"
        ]
        == 500
    )
    s = battle(big, "shangzhou")
    people = s.get(f"{base}/fpzz/pkry/list", params={"pageSize": 1000}).json()
    assert len(people["rows"]) == 200 < people["total"]  # pageSize capped at 200
    hh = s.get(f"{base}/fpzz/pkh/list", params={"pageSize": 200}).json()
    row = hh["rows"][0]
    assert "hzrybh" not in row and isinstance(row["rjcsr"], float)
    ids = dict(live(big, SHANGZHOU, "person").select("person_no", "id_number").iter_rows())
    heads = dict(
        live(big, SHANGZHOU, "household").select("household_no", "head_person_no").iter_rows()
    )
    assert row["hzsfz"] == ids[heads[row["hbh"]]]
    person = s.get(f"{base}/fpzz/pkry/list", params={"pageSize": 5}).json()["rows"][0]
    assert "csrq" not in person
    late = s.get(
        f"{base}/fpzz/pkh/list",
        params={"pageSize": 1, "params[beginUpdateTime]": "2030-01-01 00:00:00"},
    )
    assert late.json()["total"] == hh["total"]  # no such filter on v2: ignored


def test_churn_moves_records_to_the_end(sim):
    s = battle(sim)
    url = f"{sim.base_url('shangnan')}/fpzz/pkh/list"
    before = bt_all(sim, s, "/fpzz/pkh/list", size=1000)
    arm(sim, county="shangnan", kind="churn", count=2, k=3, entity="household")
    seen = bt_all(sim, s, "/fpzz/pkh/list", size=10)
    after = s.get(url, params={"pageSize": 1000}).json()["rows"]
    moved = [r["hbh"] for r in after[-6:]]
    assert set(moved) == {r["hbh"] for r in before[:6]}  # the first 3, then the next 3
    assert len(seen) == len(before)
    assert len({r["hbh"] for r in seen}) < len(
        before
    )  # a naive pager saw some twice, missed others


def test_prepare_renders_what_the_first_requests_would(sim):
    """Benchmarks render the listings before timing (``SimulatorHandle.prepare``): every list
    and deletion feed served afterwards must come from that render, not from a new build."""
    sim.advance(days=1)  # the clock moved: every cached render is stale
    sim.prepare()
    built = {
        slug: dict(sim.sim.platform(slug).cache._entries)
        for slug in ("luonan", "shangnan", "shangzhou")
    }
    assert all(len(entries) >= 8 for entries in built.values()), built.keys()
    lu = bigdata(sim)
    for entity in ("regions", "households", "members", "household-cadres"):
        r = lu.get(f"{sim.base_url('luonan')}/api/v2/{entity}", params={"limit": 5})
        assert r.json()["code"] == 0, r.text
    r = lu.get(f"{sim.base_url('luonan')}/api/v2/deletions", params={"limit": 5})
    assert r.json()["code"] == 0, r.text
    for slug in ("shangnan", "shangzhou"):
        s = battle(sim, slug)
        for path in ("/system/area/list", "/fpzz/pkh/list", "/fpzz/pkry/list"):
            assert s.get(f"{sim.base_url(slug)}{path}").json()["code"] == 200
    for slug, entries in built.items():
        after = sim.sim.platform(slug).cache._entries
        assert after.keys() == entries.keys(), slug
        rebuilt = [name for name, hit in entries.items() if after[name] is not hit]
        assert rebuilt == [], (slug, rebuilt)


# -- workbook ---------------------------------------------------------------------------------------
def _files(sim, slug):
    c = sim.credentials(slug)
    auth = (c["key"], c["secret"])
    index = requests.get(f"{sim.base_url(slug)}/exports/index.json", auth=auth).json()["files"]
    return index, {
        f["name"]: requests.get(f"{sim.base_url(slug)}/exports/{f['name']}", auth=auth).content
        for f in index
    }


def test_workbook_index_and_auth(sim):
    assert requests.get(f"{sim.base_url('zhashui')}/exports/index.json").status_code == 401
    index, blobs = _files(sim, "zhashui")
    for f in index:
        assert (
            hashlib.sha256(blobs[f["name"]]).hexdigest() == f["sha256"]
            and len(blobs[f["name"]]) == f["size"]
        )
    assert (
        index[0]["name"] == "柞水县建档立卡贫困人口明细_20160701.xlsx"
        and index[0]["kind"] == "register"
    )
    requests.post(f"{sim.url}/_sim/clock/advance", params={"days": 7})
    index2, blobs2 = _files(sim, "zhashui")
    assert len(index2) == 2 and blobs2[index[0]["name"]] == blobs[index[0]["name"]]  # never changes
    requests.post(f"{sim.url}/_sim/export", params={"county": "zhashui"})
    index3, _ = _files(sim, "zhashui")
    assert len(index3) == 3 and index3[-1]["uploadedAt"] >= index3[-2]["uploadedAt"]


def test_workbook_xlsx_layout(sim):
    import openpyxl

    index, blobs = _files(sim, "zhashui")
    wb = openpyxl.load_workbook(io.BytesIO(blobs[index[0]["name"]]))
    assert wb.sheetnames == ["贫困人口明细"]
    ws = wb["贫困人口明细"]
    assert ws["A1"].value == "柞水县建档立卡贫困人口明细表" and "A1:AA1" in {
        str(r) for r in ws.merged_cells.ranges
    }
    assert ws["A2"].value.startswith("导出时间：2016-07-01") and ws["AA2"].value == "单位：人、元"
    assert [c.value for c in ws[3]] == COLUMNS
    assert ws.cell(ws.max_row, 1).value == "合计"
    persons = live(sim, ZHASHUI, "person")
    assert ws.max_row - 4 == persons.height
    id_col = COLUMNS.index("证件号码") + 1
    numeric = [
        ws.cell(r, id_col) for r in range(4, ws.max_row) if ws.cell(r, id_col).data_type == "n"
    ]
    assert len(numeric) == 1 and numeric[0].number_format == "0.00000E+00"
    hinted = persons.filter(pl.col("render_hint") == "id_as_number")["id_number"][0]
    assert str(int(numeric[0].value)) != hinted and str(int(numeric[0].value))[:15] == hinted[:15]
    unsafe = COLUMNS.index("危房户") + 1
    safe_by_hh = dict(
        live(sim, ZHASHUI, "household").select("household_no", "housing_safe").iter_rows()
    )
    for r in range(4, ws.max_row):
        assert (ws.cell(r, unsafe).value == "是") == (not safe_by_hh[ws.cell(r, 4).value])
    kinds = {type(ws.cell(r, COLUMNS.index("人均纯收入") + 1).value) for r in range(4, ws.max_row)}
    assert kinds == {str, float}  # numbers, some as text


def test_workbook_csv_encoding(sim):
    index, blobs = _files(sim, "danfeng")
    raw = blobs[index[0]["name"]]
    assert index[0]["name"] == "丹凤县贫困人口_20160701.csv"
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    assert "\r\n" in text and text.split("\r\n")[0].split(",") == COLUMNS
    df = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False)
    assert df.height == live(sim, DANFENG, "person").height
    ids = df["证件号码"]
    assert (
        ids.str.starts_with("'").sum() == df.height - 1
        and ids.str.contains("E+17", literal=True).sum() == 1
    )


# -- faults ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "status", "check"),
    [
        ("http500", 500, lambda r: True),
        ("html502", 502, lambda r: "<html>" in r.text),
        ("html200", 200, lambda r: r.headers["Content-Type"].startswith("text/html")),
        ("rate_limit", 429, lambda r: r.headers["Retry-After"] == "1"),
        ("busy", 200, lambda r: r.json()["code"] == 50001),
        ("maintenance", 503, lambda r: r.json()["code"] == 50301),
        ("expire_token", 401, lambda r: r.json()["code"] == 40101),
        ("rename_field", 200, lambda r: "household_no" in r.json()["data"]["items"][0]),
    ],
)
def test_bigdata_faults(sim, kind, status, check):
    s = bigdata(sim)
    url = f"{sim.base_url('luonan')}/api/v2/households"
    arm(sim, county="luonan", kind=kind, count=1)
    r = s.get(url)
    assert r.status_code == status and check(r)
    if kind == "expire_token":
        s = bigdata(sim)
    ok = s.get(url)
    assert (
        ok.status_code == 200
        and ok.json()["code"] == 0
        and "householdNo" in ok.json()["data"]["items"][0]
    )


def test_battle_faults(sim):
    s = battle(sim)
    url = f"{sim.base_url('shangnan')}/fpzz/pkh/list"
    arm(sim, county="shangnan", kind="busy", count=2)
    assert [s.get(url).json()["msg"] for _ in range(2)] == ["系统繁忙，请稍后再试"] * 2
    assert s.get(url).json()["code"] == 200
    arm(sim, county="611023", kind="expire_token")
    assert s.get(url).json()["code"] == 401
    s = battle(sim)
    arm(sim, county="shangnan", kind="rename_field", entity="household")
    assert "hh_bh" in s.get(url).json()["rows"][0]
    arm(sim, county="shangnan", kind="http500", entity="person")  # another entity: not hit
    assert s.get(url).status_code == 200
    assert s.get(f"{sim.base_url('shangnan')}/fpzz/pkry/list").status_code == 500


def test_transport_faults(sim):
    s = battle(sim)
    url = f"{sim.base_url('shangnan')}/fpzz/pkh/list"
    full = s.get(url, params={"pageSize": 20}).content
    arm(sim, county="shangnan", kind="drop_connection")
    with pytest.raises(requests.ConnectionError):
        s.get(url, params={"pageSize": 20})
    arm(sim, county="shangnan", kind="truncate")
    cut = s.get(url, params={"pageSize": 20})
    assert len(cut.content) == len(full) // 2
    with pytest.raises(ValueError):
        cut.json()
    arm(sim, county="shangnan", kind="truncate", variant="abort")
    with pytest.raises(requests.RequestException):
        s.get(url, params={"pageSize": 20})
    arm(sim, county="shangnan", kind="slow", seconds=0.3)
    t = time.monotonic()
    assert s.get(url).json()["code"] == 200 and time.monotonic() - t >= 0.3
    arm(sim, county="shangnan", kind="http500", count=5)
    assert requests.delete(f"{sim.url}/_sim/faults").json()["cleared"] == 1
    assert s.get(url).status_code == 200


@pytest.mark.parametrize("variant", ["truncated", "not_workbook", "wrong_sheet"])
def test_broken_upload(sim, variant):
    import openpyxl

    arm(sim, county="zhashui", kind="broken_upload", variant=variant)
    requests.post(f"{sim.url}/_sim/export", params={"county": "zhashui"})
    index, blobs = _files(sim, "zhashui")
    data = blobs[index[-1]["name"]]
    assert hashlib.sha256(data).hexdigest() == index[-1]["sha256"]
    if variant == "wrong_sheet":
        assert "贫困人口明细" not in openpyxl.load_workbook(io.BytesIO(data)).sheetnames
    else:
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(data))
    requests.post(f"{sim.url}/_sim/export", params={"county": "zhashui"})  # the next one is fine
    index, blobs = _files(sim, "zhashui")
    assert zipfile.ZipFile(io.BytesIO(blobs[index[-1]["name"]])).testzip() is None


# -- control API and embedding ---------------------------------------------------------------------------
def test_control_api(sim):
    assert requests.get(f"{sim.url}/_sim/health").json()["status"] == "ok"
    info = requests.get(f"{sim.url}/_sim/info").json()
    assert info["counties"]["luonan"]["url"] == sim.base_url("luonan")
    assert info["counties"]["shangnan"]["kind"] == "battle"
    truth = requests.get(f"{sim.url}/_sim/truth", params={"county": "luonan"}).json()
    assert {t["rule"] for t in truth} == {"unknown_code", "id_number_checksum"}
    assert all(t["county_code"] == LUONAN for t in truth)
    bad = requests.post(f"{sim.url}/_sim/faults", json={"county": "luonan", "kind": "nope"})
    assert bad.status_code == 400
    env = sim.env()
    assert (
        env["HUB_LUONAN_URL"] == sim.base_url("luonan") and env["HUB_ZHASHUI_KEY"] == "zhashui-app"
    )
    assert json.dumps(env)  # plain strings


def test_keep_alive_pages_are_fast(big):
    s = bigdata(big)
    url = f"{big.base_url('luonan')}/api/v2/members"
    s.get(url, params={"limit": 1})  # warm the render cache
    t = time.monotonic()
    for _ in range(20):
        assert s.get(url, params={"limit": 50}).status_code == 200
    assert (time.monotonic() - t) / 20 < 0.03  # no Nagle/delayed-ACK stall


def test_cli_truth_and_advance(sim):
    from typer.testing import CliRunner

    from simulator.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["truth", "--county", "luonan", "--url", sim.url])
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["county_code"] for line in out.output.splitlines()] == [LUONAN, LUONAN]
    out = runner.invoke(app, ["advance", "--days", "1", "--url", sim.url])
    assert out.exit_code == 0 and json.loads(out.output)["now"].startswith("2016-07-02")


# -- the real World ---------------------------------------------------------------------------------------
def test_real_world_listings_match_records():
    """Every platform over the real World at a tiny scale: full listings equal the live records."""
    pytest.importorskip("simulator.world")
    handle = start_in_thread(seed=11, scale=0.004, defect_rate=0.05)
    try:
        s = bigdata(handle)
        stats = s.get(f"{handle.base_url('luonan')}/api/v2/stats").json()["data"]
        for plural, entity in (
            ("households", "household"),
            ("members", "person"),
            ("loans", "loan"),
        ):
            items = bd_all(handle, s, plural, limit=5000)
            assert len(items) == stats["counts"][plural] == live(handle, LUONAN, entity).height
            assert not any(str(v).startswith("!") for i in items for v in i.values())
        for slug, code in (("shangnan", SHANGNAN), ("shangzhou", SHANGZHOU)):
            b = battle(handle, slug)
            rows = bt_all(handle, b, "/fpzz/pkry/list", slug=slug, size=200)
            assert len(rows) == live(handle, code, "person").height
            assert {r["yhzgx"] for r in rows} <= set(codes.from_labels("relation_to_head")) | {
                v[1:]
                for v in handle.world.records(code, "person")["relation_to_head"]
                if v.startswith("!")
            }
        index, blobs = _files(handle, "danfeng")
        text = blobs[index[0]["name"]].decode("gb18030")
        assert len(text.splitlines()) - 1 == live(handle, DANFENG, "person").height
        truth = requests.get(f"{handle.url}/_sim/truth", params={"county": "zhashui"}).json()
        assert truth and {t["county_code"] for t in truth} == {ZHASHUI}
    finally:
        handle.stop()
