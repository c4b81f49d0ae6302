"""脱贫攻坚作战平台 query interface, v3 and v2 (``shared/platforms/battle.md``).

A RuoYi-style admin system: login → token, offset-paged lists ordered by updateTime then key,
``code``/``msg`` in every body with HTTP 200, Chinese labels with clerk variants, numbers and
dates as strings in several hand-typed formats.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import polars as pl

from schemas.columns import CODED, ENTITIES
from simulator.platforms import (
    SH_TZ,
    Platform,
    Request,
    Response,
    encode_rows,
    fixed2,
    join_json,
    json_response,
    label_expr,
    live,
    pick,
    short_number,
    text,
    utc,
    variant_hash,
    yes_no,
    ymd,
)

#: list path → canonical entity
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
PAGE_CAP = {"3": 1000, "2": 200}
DEFAULT_PAGE_SIZE = 10  # RuoYi's default when pageSize is absent
BUSY_MSG = "系统繁忙，请稍后再试"

_FULLWIDTH = [chr(0xFF10 + d) for d in range(10)]
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _valid_id(idn: pl.Expr) -> pl.Expr:
    """18-character GB 11643 number with a correct check digit (never raises on junk)."""
    total = sum(
        idn.str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(_WEIGHTS)
    )
    check = (total % 11).replace_strict(
        dict(enumerate("10X98765432")), default=None, return_dtype=pl.String
    )
    return idn.str.contains(r"^\d{17}[\dX]$").fill_null(False) & (
        idn.str.slice(17, 1) == check
    ).fill_null(False)


def _sfzh(idn: pl.Expr, key: pl.Expr, legacy: pl.Expr) -> pl.Expr:
    """The ID number as typed by clerks: mostly as is; some with full-width digits, a lower-case
    x, surrounding spaces, or as the 15-digit legacy number (only for people born 1900-1999
    with a valid 18-digit number, so that the GB 11643 upgrade gives back the same number)."""
    h = variant_hash(key, "sfzh") % 100
    eligible = _valid_id(idn) & (idn.str.slice(6, 2) == "19")
    legacy15 = pl.concat_str(idn.str.slice(0, 6), idn.str.slice(8, 9))
    return (
        pl.when(eligible & (legacy.fill_null(False) | (h >= 94)))
        .then(legacy15)
        .when(h < 78)
        .then(idn)
        .when(h < 84)
        .then(idn.str.replace_many([str(d) for d in range(10)], _FULLWIDTH))
        .when(h < 89)
        .then(idn.str.replace("X", "x", literal=True))
        .otherwise(pl.concat_str(pl.lit(" "), idn, pl.lit(" ")))
    )


def _csrq(d: pl.Expr, key: pl.Expr) -> pl.Expr:
    h = variant_hash(key, "csrq") % 100
    return (
        pl.when(h < 55)
        .then(d.dt.strftime("%Y-%m-%d"))
        .when(h < 70)
        .then(d.dt.strftime("%Y/%-m/%-d"))
        .when(h < 85)
        .then(d.dt.strftime("%Y%m%d"))
        .otherwise(d.dt.strftime("%Y年%-m月%-d日"))
        .fill_null("")
    )


def _rjcsr(x: pl.Expr, key: pl.Expr) -> pl.Expr:
    h = variant_hash(key, "rjcsr") % 100
    return (
        pl.when(h < 60)
        .then(fixed2(x))
        .when(h < 80)
        .then(fixed2(x, thousands=True))
        .otherwise(pl.concat_str(short_number(x), pl.lit("元")))
        .fill_null("")
    )


def _nll(rate: pl.Expr, key: pl.Expr) -> pl.Expr:
    h = variant_hash(key, "nll") % 100
    percent = pl.concat_str((rate * 100).round(4).cast(pl.String), pl.lit("%"))
    return pl.when(h < 50).then(percent).otherwise(rate.round(6).cast(pl.String)).fill_null("")


def _money(x: pl.Expr) -> pl.Expr:
    return fixed2(x).fill_null("")


#: A coded column rendered as the platform's label: ``lab(column, vary=True)``.
Label = Callable[..., pl.Expr]
Fields = tuple[pl.DataFrame, list[pl.Expr]]


class BattlePlatform(Platform):
    kind = "battle"

    def __init__(self, sim, county) -> None:
        super().__init__(sim, county)
        self.version = county.version
        self._sessions: dict[str, float] = {}  # token → monotonic time of last use
        self._lock = threading.Lock()
        # churn: records "touched" in the platform (source_key → new updateTime, UTC)
        self._touched: dict[str, dict[str, datetime]] = {}

    # -- routing ----------------------------------------------------------------------------
    def classify(self, req: Request) -> str | None:
        path = req.path.rstrip("/") or "/"
        if path == "/login":
            return "auth"
        return PATHS.get(path)

    def handle(self, req: Request) -> Response:
        label = self.classify(req)
        if label is None:
            return json_response({"code": 404, "msg": f"请求地址'{req.path}'不存在"}, status=404)
        if label == "auth":
            return self._login(req)
        if not self._authorised(req):
            return json_response(
                {"code": 401, "msg": f"请求访问：{req.path}，认证失败，无法访问系统资源"}
            )
        return self._list(label, req)

    def fault_response(self, kind: str) -> Response:
        msg = BUSY_MSG if kind == "busy" else "系统维护中，请稍后再试"
        return json_response({"code": 500, "msg": msg})

    def rename_candidates(self) -> list[tuple[str, str]]:
        return [("hbh", "hh_bh"), ("updateTime", "update_time")]

    # -- sessions ---------------------------------------------------------------------------
    def _login(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response({"code": 500, "msg": "Request method 'GET' not supported"})
        username = password = None
        if self.version == "2":  # v2: form fields
            form = parse_qs(req.body.decode("utf-8", "replace"))
            username = (form.get("username") or [None])[0]
            password = (form.get("password") or [None])[0]
        else:
            try:
                payload = json.loads(req.body or b"{}")
                username, password = payload.get("username"), payload.get("password")
            except (ValueError, AttributeError):
                return json_response({"code": 500, "msg": "请求参数格式错误"})
        creds = self.credentials()
        if (username, password) != (creds["key"], creds["secret"]):
            return json_response({"code": 500, "msg": "用户不存在/密码错误"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[token] = time.monotonic()
        return json_response({"code": 200, "msg": "操作成功", "token": token})

    def _authorised(self, req: Request) -> bool:
        auth = req.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else auth.strip()
        now = time.monotonic()
        with self._lock:
            last = self._sessions.get(token)
            if last is None:
                return False
            if now - last > self.sim.config.session_timeout:
                del self._sessions[token]
                return False
            self._sessions[token] = now  # inactivity timeout: each use renews the session
            return True

    def expire_tokens(self) -> None:
        with self._lock:
            self._sessions.clear()

    # -- rendering --------------------------------------------------------------------------
    def _fields(self, entity: str, df: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.Expr]]:
        """The platform's columns for ``entity``, in its order (updateTime is added later).

        Written from shared/platforms/battle.md, not from the connector's layout table
        (``pipelines/connectors/battle/layout.py``): the two read alike on purpose, so a wrong
        field name on either side fails the tests instead of agreeing with itself."""
        key = pl.col("source_key")
        coded = CODED.get(entity, {})
        schema = ENTITIES[entity]
        share = self.sim.config.label_variant_share

        def lab(col: str, vary: bool = True) -> pl.Expr:
            return label_expr(col, coded[col], key, share if vary else 0, schema[col])

        fields = {
            "region": self._region_fields,
            "household": self._household_fields,
            "person": self._person_fields,
            "measure": self._measure_fields,
            "loan": self._loan_fields,
            "project": self._project_fields,
            "cadre": self._cadre_fields,
            "household_cadre": self._household_cadre_fields,
        }.get(entity)
        if fields is None:
            raise KeyError(entity)
        return fields(df, lab)

    def _region_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        level = pl.col("level").replace_strict(
            {"county": "2", "town": "4", "village": "5"}, default=""
        )
        return df, [
            pl.col("code").alias("areaCode"),
            text(pl.col("name")).alias("areaName"),
            text(pl.col("parent_code")).alias("parentCode"),
            level.alias("areaLevel"),
            yes_no(pl.col("is_poor_village")).alias("sfpkc"),
            text(pl.col("poor_village_exit_year")).alias("pkctcnf"),
        ]

    def _household_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        key = pl.col("source_key")
        schema = ENTITIES["household"]
        villages = live(self.records("region"), self.world.now).select(
            pl.col("code").alias("village_code"), pl.col("name").alias("_village")
        )
        heads = live(self.records("person"), self.world.now).select(
            pl.col("person_no").alias("head_person_no"),
            pl.col("name").alias("_head_name"),
            pl.col("id_number").alias("_head_id"),
        )
        df = df.join(villages, on="village_code", how="left").join(
            heads, on="head_person_no", how="left"
        )
        other_sep = (
            pl.when(pick(variant_hash(key, "qtzpyy"), 30)).then(pl.lit("，")).otherwise(pl.lit(","))
        )
        other = label_expr("other_causes", "poverty_cause", key, 0, schema["other_causes"])
        main = pl.coalesce(pl.col("main_cause_label"), lab("main_cause", vary=False))
        if self.version == "2":
            head = text(pl.col("_head_id")).alias("hzsfz")
            income = pl.col("income_per_capita").alias("rjcsr")  # a JSON number on v2
        else:
            head = text(pl.col("head_person_no")).alias("hzrybh")
            income = _rjcsr(pl.col("income_per_capita"), key).alias("rjcsr")
        return df, [
            pl.col("household_no").alias("hbh"),
            text(pl.col("village_code")).alias("xzqh"),
            text(pl.col("_village")).alias("cmc"),
            text(pl.col("_head_name")).alias("hzxm"),
            head,
            lab("poverty_attribute").alias("pkhsx"),
            lab("poverty_status").alias("tpzt"),
            text(main).alias("zyzpyy"),
            other.str.replace_all(",", other_sep, literal=True).fill_null("").alias("qtzpyy"),
            text(pl.col("identified_year")).alias("sbnf"),
            text(pl.col("exit_year")).alias("tpnf"),
            text(pl.col("relapse_year")).alias("fpnf"),
            income,
            text(pl.col("member_count")).alias("jtrk"),
            yes_no(pl.col("housing_safe")).alias("zfaq"),
            yes_no(pl.col("water_safe")).alias("yssaq"),
            text(pl.col("phone")).alias("lxdh"),
        ]

    def _person_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        key = pl.col("source_key")
        legacy = pl.col("id_upgraded") if "id_upgraded" in df.columns else pl.lit(False)
        fields = [
            pl.col("person_no").alias("rybh"),
            text(pl.col("household_no")).alias("hbh"),
            text(pl.col("name")).alias("xm"),
            text(_sfzh(pl.col("id_number"), key, legacy)).alias("sfzh"),
            text(lab("sex")).alias("xb"),
        ]
        if self.version != "2":  # v2 has no birth date column
            fields.append(_csrq(pl.col("birth_date"), key).alias("csrq"))
        return df, [
            *fields,
            text(lab("relation_to_head")).alias("yhzgx"),
            text(lab("ethnicity")).alias("mz"),
            text(lab("education")).alias("whcd"),
            text(lab("school_status")).alias("zxsqk"),
            text(lab("health")).alias("jkzk"),
            text(lab("labor_skill")).alias("ldjn"),
            text(lab("work_status")).alias("wgzk"),
            text(pl.col("work_months")).alias("wgsj"),
            yes_no(pl.col("serious_illness_insured")).alias("cjdbyl"),
        ]

    def _measure_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        return df, [
            pl.col("measure_id").alias("csbh"),
            text(pl.col("household_no")).alias("hbh"),
            text(lab("category")).alias("cslb"),
            text(pl.col("year")).alias("nd"),
            _money(pl.col("amount")).alias("je"),
            text(pl.col("description")).alias("csms"),
        ]

    def _loan_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        key = pl.col("source_key")
        return df, [
            pl.col("loan_id").alias("dkbh"),
            text(pl.col("household_no")).alias("hbh"),
            text(pl.col("lender")).alias("dkyh"),
            _money(pl.col("principal")).alias("dkje"),
            ymd(pl.col("issued_on")).alias("ffrq"),
            text(pl.col("term_months")).alias("dkqx"),
            _nll(pl.col("annual_rate"), key).alias("nll"),
            _money(pl.col("interest_subsidy")).alias("txje"),
            text(lab("status")).alias("dkzt"),
        ]

    def _project_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        return df, [
            pl.col("project_id").alias("xmbh"),
            text(pl.col("village_code")).alias("xzqh"),
            text(lab("category")).alias("xmlb"),
            text(pl.col("name")).alias("xmmc"),
            _money(pl.col("budget")).alias("ysje"),
            _money(pl.col("disbursed")).alias("bfje"),
            text(lab("status")).alias("xmzt"),
            ymd(pl.col("start_on")).alias("kgrq"),
            ymd(pl.col("end_on")).alias("wgrq"),
            text(pl.col("households_benefited")).alias("syhs"),
        ]

    def _cadre_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        return df, [
            pl.col("cadre_id").alias("bfrbh"),
            text(pl.col("name")).alias("xm"),
            text(pl.col("id_number")).alias("sfzh"),
            text(lab("sex")).alias("xb"),
            text(pl.col("phone")).alias("lxdh"),
            text(pl.col("unit_name")).alias("dwmc"),
            text(lab("unit_type")).alias("dwlx"),
            yes_no(pl.col("is_first_secretary")).alias("sfdysj"),
            yes_no(pl.col("is_resident_team")).alias("sfzcdy"),
        ]

    def _household_cadre_fields(self, df: pl.DataFrame, lab: Label) -> Fields:
        return df, [
            pl.col("household_no").alias("hbh"),
            pl.col("cadre_id").alias("bfrbh"),
            ymd(pl.col("since")).alias("bfkssj"),
        ]

    def _render(self, entity: str) -> pl.DataFrame:
        """Live records as pre-encoded JSON rows ordered by (updateTime, key), with ``_ts`` the
        updateTime in epoch seconds (the platform's precision)."""
        df = live(self.records(entity), self.world.now)
        with self._lock:
            touched = dict(self._touched.get(entity) or {})
        if touched:
            overlay = pl.DataFrame(
                {"source_key": list(touched), "_touched": list(touched.values())},
                schema={"source_key": pl.String, "_touched": pl.Datetime("us", "UTC")},
            )
            df = df.join(overlay, on="source_key", how="left").with_columns(
                pl.max_horizontal(pl.col("updated_at").dt.cast_time_unit("us"), "_touched").alias(
                    "updated_at"
                )
            )
        df, fields = self._fields(entity, df)
        local = pl.col("updated_at").dt.convert_time_zone(SH_TZ)
        out = df.select(
            *fields,
            local.dt.strftime("%Y-%m-%d %H:%M:%S").alias("updateTime"),
            pl.col("updated_at").dt.epoch("s").alias("_ts"),
            pl.col("source_key").alias("_key"),
        ).sort(["_ts", "_key"])
        names = [c for c in out.columns if not c.startswith("_")]
        return pl.DataFrame(
            {"_ts": out["_ts"], "_key": out["_key"], "_json": encode_rows(out, names)}
        )

    def _rendered(self, entity: str) -> pl.DataFrame:
        return self.cache.get(entity, self.state(), lambda: self._render(entity))

    def prepare(self) -> None:
        for entity in PATHS.values():
            self._rendered(entity)

    def churn(self, entity: str, k: int) -> None:
        """Touch the first ``k`` records in the current order: their updateTime becomes the
        platform's now, so they move to the end and every later row shifts up by ``k``."""
        frame = self._rendered(entity)
        now = utc(self.world.now)
        with self._lock:
            touched = self._touched.setdefault(entity, {})
            for key in frame["_key"].head(k).to_list():
                touched[key] = now
            self.revision += 1

    # -- lists ------------------------------------------------------------------------------
    @staticmethod
    def _int(value: str | None, default: int) -> int:
        try:
            return int(value) if value not in (None, "") else default
        except ValueError:
            return default

    def _list(self, entity: str, req: Request) -> Response:
        fault = self.sim.faults.take(self.county.code, entity, kinds=("churn",))
        if fault is not None:
            self.churn(entity, fault.k)
        page_num = max(1, self._int(req.query.get("pageNum"), 1))
        page_size = self._int(req.query.get("pageSize"), DEFAULT_PAGE_SIZE)
        if page_size < 1:
            page_size = DEFAULT_PAGE_SIZE
        page_size = min(page_size, PAGE_CAP.get(self.version, 1000))
        frame = self._rendered(entity)
        begin = req.query.get("params[beginUpdateTime]")
        if begin and self.version != "2":  # v2 has no such filter: it ignores the parameter
            try:
                since = datetime.fromisoformat(begin.strip()).replace(tzinfo=ZoneInfo(SH_TZ))
            except ValueError:
                return json_response({"code": 500, "msg": f"参数格式错误：beginUpdateTime={begin}"})
            frame = frame.filter(pl.col("_ts") >= int(since.timestamp()))
        rows = frame.slice((page_num - 1) * page_size, page_size)
        body = (
            b'{"total":'
            + str(frame.height).encode()
            + b',"rows":'
            + join_json(rows["_json"])
            + b',"code":200,"msg":"\xe6\x9f\xa5\xe8\xaf\xa2\xe6\x88\x90\xe5\x8a\x9f"}'  # 查询成功
        )
        return Response(200, body)
