"""洛南县精准扶贫大数据平台, data-sharing API v2 (``shared/platforms/bigdata.md``).

Token auth, keyset-cursor listings ordered by (updatedAt, id), a deletion feed, stats, JSON
envelopes with the platform's error codes and a per-app rate limit.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
import threading
import time
from collections import deque
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl

from schemas.columns import CODED, ENTITIES
from simulator.platforms import (
    JSON,
    SH_TZ,
    Platform,
    Request,
    Response,
    bigdata_codes,
    encode_rows,
    join_json,
    live,
    map_code,
    utc,
)

PREFIX = "/api/v2"
#: URL path segment → canonical entity. Written from shared/platforms/bigdata.md, not imported
#: from the connector's layout: a wrong name there must fail the tests, not be served back.
PATHS = {
    "regions": "region",
    "households": "household",
    "members": "person",
    "measures": "measure",
    "loans": "loan",
    "projects": "project",
    "cadres": "cadre",
    "household-cadres": "household_cadre",
}
PLURAL = {v: k for k, v in PATHS.items()}

#: (platform field, canonical column) per entity, in the order the platform sends them;
#: ``id`` and ``updatedAt`` are added around these.
FIELDS: dict[str, list[tuple[str, str]]] = {
    "region": [
        ("code", "code"),
        ("name", "name"),
        ("level", "level"),
        ("parentCode", "parent_code"),
        ("poorVillage", "is_poor_village"),
        ("poorVillageExitYear", "poor_village_exit_year"),
    ],
    "household": [
        ("householdNo", "household_no"),
        ("villageCode", "village_code"),
        ("headMemberNo", "head_person_no"),
        ("attribute", "poverty_attribute"),
        ("status", "poverty_status"),
        ("mainCause", "main_cause"),
        ("otherCauses", "other_causes"),
        ("identifiedYear", "identified_year"),
        ("exitYear", "exit_year"),
        ("relapseYear", "relapse_year"),
        ("incomePerCapita", "income_per_capita"),
        ("memberCount", "member_count"),
        ("housingSafe", "housing_safe"),
        ("waterSafe", "water_safe"),
        ("phone", "phone"),
    ],
    "person": [
        ("memberNo", "person_no"),
        ("householdNo", "household_no"),
        ("name", "name"),
        ("idNo", "id_number"),
        ("sex", "sex"),
        ("birthDate", "birth_date"),
        ("relation", "relation_to_head"),
        ("ethnicity", "ethnicity"),
        ("education", "education"),
        ("schoolStatus", "school_status"),
        ("health", "health"),
        ("laborSkill", "labor_skill"),
        ("workStatus", "work_status"),
        ("workMonths", "work_months"),
        ("seriousIllnessInsured", "serious_illness_insured"),
    ],
    "measure": [
        ("householdNo", "household_no"),
        ("category", "category"),
        ("year", "year"),
        ("amount", "amount"),
        ("description", "description"),
    ],
    "loan": [
        ("householdNo", "household_no"),
        ("lender", "lender"),
        ("principal", "principal"),
        ("issuedOn", "issued_on"),
        ("termMonths", "term_months"),
        ("annualRate", "annual_rate"),
        ("interestSubsidy", "interest_subsidy"),
        ("status", "status"),
    ],
    "project": [
        ("villageCode", "village_code"),
        ("category", "category"),
        ("name", "name"),
        ("budget", "budget"),
        ("disbursed", "disbursed"),
        ("status", "status"),
        ("startOn", "start_on"),
        ("endOn", "end_on"),
        ("householdsBenefited", "households_benefited"),
    ],
    "cadre": [
        ("name", "name"),
        ("idNo", "id_number"),
        ("sex", "sex"),
        ("phone", "phone"),
        ("unitName", "unit_name"),
        ("unitType", "unit_type"),
        ("firstSecretary", "is_first_secretary"),
        ("residentTeam", "is_resident_team"),
    ],
    "household_cadre": [
        ("householdNo", "household_no"),
        ("cadreId", "cadre_id"),
        ("since", "since"),
    ],
}

ISO_MS = "%Y-%m-%dT%H:%M:%S%.3f%:z"
MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, http: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.http, self.code, self.message, self.headers = http, code, message, headers or {}


def _iso_ms(ms: pl.Expr) -> pl.Expr:
    """Epoch milliseconds → "2016-07-14T09:30:00.123+08:00"."""
    return (
        pl.from_epoch(ms, time_unit="ms")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(SH_TZ)
        .dt.strftime(ISO_MS)
    )


def _parse_time(value: str, name: str) -> int:
    """An ISO-8601 parameter → epoch microseconds (no offset means Beijing time)."""
    try:
        dt = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        raise ApiError(400, 40001, f"{name} is not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(SH_TZ))
    return int(utc(dt).timestamp() * 1_000_000)


def _encode_cursor(ts_ms: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{ts_ms}|{key}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, key = raw.split("|", 1)
        return int(ts), key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, 40001, "invalid cursor") from None


class BigdataPlatform(Platform):
    kind = "bigdata"

    def __init__(self, sim, county) -> None:
        super().__init__(sim, county)
        self._tokens: dict[str, float] = {}  # token → monotonic expiry
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # request times in the last second (rate limit)
        self._request_ids = itertools.count(1)

    # -- routing ----------------------------------------------------------------------------
    def classify(self, req: Request) -> str | None:
        if not req.path.startswith(PREFIX + "/"):
            return None
        rest = req.path[len(PREFIX) + 1 :].strip("/")
        if rest == "auth/token":
            return "auth"
        if rest == "stats":
            return "stats"
        if rest == "deletions":
            return "deletions:" + PATHS.get(req.query.get("entity", ""), "")
        return PATHS.get(rest)

    def handle(self, req: Request) -> Response:
        try:
            self._rate_limit()
            label = self.classify(req)
            if label is None:
                raise ApiError(404, 40001, f"no such resource: {req.path}")
            if label == "auth":
                if req.method != "POST":
                    raise ApiError(405, 40001, "use POST")
                return self._envelope(self._token(req))
            if req.method != "GET":
                raise ApiError(405, 40001, "use GET")
            self._authorise(req)
            if label == "stats":
                return self._envelope(self._stats())
            if label.startswith("deletions:"):
                return self._raw_envelope(self._deletions(req))
            return self._raw_envelope(self._list(label, req))
        except ApiError as e:
            return self._error(e)

    # -- envelopes --------------------------------------------------------------------------
    def _request_id(self) -> str:
        return f"{self.county.slug}-{next(self._request_ids):010d}"

    def _envelope(self, data) -> Response:
        body = {"code": 0, "message": "ok", "data": data, "requestId": self._request_id()}
        return Response(200, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())

    def _raw_envelope(self, data_json: bytes) -> Response:
        """The envelope around a ``data`` that is already JSON (pages are built as bytes)."""
        rid = json.dumps(self._request_id()).encode()
        body = b'{"code":0,"message":"ok","data":' + data_json + b',"requestId":' + rid + b"}"
        return Response(200, body, JSON)

    def _error(self, e: ApiError) -> Response:
        body = {"code": e.code, "message": e.message, "data": None, "requestId": self._request_id()}
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(e.http, payload, JSON, e.headers)

    def fault_response(self, kind: str) -> Response:
        if kind == "busy":
            # the gateway passes the platform's error through with HTTP 200
            return self._error(ApiError(200, 50001, "database busy, please retry"))
        return self._error(
            ApiError(503, 50301, "system under maintenance, retry later", {"Retry-After": "1"})
        )

    def rename_candidates(self) -> list[tuple[str, str]]:
        return [("householdNo", "household_no"), ("updatedAt", "updated_at")]

    # -- auth and rate limit ----------------------------------------------------------------
    def _rate_limit(self) -> None:
        quota = self.sim.config.rate_limit
        if not quota:
            return
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= quota:
                raise ApiError(429, 42901, "rate limited", {"Retry-After": "1"})
            self._recent.append(now)

    def _token(self, req: Request) -> dict:
        try:
            payload = json.loads(req.body or b"{}")
        except ValueError:
            raise ApiError(400, 40001, "body must be JSON") from None
        creds = self.credentials()
        if not isinstance(payload, dict) or (
            payload.get("appKey"),
            payload.get("appSecret"),
        ) != (creds["key"], creds["secret"]):
            raise ApiError(403, 40301, "invalid appKey or appSecret")
        ttl = int(self.sim.config.token_ttl)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return {"accessToken": token, "expiresIn": ttl}

    def _authorise(self, req: Request) -> None:
        auth = req.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        with self._lock:
            expiry = self._tokens.get(token)
            if expiry is not None and expiry <= time.monotonic():
                del self._tokens[token]
                expiry = None
        if expiry is None:
            raise ApiError(401, 40101, "token missing or expired")

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- rendering --------------------------------------------------------------------------
    def _render(self, entity: str) -> pl.DataFrame:
        """Live, visible records of ``entity`` as pre-encoded JSON rows sorted by (ts, id)."""
        df = live(self.records(entity), self.world.now)
        schema = ENTITIES[entity]
        coded = CODED.get(entity, {})
        exprs = [pl.col("source_key").alias("id")]
        for out, col in FIELDS[entity]:
            dtype = schema[col]
            if col in coded:
                e = map_code(col, bigdata_codes(coded[col]), dtype)
            elif dtype == pl.Date():
                e = pl.col(col).dt.strftime("%Y-%m-%d")
            else:
                e = pl.col(col)
            exprs.append(e.alias(out))
        ts = pl.col("updated_at").dt.epoch("ms")
        out = df.select(*exprs, _iso_ms(ts).alias("updatedAt"), ts.alias("_ts")).sort(["_ts", "id"])
        fields = ["id", *(f for f, _ in FIELDS[entity]), "updatedAt"]
        return pl.DataFrame(
            {"_ts": out["_ts"], "_id": out["id"], "_json": encode_rows(out, fields)}
        )

    def _rendered(self, entity: str) -> pl.DataFrame:
        return self.cache.get(entity, self.state(), lambda: self._render(entity))

    def prepare(self) -> None:
        for entity in PATHS.values():
            self._rendered(entity)
            self._deleted(entity)

    def _deleted(self, entity: str) -> pl.DataFrame:
        def build() -> pl.DataFrame:
            df = self.records(entity, include_deleted=True)
            now = utc(self.world.now)
            df = df.filter(pl.col("deleted_at").is_not_null() & (pl.col("deleted_at") <= now))
            ts = pl.col("deleted_at").dt.epoch("ms")
            out = df.select(
                pl.lit(PLURAL[entity]).alias("entity"),
                pl.col("source_key").alias("id"),
                _iso_ms(ts).alias("deletedAt"),
                ts.alias("_ts"),
            ).sort(["_ts", "id"])
            return pl.DataFrame(
                {
                    "_ts": out["_ts"],
                    "_id": out["id"],
                    "_json": encode_rows(out, ["entity", "id", "deletedAt"]),
                }
            )

        return self.cache.get("deleted:" + entity, self.state(), build)

    # -- endpoints --------------------------------------------------------------------------
    def _limit(self, req: Request) -> int:
        raw = req.query.get("limit")
        if raw is None or raw == "":
            return DEFAULT_LIMIT
        try:
            limit = int(raw)
        except ValueError:
            raise ApiError(400, 40001, f"limit must be an integer in 1..{MAX_LIMIT}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, 40001, f"limit must be an integer in 1..{MAX_LIMIT}")
        return min(limit, self.sim.config.bigdata_page_cap or limit)

    def _page(self, frame: pl.DataFrame, req: Request, after_param: str) -> bytes:
        limit = self._limit(req)
        # no literal predicate: polars 2.1 does not broadcast one in filter (ShapeError)
        conds: list[pl.Expr] = []
        if req.query.get(after_param):
            after_us = _parse_time(req.query[after_param], after_param)
            conds.append(pl.col("_ts") * 1000 > after_us)
        if req.query.get("cursor"):
            ts, key = _decode_cursor(req.query["cursor"])
            conds.append((pl.col("_ts") > ts) | ((pl.col("_ts") == ts) & (pl.col("_id") > key)))
        rest = frame.filter(*conds) if conds else frame
        page = rest.head(limit)
        has_more = rest.height > page.height
        cursor = _encode_cursor(page["_ts"][-1], page["_id"][-1]) if has_more else None
        return (
            b'{"items":'
            + join_json(page["_json"])
            + b',"nextCursor":'
            + json.dumps(cursor).encode()
            + b',"hasMore":'
            + (b"true" if has_more else b"false")
            + b"}"
        )

    def _list(self, entity: str, req: Request) -> bytes:
        return self._page(self._rendered(entity), req, "updatedAfter")

    def _deletions(self, req: Request) -> bytes:
        name = req.query.get("entity")
        if name:
            if name not in PATHS:
                raise ApiError(400, 40001, f"unknown entity {name!r}")
            frame = self._deleted(PATHS[name])
        else:  # all entities, one feed
            frame = pl.concat([self._deleted(e) for e in PATHS.values()]).sort(["_ts", "_id"])
        return self._page(frame, req, "deletedAfter")

    def _stats(self) -> dict:
        now = self.world.now
        counts = {PLURAL[e]: self._rendered(e).height for e in PATHS.values()}
        households = live(self.records("household"), now)
        members = live(self.records("person"), now)
        attribute = map_code("poverty_attribute", bigdata_codes("poverty_attribute"), pl.String())
        hh = households.select("household_no", attribute.alias("attribute"))
        by_hh = hh.group_by("attribute").len()
        by_member = members.join(hh, on="household_no", how="inner").group_by("attribute").len()
        by_attr: dict[str, dict[str, int]] = {}
        for row in by_hh.iter_rows(named=True):
            by_attr.setdefault(row["attribute"], {"households": 0, "members": 0})["households"] = (
                row["len"]
            )
        for row in by_member.iter_rows(named=True):
            by_attr.setdefault(row["attribute"], {"households": 0, "members": 0})["members"] = row[
                "len"
            ]
        return {
            "asOf": now.astimezone(ZoneInfo(SH_TZ)).isoformat(timespec="milliseconds"),
            "counts": counts,
            "byAttribute": dict(sorted(by_attr.items(), key=lambda kv: str(kv[0]))),
        }
