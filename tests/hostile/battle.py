"""A hand-written battle platform (脱贫攻坚作战平台 v3, ``platforms/battle.md``) on loopback for 商南:
a tiny clean county (3 households, 6 members) by default, one hostile behaviour per scenario."""

from __future__ import annotations

import json
import math
from datetime import date

from schemas.id_number import make_id
from tests.hostile.harness import Answer, LoopbackServer, Request, json_answer

USERNAME, PASSWORD = "shangnan-hostile-user", "shangnan-hostile-pass-9"
VILLAGE = "611023101001"
PATHS = {
    "/system/area/list": "region",
    "/fpzz/pkh/list": "household",
    "/fpzz/pkry/list": "person",
    "/fpzz/bfcs/list": "measure",
    "/fpzz/xd/list": "loan",
    "/fpzz/xmk/list": "project",
    "/fpzz/bfr/list": "cadre",
    "/fpzz/bfgx/list": "household_cadre",
}
BEGIN = "params[beginUpdateTime]"


def stamp(minute: int) -> str:
    return f"2016-07-01 08:{minute:02d}:00"


def area(code: str, level: str, parent: str, minute: int) -> dict:
    return {
        "areaCode": code, "areaName": f"区划{code[-3:]}", "parentCode": parent,
        "areaLevel": level, "sfpkc": "是" if level == "5" else "否", "pkctcnf": "",
        "updateTime": stamp(minute),
    }  # fmt: skip


def household(n: int, minute: int) -> dict:
    no = f"{VILLAGE}{n:04d}"
    return {
        "hbh": no, "xzqh": VILLAGE, "cmc": "一村", "hzxm": "张三", "hzrybh": no + "01",
        "pkhsx": "一般贫困户", "tpzt": "未脱贫", "zyzpyy": "缺资金", "qtzpyy": "", "sbnf": "2014",
        "tpnf": "", "fpnf": "", "rjcsr": "3,520.50", "jtrk": "2", "zfaq": "是", "yssaq": "是",
        "lxdh": "13900000000", "updateTime": stamp(minute),
    }  # fmt: skip


def member(household_no: str, seq: int, minute: int, **kw) -> dict:
    head = seq == 1
    sex = "male" if head else "female"
    born = date(1970, 5, 1) if head else date(1972, 3, 3)
    order = (int(household_no[-4:]) * 10 + seq * 2) % 1000
    return {
        "rybh": f"{household_no}{seq:02d}", "hbh": household_no, "xm": "张三" if head else "李四",
        "sfzh": make_id("611023", born, order, sex), "xb": "男" if head else "女",
        "csrq": born.isoformat(), "yhzgx": "户主" if head else "配偶", "mz": "汉族",
        "whcd": "初中", "zxsqk": "非在校生", "jkzk": "健康", "ldjn": "普通劳动力",
        "wgzk": "乡(镇)内务工", "wgsj": "6", "cjdbyl": "是", "updateTime": stamp(minute),
    } | kw  # fmt: skip


class HostileBattle:
    def __init__(self, households: int = 3) -> None:
        self.scenario: str | None = None
        self.logins = 0
        self.tokens: set[str] = set()
        self.refusals_left = 0
        self.rows: dict[str, list[dict]] = {e: [] for e in PATHS.values()}
        self.rows["region"] = [
            area("611023", "2", "611000", 0),
            area("611023101", "4", "611023", 1),
            area(VILLAGE, "5", "611023101", 2),
        ]
        for n in range(1, households + 1):
            hh = household(n, 10 + n)
            self.rows["household"].append(hh)
            for seq in (1, 2):
                self.rows["person"].append(member(hh["hbh"], seq, 20 + 2 * n + seq))
        self.server = LoopbackServer(self)

    def set(self, scenario: str | None) -> None:
        self.scenario = scenario
        if scenario == "session_expires_twice":
            self.refusals_left = 2

    def __call__(self, req: Request) -> Answer:
        if req.path == "/login":
            return self._login(req)
        if req.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return json_answer({"code": 401, "msg": "登录状态已过期"})
        entity = PATHS.get(req.path)
        if entity is None:
            return json_answer({"code": 404, "msg": "路径不存在"})
        if entity == "person":
            hostile = self._hostile(req)
            if hostile is not None:
                return hostile
        rows = sorted(self.rows[entity], key=lambda r: r["updateTime"])
        begin = req.query.get(BEGIN)
        if begin:
            rows = [r for r in rows if r["updateTime"] >= begin]
        num, size = int(req.query["pageNum"]), int(req.query["pageSize"])
        page = rows[(num - 1) * size : num * size]
        return json_answer({"total": len(rows), "rows": page, "code": 200, "msg": "查询成功"})

    def _login(self, req: Request) -> Answer:
        self.logins += 1
        body = req.json()
        if self.scenario == "login_refused" or body != {
            "username": USERNAME,
            "password": PASSWORD,
        }:
            return json_answer({"code": 500, "msg": "用户不存在/密码错误"})
        token = f"tok-{self.logins}-battle"
        self.tokens.add(token)
        return json_answer({"code": 200, "msg": "操作成功", "token": token})

    def _synthetic(self, start: int, count: int) -> list[dict]:
        """``count`` distinct well-formed members numbered from ``start``."""
        return [
            member(f"{VILLAGE}{100 + (start + i) // 2:04d}", (start + i) % 2 + 1, 40)
            for i in range(count)
        ]

    def _hostile(self, req: Request) -> Answer | None:
        s = self.scenario
        num, size = int(req.query["pageNum"]), int(req.query["pageSize"])
        if s == "session_expires_twice" and self.refusals_left > 0:
            self.refusals_left -= 1
            self.tokens.clear()
            return json_answer({"code": 401, "msg": "登录状态已过期"})
        if s == "page_ignored":  # pageNum ignored: page 1, full, forever; total says more
            rows = self._synthetic(0, size)
            return json_answer({"total": 50 * size, "rows": rows, "code": 200, "msg": "查询成功"})
        if s in ("total_inflating", "slow_pages"):  # new rows on every page, total always ahead
            rows = self._synthetic((num - 1) * size, size)
            total = (num + 1) * size + 1
            return json_answer(
                {"total": total, "rows": rows, "code": 200, "msg": "查询成功"},
                delay=0.5 if s == "slow_pages" else 0.0,
            )
        if s == "empty_pages":  # total says 10, every page is empty
            return json_answer({"total": 10, "rows": [], "code": 200, "msg": "查询成功"})
        if s == "deep_nesting":
            depth = 10_000
            return Answer(
                body=b'{"code":200,"total":1,"rows":' + b"[" * depth + b"]" * depth + b"}"
            )
        if s == "nan":
            text = json.dumps({"total": math.nan, "rows": [], "code": 200, "msg": "x"})
            return Answer(body=text.encode())  # json.dumps writes NaN
        if s == "not_json":
            return Answer(body="系统繁忙".encode())
        if s == "not_envelope":
            return Answer(body=b'{"rows": [], "total": 0}')
        if s == "negative_total":
            return json_answer({"total": -5, "rows": [], "code": 200, "msg": "查询成功"})
        return None
