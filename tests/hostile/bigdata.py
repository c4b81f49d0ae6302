"""A hand-written 洛南 big-data platform (``platforms/bigdata.md``) on loopback: a tiny clean county
(3 households, 6 members) by default, one hostile behaviour per ``scenario``."""

from __future__ import annotations

import itertools
import json
import time
from datetime import date, datetime, timedelta

from schemas.id_number import make_id
from tests.hostile.harness import Answer, LoopbackServer, Request, json_answer

KEY, SECRET = "luonan-hostile-key-1", "luonan-hostile-secret-2"
T0 = datetime.fromisoformat("2016-07-01T08:00:00.000+08:00")
VILLAGE = "611021101001"
API_ENTITIES = (
    "regions", "households", "members", "measures", "loans", "projects", "cadres",
    "household-cadres",
)  # fmt: skip


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def region(code: str, level: str, parent: str, minute: int) -> dict:
    return {
        "id": code, "code": code, "name": f"区划{code[-3:]}", "level": level,
        "parentCode": parent, "poorVillage": level == "village", "poorVillageExitYear": None,
        "updatedAt": iso(T0 + timedelta(minutes=minute)),
    }  # fmt: skip


def household(n: int, minute: int, **kw) -> dict:
    no = f"{VILLAGE}{n:04d}"
    return {
        "id": no, "householdNo": no, "villageCode": VILLAGE, "headMemberNo": no + "01",
        "attribute": "01", "status": "0", "mainCause": "09", "otherCauses": [],
        "identifiedYear": 2014, "exitYear": None, "relapseYear": None,
        "incomePerCapita": 2100.5, "memberCount": 2, "housingSafe": True, "waterSafe": True,
        "phone": "13900000000", "updatedAt": iso(T0 + timedelta(minutes=minute)),
    } | kw  # fmt: skip


def member(household_no: str, seq: int, minute: int, **kw) -> dict:
    head = seq == 1
    sex = "male" if head else "female"
    born = date(1970, 5, 1) if head else date(1972, 3, 3)
    order = (int(household_no[-4:]) * 10 + seq * 2) % 1000
    return {
        "id": f"{household_no}{seq:02d}", "memberNo": f"{household_no}{seq:02d}",
        "householdNo": household_no, "name": "张三" if head else "李四",
        "idNo": make_id("611021", born, order, sex), "sex": "1" if head else "2",
        "birthDate": born.isoformat(), "relation": "01" if head else "02", "ethnicity": "01",
        "education": "3", "schoolStatus": "00", "health": ["1"], "laborSkill": "1",
        "workStatus": "1", "workMonths": 6, "seriousIllnessInsured": True,
        "updatedAt": iso(T0 + timedelta(minutes=minute)),
    } | kw  # fmt: skip


