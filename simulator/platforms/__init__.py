"""What the three county platform kinds share: requests/responses, code rendering, deterministic
formatting variants, and the per-world-version render cache.

Each platform renders the World's canonical frames (city codes, ``schemas/columns.py`` layouts)
back into its own representation once per world version, with every row pre-encoded as JSON, so
serving a page is a filter and a slice plus one string join — no per-row Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from seeds import codes

JSON = "application/json; charset=utf-8"
SH_TZ = "Asia/Shanghai"

#: Salt for the deterministic variant hash; fixed so that the same world renders the same bytes.
_HASH_SEED = 20160701


@dataclass
class Request:
    method: str
    path: str  # the path below the county's base URL, e.g. "/api/v2/households"
    query: dict[str, str]  # first value of each parameter, already unquoted
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    import json

    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, JSON, dict(headers or {}))


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Codes
# ---------------------------------------------------------------------------------------------


def bigdata_codes(table: str) -> dict[str, str]:
    """city code → 洛南 platform code (the inverse of ``pipelines.codes.from_bigdata``)."""
    return {city: platform for platform, city in codes.from_bigdata(table).items()}


def label_variants(table: str) -> dict[str, list[str]]:
    """city code → the non-standard labels seen for it (from ``pipelines.codes.from_labels``)."""
    standard = codes.labels(table)
    out: dict[str, list[str]] = {}
    for label, code in codes.from_labels(table).items():
        if label != standard.get(code):
            out.setdefault(code, []).append(label)
    return out


def _map_scalar(expr: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """Map a city code through ``mapping``; an injected unknown code ("!xyz") is emitted as
    "xyz" verbatim, and anything else unmapped passes through unchanged."""
    return (
        pl.when(expr.str.starts_with("!")).then(expr.str.slice(1)).otherwise(expr.replace(mapping))
    )


def map_code(col: str, mapping: dict[str, str], dtype: pl.DataType) -> pl.Expr:
    """``_map_scalar`` for a scalar or list column."""
    if isinstance(dtype, pl.List):
        return pl.col(col).list.eval(_map_scalar(pl.element(), mapping))
    return _map_scalar(pl.col(col), mapping)


def variant_hash(key: pl.Expr, salt: str) -> pl.Expr:
    """A deterministic pseudo-random UInt64 per row, independent per ``salt`` (one per column),
    so that formatting variants are stable across runs of the same world."""
    return pl.concat_str(key, pl.lit("|" + salt)).hash(seed=_HASH_SEED)


def pick(h: pl.Expr, percent: int) -> pl.Expr:
    """True for about ``percent`` % of rows."""
    return (h % 100) < percent


def label_expr(
    col: str, table: str, key: pl.Expr, share: int = 0, dtype: pl.DataType | None = None
) -> pl.Expr:
    """City code → Chinese label; for ``share`` % of rows (by hash of the key) a label variant
    from the code table instead, where the code has one. List columns are joined with ","."""
    std = codes.labels(table)
    variants = label_variants(table) if share else {}
    width = max((len(v) for v in variants.values()), default=0)

    def one(e: pl.Expr, h: pl.Expr | None) -> pl.Expr:
        out = _map_scalar(e, std)
        if h is None or not width:
            return out
        # variant k of each code (cycling when a code has fewer than `width` variants)
        choose = pl.lit(None, pl.String)
        for k in reversed(range(width)):
            m = {code: vs[k % len(vs)] for code, vs in variants.items()}
            choose = (
                pl.when((h // 100) % width == k)
                .then(e.replace_strict(m, default=out))
                .otherwise(choose)
            )
        return pl.when(pick(h, share) & ~e.str.starts_with("!")).then(choose).otherwise(out)

    if isinstance(dtype, pl.List):
        # lists (health, other causes): one variant decision per row, not per element
        return pl.col(col).list.eval(one(pl.element(), None)).list.join(",")
    return one(pl.col(col), variant_hash(key, col) if share else None)


# ---------------------------------------------------------------------------------------------
# Number / date formatting (vectorised; polars has no format specifiers)
# ---------------------------------------------------------------------------------------------


def fixed2(expr: pl.Expr, thousands: bool = False) -> pl.Expr:
    """A number with exactly two decimals ("3520.50"), optionally with thousands separators."""
    cents = (expr.abs() * 100).round(0).cast(pl.Int64)
    whole = cents // 100
    frac = (cents % 100).cast(pl.String).str.zfill(2)
    if thousands:
        millions, rest = whole // 1_000_000, whole % 1_000_000
        thousands_, units = rest // 1000, rest % 1000
        whole_s = (
            pl.when(millions > 0)
            .then(
                pl.concat_str(
                    millions.cast(pl.String),
                    pl.lit(","),
                    thousands_.cast(pl.String).str.zfill(3),
                    pl.lit(","),
                    units.cast(pl.String).str.zfill(3),
                )
            )
            .when(thousands_ > 0)
            .then(
                pl.concat_str(
                    thousands_.cast(pl.String), pl.lit(","), units.cast(pl.String).str.zfill(3)
                )
            )
            .otherwise(units.cast(pl.String))
        )
    else:
        whole_s = whole.cast(pl.String)
    sign = pl.when(expr < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(sign, whole_s, pl.lit("."), frac)


def short_number(expr: pl.Expr) -> pl.Expr:
    """A number without trailing zeros ("3520.5", "3520"), as a clerk types it."""
    s = fixed2(expr)
    return s.str.strip_suffix(".00").str.replace(r"(\.\d)0$", "$1")


def text(expr: pl.Expr) -> pl.Expr:
    """Any value as text, null → "" (the battle platform's empty)."""
    return expr.cast(pl.String).fill_null("")


def yes_no(expr: pl.Expr) -> pl.Expr:
    return (
        pl.when(expr).then(pl.lit("是")).when(expr.not_()).then(pl.lit("否")).otherwise(pl.lit(""))
    )


def ymd(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime("%Y-%m-%d").fill_null("")


def live(df: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Rows that exist and are visible at ``now``: not deleted, and committed (visible_at)."""
    now_utc = utc(now)
    cond = pl.col("deleted_at").is_null() | (pl.col("deleted_at") > now_utc)
    # A record exists on the platform once its first write committed; a later update still in
    # flight does not hide it (the platform serves it meanwhile).
    visible = "first_visible_at" if "first_visible_at" in df.columns else "visible_at"
    if visible in df.columns:
        cond = cond & (pl.col(visible).is_null() | (pl.col(visible) <= now_utc))
    return df.filter(cond)


def encode_rows(df: pl.DataFrame, columns: list[str] | None = None) -> pl.Series:
    """One compact JSON object per row (field order as given), as a String series."""
    cols = columns or df.columns
    return df.select(pl.struct(cols).struct.json_encode().alias("_json")).to_series()


def join_json(rows: pl.Series) -> bytes:
    """``[row,row,…]`` from pre-encoded rows."""
    if rows.len() == 0:
        return b"[]"
    return b"[" + rows.str.join(",").item().encode() + b"]"


class RenderCache:
    """Rendered frames per (entity, world state). A world state is identified by the world's
    clock plus a platform-local revision (bumped by changes the platform makes itself, e.g. the
    churn fault), so an advance of the clock invalidates everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple, Any]] = {}
        self._building: dict[str, threading.Lock] = {}

    def get(self, name: str, state: tuple, build: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._entries.get(name)
            if hit and hit[0] == state:
                return hit[1]
            build_lock = self._building.setdefault(name, threading.Lock())
        with build_lock:  # one build per entry; concurrent readers wait for it
            with self._lock:
                hit = self._entries.get(name)
                if hit and hit[0] == state:
                    return hit[1]
            value = build()
            with self._lock:
                self._entries[name] = (state, value)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Platform:
    """Base of the three platform kinds: one instance serves one county."""

    kind = ""

    def __init__(self, sim: Any, county: Any) -> None:
        self.sim = sim  # server.Simulator: world, config, faults
        self.county = county  # pipelines.registry.County
        self.cache = RenderCache()
        self.revision = 0  # platform-local changes (churn)

    @property
    def world(self):
        return self.sim.world

    def state(self) -> tuple:
        return (self.world.now, self.revision)

    def records(self, entity: str, include_deleted: bool = False) -> pl.DataFrame:
        with self.world.lock:
            return self.world.records(self.county.code, entity, include_deleted=include_deleted)

    # -- overridden by each kind ---------------------------------------------------------------
    def classify(self, req: Request) -> str | None:
        """The label faults match on: a canonical entity name, "deletions:<entity>", "stats",
        "index", "file", "auth"; None for paths the platform does not serve."""
        raise NotImplementedError

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def fault_response(self, kind: str) -> Response:
        """The platform's own answer for the ``busy`` and ``maintenance`` faults."""
        raise NotImplementedError

    def expire_tokens(self) -> None:
        """Invalidate every token/session issued so far (the ``expire_token`` fault)."""

    def rename_candidates(self) -> list[tuple[str, str]]:
        """(field, new name) pairs the ``rename_field`` fault tries, in order, when the fault
        names no field: the first one present in the response is renamed."""
        return [("updatedAt", "updated_at")]

    def credentials(self) -> dict[str, str]:
        return {"key": f"{self.county.slug}-app", "secret": f"sim-{self.county.slug}-secret"}

    def on_clock(self) -> None:
        """Called after the clock advanced (workbook exports)."""

    def prepare(self) -> None:
        """Build what the first request of each listing would build for the current clock.

        A real platform's rows sit in its database before anyone asks; the simulator renders
        a county's whole listing (JSON rows, sorted) on the first request after its clock
        moves. Benchmarks call this before they start timing, so that rendering is not
        counted as the platform's serving (bench/README.md, "The incremental's floor")."""