class HostileBigdata:
    """``scenario`` picks the hostile behaviour (None: a well-behaved platform)."""

    def __init__(self, households: int = 3, page_cap: int = 2) -> None:
        self.scenario: str | None = None
        self.page_cap = page_cap
        self.auth_calls = 0
        self.tokens: set[str] = set()
        self.refusals_left = 0  # token_expires_twice: refuse fresh tokens this many times
        self.items: dict[str, list[dict]] = {e: [] for e in API_ENTITIES}
        self.items["regions"] = [
            region("611021", "county", "611000", 0),
            region("611021101", "town", "611021", 1),
            region(VILLAGE, "village", "611021101", 2),
        ]
        for n in range(1, households + 1):
            hh = household(n, 10 + n)
            self.items["households"].append(hh)
            for seq in (1, 2):
                self.items["members"].append(member(hh["householdNo"], seq, 20 + 2 * n + seq))
        self.deletions: list[dict] = []
        self.server = LoopbackServer(self)

    def set(self, scenario: str | None) -> None:
        self.scenario = scenario
        if scenario == "token_expires_twice":
            self.refusals_left = 2

    def member_named(self, seq: int, **kw) -> None:
        """Change one member (``seq`` in listing order) in place."""
        self.items["members"][seq].update(kw)

    # -- HTTP ------------------------------------------------------------------------------
    def __call__(self, req: Request) -> Answer:
        path = req.path.removeprefix("/api/v2")
        if path == "/auth/token":
            return self._login(req)
        if req.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return json_answer({"code": 40101, "message": "token expired"}, 401)
        if path == "/stats":
            counts = {e: len(rows) for e, rows in self.items.items()}
            return json_answer({"code": 0, "data": {"asOf": iso(T0), "counts": counts}})
        if path == "/deletions":
            return self._deletions(req)
        entity = path.strip("/")
        if entity not in self.items:
            return json_answer({"code": 40001, "message": "unknown path"}, 404)
        if entity == "members":
            hostile = self._hostile_members(req)
            if hostile is not None:
                return hostile
        return self._listing(self.items[entity], req, "updatedAt", "updatedAfter")

    def _login(self, req: Request) -> Answer:
        self.auth_calls += 1
        body = req.json()
        if self.scenario == "login_refused" or (body.get("appKey"), body.get("appSecret")) != (
            KEY,
            SECRET,
        ):
            return json_answer({"code": 40301, "message": "invalid app credentials"})
        token = f"tok-{self.auth_calls}-hostile"
        self.tokens.add(token)
        return json_answer({"code": 0, "data": {"accessToken": token, "expiresIn": 1800}})

    def _listing(self, rows: list[dict], req: Request, stamp: str, after_param: str) -> Answer:
        rows = sorted(rows, key=lambda r: (r[stamp], r["id"]))
        after = req.query.get(after_param)
        if after:
            limit_dt = datetime.fromisoformat(after)
            rows = [r for r in rows if _after(r[stamp], limit_dt)]
        start = int(req.query.get("cursor", "c0")[1:])
        page = rows[start : start + self.page_cap]
        more = start + self.page_cap < len(rows)
        data = {"items": page, "nextCursor": f"c{start + self.page_cap}" if more else None}
        return json_answer({"code": 0, "data": {**data, "hasMore": more}})

    def _deletions(self, req: Request) -> Answer:
        rows = [d for d in self.deletions if d["entity"].endswith(req.query["entity"])]
        if self.scenario == "deletion_slash" and req.query["entity"] == "households":
            rows = [{"entity": "../households", "id": f"{VILLAGE}0009", "deletedAt": iso(T0)}]
        return self._listing(rows, req, "deletedAt", "deletedAfter")

    def _hostile_members(self, req: Request) -> Answer | None:
        s = self.scenario
        cursor = req.query.get("cursor")
        if s == "token_expires_twice" and self.refusals_left > 0:
            self.refusals_left -= 1
            self.tokens.clear()  # the fresh token is refused again
            return json_answer({"code": 40101, "message": "token expired"}, 401)
        if s == "cursor_loop" and cursor == "c4":
            # the third page points back at the second
            page = self.items["members"][4:6]
            return json_answer({"code": 0, "data": {"items": page, "nextCursor": "c2", "hasMore": True}})  # fmt: skip
        if s == "empty_forever" and cursor and cursor.startswith("e"):
            n = int(cursor[1:])
            return json_answer({"code": 0, "data": {"items": [], "nextCursor": f"e{n + 1}", "hasMore": True}})  # fmt: skip
        if s == "empty_forever" and cursor == "c4":
            page = self.items["members"][4:6]
            return json_answer({"code": 0, "data": {"items": page, "nextCursor": "e0", "hasMore": True}})  # fmt: skip
        if s in ("beyond_count", "slow_pages") and cursor and cursor.startswith("n"):
            # one new, distinct member per page, forever: "more" is always announced
            n = int(cursor[1:])
            extra = member(f"{VILLAGE}{100 + n // 2:04d}", n % 2 + 1, 40)
            return json_answer(
                {"code": 0, "data": {"items": [extra], "nextCursor": f"n{n + 1}", "hasMore": True}},
                delay=0.3 if s == "slow_pages" else 0.0,
            )
        if s in ("beyond_count", "slow_pages") and cursor == "c4":
            page = self.items["members"][4:6]
            return json_answer({"code": 0, "data": {"items": page, "nextCursor": "n0", "hasMore": True}})  # fmt: skip
        if s == "deep_nesting":
            depth = 10_000
            body = (
                b'{"code":0,"data":{"items":' + b"[" * depth + b"]" * depth + b',"hasMore":false}}'
            )
            return Answer(body=body)
        if s in ("nan", "infinity"):
            bad = "NaN" if s == "nan" else "Infinity"
            text = json.dumps(
                {"code": 0, "data": {"items": self.items["members"][:2], "hasMore": False}}
            )
            return Answer(body=text.replace('"workMonths": 6', f'"workMonths": {bad}', 1).encode())
        if s == "not_json":
            return Answer(body=b"OK")
        if s == "not_envelope":
            return Answer(body=b'[{"id": "1"}]')
        if s == "endless_body":
            item = json.dumps(self.items["members"][0]).encode()
            head = b'{"code":0,"data":{"hasMore":false,"items":['
            return Answer(stream=itertools.chain([head], itertools.repeat(item + b",")))
        if s == "drip":

            def drip():
                for byte in b'{"code":0,"data":{"hasMore":false,"items":[]}}':
                    time.sleep(0.2)
                    yield bytes([byte])

            return Answer(stream=drip())
        return None


def _after(value: str, limit: datetime) -> bool:
    try:
        return datetime.fromisoformat(value) > limit
    except OverflowError:  # 9999-12-31T23:59:59-10:00 is beyond year 9999 in UTC
        return True


def _when(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value) - timedelta(0)
    except OverflowError:  # beyond year 9999 in UTC: after everything
        return datetime.max.replace(tzinfo=T0.tzinfo)
