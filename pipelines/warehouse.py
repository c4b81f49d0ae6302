"""DuckDB access for the hub: migrations, the per-county merge, the marts and the snapshot.

DuckDB is single-writer (DESIGN decision 4): every function here that writes takes a connection
opened with :func:`connect` by a step in the ``duckdb_warehouse`` pool, and :func:`connect`
closes it in ``finally``. Analysts never open the live file; :func:`publish_snapshot` copies
``core``, ``ops`` and ``mart`` into a read-only snapshot and swaps it in atomically.

The SQL lives in ``warehouse/``: ``migrations/NNN_*.sql`` (DDL, applied once each, in order),
``sql/merge/*.sql`` (named statements, ``-- name: <id>``, whose ``{placeholders}`` are
identifiers and column lists generated here from ``schemas.columns``; values are always
``$parameters``) and ``sql/marts/NN_*.sql`` (run in order by :func:`rebuild_marts`).

``person_key`` is HMAC-SHA256 of the ID number keyed with ``HUB_PII_KEY`` (hex; checked by
``pipelines.settings.pii_key``: the production profile refuses a missing, short or development
key; the demo profile falls back to the published development key).

The live file records the profile that created it (``ops.hub_profile``); :func:`connect` refuses
to open it read-write from the other profile, so simulated people never reach a real warehouse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines import paths, region_seed, settings, warehouse_lock
from pipelines.errors import SafetyStop, redact_text, redact_url
from schemas.columns import ENTITIES, ENTITY_ORDER, KEYS
from schemas.sanity import watermark_in_future

log = logging.getLogger(__name__)

MIGRATIONS_DIR = paths.WAREHOUSE_SQL / "migrations"
MERGE_DIR = paths.WAREHOUSE_SQL / "sql" / "merge"
MARTS_DIR = paths.WAREHOUSE_SQL / "sql" / "marts"


#: Default share of a county's live rows of an entity that one sync may soft-delete.
DEFAULT_SAFETY_SHARE = 0.2

HISTORY_ENTITIES = ("household", "person")
#: Entities whose rows hang off a household (rejected with it when its household is).
CHILD_ENTITIES = ("person", "measure", "loan", "household_cadre")
ISSUE_COLUMNS = ("entity", "source_key", "rule", "column_name", "value", "message", "raw_ref")


def quiet(con: duckdb.DuckDBPyConnection) -> None:
    """Pipeline connections print nothing: DuckDB's progress bar would draw unlabelled bars from
    every step process into the terminal (and into the logs)."""
    con.execute("SET enable_progress_bar = false")


# --------------------------------------------------------------------------------------------
# connection and migrations


@contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (default: the live file), migrate it when read-write, always close.

    Holds the warehouse lock (``pipelines.warehouse_lock``: exclusive when read-write, shared
    when read-only) from before the open until after the close, waiting politely for another
    writer. Opening the live file read-write also seeds core.region with the known divisions
    (when the list changed) and records the run failures the Dagster sensor queued (sensors
    never open the warehouse themselves); closing it writes the commit record that tells
    landings whether their cached cursors are the warehouse's (``pipelines.cursors``)."""
    path = Path(path) if path is not None else paths.live_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    is_live = path.resolve() == paths.live_db().resolve()
    # readers of other files (the snapshot) need no lock: only the live file has writers
    lock = (
        warehouse_lock.hold(path, shared=read_only, purpose="read" if read_only else "write")
        if is_live or not read_only
        else nullcontext()
    )
    with lock:
        con = duckdb.connect(str(path), read_only=read_only)
        owners = None
        try:
            quiet(con)
            if not read_only:
                migrate(con)
                check_profile(con, path)
                if is_live:
                    region_seed.seed_regions(
                        con, _entities(con)["region"].identifiers()["hash_fields"]
                    )
                    record_queued_failures(con)
            yield con
            if not read_only and is_live:
                from pipelines import cursors

                owners = cursors.owners(con)
        finally:
            con.close()
            if is_live and not read_only:
                from pipelines import cursors

                if owners is None:  # the work failed: landings read the file's own cursors
                    cursors.forget_commit_record()
                else:
                    cursors.write_commit_record(path, owners)


def wal_path(db_path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside a file until it checkpoints."""
    return db_path.with_name(db_path.name + ".wal")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after an error, never hiding that error: when the rollback fails too (disk
    full at COMMIT leaves "no transaction is active"), it is logged and the caller re-raises
    the original; closing the connection discards whatever the transaction had written."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.warning("ROLLBACK failed after an error (%s); the original error follows", exc)


class ProfileMismatch(RuntimeError):
    """The warehouse was created by the other profile (demo vs production)."""

    def __init__(self, recorded: str, current: str, path: Path | str) -> None:
        advice = (
            "simulated demo data never goes into a production warehouse; run the demo with "
            "another HUB_HOME (or HUB_WAREHOUSE)."
            if current == "demo"
            else "it holds simulated people; give production its own HUB_HOME (or "
            "HUB_WAREHOUSE), or run this with HUB_PROFILE=demo."
        )
        super().__init__(
            f"{path} was created by the {recorded} profile and may not be written by the "
            f"{current} profile (HUB_PROFILE={current}): {advice}"
        )
        self.recorded, self.current = recorded, current


def check_profile(con: duckdb.DuckDBPyConnection, path: Path | str = "the warehouse") -> str:
    """Record this process's profile in a new warehouse; refuse one created by the other profile.
    A warehouse from before profiles were recorded is adopted by the first profile to write it."""
    current = settings.profile()
    row = con.execute("SELECT profile FROM ops.hub_profile LIMIT 1").fetchone()
    if row is None:
        con.execute("INSERT INTO ops.hub_profile VALUES (?, now())", [current])
        return current
    if row[0] != current:
        raise ProfileMismatch(row[0], current, path)
    return current


def recorded_profile(path: Path | str | None = None) -> str | None:
    """The profile recorded in the warehouse at ``path`` (default: the live file), or None when
    it does not exist yet, records none, or is open by a writer right now."""
    path = Path(path) if path is not None else paths.live_db()
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            if not _table_exists(con, "ops", "hub_profile"):
                return None
            row = con.execute("SELECT profile FROM ops.hub_profile LIMIT 1").fetchone()
    except duckdb.Error:  # locked by a running writer: connect() checks when it writes
        return None
    return row[0] if row else None


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet in ``ops.schema_migration``, in order, each in its own
    transaction. Returns the names applied. An applied file that has since changed is reported,
    not re-run: schema changes go in a new migration."""
    applied: dict[int, str] = {}
    if _table_exists(con, "ops", "schema_migration"):
        applied = dict(con.execute("SELECT version, checksum FROM ops.schema_migration").fetchall())
    done = []
    for file in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        version, text = int(file.name[:3]), file.read_text(encoding="utf-8")
        checksum = hashlib.sha256(text.encode()).hexdigest()
        if version in applied:
            if applied[version] != checksum:
                log.warning("migration %s changed after it was applied; not re-run", file.name)
            continue
        con.execute("BEGIN")
        try:
            con.execute(text)
            con.execute(
                "INSERT INTO ops.schema_migration VALUES (?, ?, ?, now())",
                [version, file.name, checksum],
            )
            con.execute("COMMIT")
        except BaseException:
            rollback(con)
            raise
        done.append(file.name)
    return done


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return _table_exists(con, schema, table)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


# --------------------------------------------------------------------------------------------
# SQL files


@cache
def _statements(file: str) -> dict[str, str]:
    """The named statements of ``warehouse/sql/merge/<file>`` (``-- name: <id>`` blocks), their
    comment lines dropped (they are for the reader, and may mention placeholders)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (MERGE_DIR / file).read_text(encoding="utf-8").splitlines():
        if m := re.match(r"--\s*name:\s*(\w+)\s*$", line):
            current = blocks.setdefault(m.group(1), [])
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}


_PARAM = re.compile(r"\$([a-z_]+)")


def _run(
    con: duckdb.DuckDBPyConnection,
    file: str,
    name: str,
    params: Mapping[str, Any],
    **identifiers: str,
) -> duckdb.DuckDBPyConnection:
    """Run one named statement; ``identifiers`` fill its ``{placeholders}``, and only the
    ``$parameters`` it uses are passed (DuckDB rejects unused ones)."""
    sql = _statements(file)[name].format(**identifiers) if identifiers else _statements(file)[name]
    used = {p: params[p] for p in set(_PARAM.findall(sql))}
    return con.execute(sql, used) if used else con.execute(sql)


def _q(column: str) -> str:
    return f'"{column}"'


@dataclass(frozen=True)
class _Entity:
    """Identifiers of one entity for the merge templates, from ``schemas.columns``."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]  # contract columns, as in the canonical frame
    types: Mapping[str, str]  # core column -> DuckDB type

    @property
    def stored(self) -> tuple[str, ...]:
        """Contract columns plus what the merge derives from them (person_key)."""
        return (*self.columns, "person_key") if self.name == "person" else self.columns

    def join(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(k)} = {right}.{_q(k)}" for k in self.keys)

    def identifiers(self) -> dict[str, str]:
        casts = [f"CAST({_q(c)} AS {self.types[c]})" for c in self.columns]
        return {
            "entity": self.name,
            "stage": f"_stage_{self.name}",
            "frame": f"_frame_{self.name}",
            "casts": ", ".join(
                f"{cast} AS {_q(c)}" for cast, c in zip(casts, self.columns, strict=True)
            )
            + ", _row",
            "hash_fields": ", ".join(
                f"{_q(c)} := {cast}" for cast, c in zip(casts, self.columns, strict=True)
            ),
            "key_cols": ", ".join(_q(k) for k in self.keys),
            "key_cols_c": ", ".join(f"c.{_q(k)}" for k in self.keys),
            "key_col": self.keys[0],
            "key_text": " || ':' || ".join(f"s.{_q(k)}" for k in self.keys),
            "key_join_cs": self.join("c", "s"),
            "key_join_hs": self.join("h", "s"),
            "key_join_cg": self.join("c", "g"),
            "key_join_hg": self.join("h", "g"),
            "person_key": (
                "\n       sha256($opad || unhex(sha256($ipad || encode(id_number)))) AS person_key,"
                if self.name == "person"
                else ""
            ),
            "update_set": ", ".join(f"{_q(c)} = s.{_q(c)}" for c in self.stored),
            "insert_cols": ", ".join(_q(c) for c in self.stored),
            "insert_vals": ", ".join(f"s.{_q(c)}" for c in self.stored),
        }


def _entities(con: duckdb.DuckDBPyConnection) -> dict[str, _Entity]:
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'core'"
    ).fetchall()
    types: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        types.setdefault(table, {})[column] = data_type
    return {
        e: _Entity(e, KEYS[e], tuple(ENTITIES[e]), types[e]) for e in ENTITY_ORDER if e in types
    }


# --------------------------------------------------------------------------------------------
# person_key


def pii_key() -> bytes:
    """The person_key key bytes (``pipelines.settings.pii_key``: checked for the profile)."""
    return settings.pii_key()


def _hmac_pads(key: bytes) -> dict[str, bytes]:
    """The inner and outer pads of HMAC-SHA256 (RFC 2104) for ``key``: the SQL then needs only
    two sha256 calls per row."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return {
        "ipad": bytes(b ^ 0x36 for b in key),
        "opad": bytes(b ^ 0x5C for b in key),
    }


def person_key(id_number: str) -> str:
    """person_key of one ID number, in Python (for tests and look-ups, not the record path)."""
    import hmac

    return hmac.new(pii_key(), id_number.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# merge


@dataclass(frozen=True)
class MergeResult:
    """What one county merge wrote. ``counts``: entity -> fetched, accepted, rejected, findings,
    deleted, inserted, updated, unchanged (the ops.sync_run columns)."""

    sync_run_id: str
    county_code: str
    counts: dict[str, dict[str, int]]
    pages: int
    conflicts_open: int  # open ops.conflict rows involving this county after the merge
    finished_at: datetime

    def total(self, column: str) -> int:
        return sum(c[column] for c in self.counts.values())


@dataclass
class _Batch:
    """The bookkeeping of one merge: parameters and the Arrow views it registered."""

    con: duckdb.DuckDBPyConnection
    params: dict[str, Any]
    views: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)

    def register(self, name: str, frame: pl.DataFrame) -> str:
        self.con.register(name, frame.to_arrow())
        self.views.append(name)
        return name

    def run(self, file: str, name: str, **identifiers: str) -> duckdb.DuckDBPyConnection:
        return _run(self.con, file, name, self.params, **identifiers)

    def temp(self, name: str) -> str:
        self.temps.append(name)
        return name

    def release(self) -> None:
        for name in self.views:
            with suppress(duckdb.Error):
                self.con.unregister(name)
        for name in self.temps:
            with suppress(duckdb.Error):
                self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def merge_county(
    con: duckdb.DuckDBPyConnection,
    county: Any,
    sync_run_id: str,
    mode: str,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any,
    started_at: datetime,
    *,
    safety_share: float = DEFAULT_SAFETY_SHARE,
    now: datetime | None = None,
    replay_of: str | None = None,
) -> MergeResult:
    """Merge one county sync into the warehouse in ONE transaction (Contract 5).

    ``staged`` is the normaliser's ``Staged``, ``validated`` maps entity -> ``Validated``
    (accepted / rejects / findings / conflicts), ``manifest`` has ``.pages``. Writes raw.page,
    ops.reject / ops.finding, the core upserts and history versions, soft deletes, ops.conflict,
    ops.watermark and ops.sync_run, or nothing: any error rolls everything back.

    - A row whose contract columns are unchanged (same ``row_hash``) only gets
      ``last_synced_at``/``sync_run_id``; a changed one is updated and, for household and
      person, its history version closed and a new one opened; a soft-deleted row that comes
      back is revived (``deleted_at`` cleared, new version).
    - Soft deletes come from ``staged.deletions`` and, for entities in ``staged.full_listing``,
      from absence (rejected rows count as listed). If more than ``safety_share`` of the
      county's live rows of an entity would disappear, :class:`SafetyStop` is raised and nothing
      is written. Members of a deleted household are deleted with it.
    - A key live in core under another county is not taken over: the claim is rejected
      (``key_owned_by_other_county``; its children ``parent_rejected``) and a household_no
      claim recorded in ops.conflict.
    - ID-number conflicts (validation's, and accepted persons whose ID number a live person with
      another person_no holds, in any county) go to ops.conflict, resolution ``keep_first_seen``:
      the record first seen wins, ties to the smaller person_no (see 60_conflicts.sql).

    ``now`` (default: the wall clock) stamps every row of the merge; tests pass it to place
    versions on chosen dates. ``replay_of``: the landing's sync id when this merge replays it
    under a new ``sync_run_id`` (ops.sync_run.replay_of), so the original run's audit stays.
    """
    now = now or datetime.now(UTC)
    batch = _Batch(
        con,
        {
            "county": county.code,
            "platform": county.kind,
            "run": sync_run_id,
            "mode": mode,
            "now": now,
            "started": started_at,
            "replay_of": replay_of,
            **_hmac_pads(pii_key()),
        },
    )
    con.execute("BEGIN")
    try:
        result = _merge(batch, county, staged, validated, manifest, safety_share)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    finally:
        batch.release()
    return result


def _merge(
    batch: _Batch,
    county: Any,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any,
    safety_share: float,
) -> MergeResult:
    con = batch.con
    entities = _entities(con)
    marks_before = watermarks(con, county.code)
    live_before = _live_counts(con, county.code, entities)

    pages = _pages_frame(manifest)
    if pages.height:
        batch.run("70_bookkeeping.sql", "pages", pages=batch.register("_pages", pages))

    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {batch.temp("_merge_reject")} (
            entity VARCHAR, source_key VARCHAR, rule VARCHAR, column_name VARCHAR,
            value VARCHAR, message VARCHAR, raw_ref VARCHAR,
            owner_county VARCHAR, owner_source_key VARCHAR)"""
    )

    # Upserts, parents first so a rejected household claim rejects its children.
    change_counts: dict[str, dict[str, int]] = {}
    for entity in entities:
        result = validated.get(entity)
        if result is None:
            continue
        change_counts[entity] = _upsert_entity(batch, entities[entity], result.accepted)

    gone = _soft_delete(batch, county, staged, validated, entities, live_before, safety_share)
    _record_conflicts(batch, staged, validated, "person" in change_counts)
    _record_issues(batch, validated)
    _record_quarantine(batch, staged, validated)
    merge_rejects = dict(
        con.execute(
            "SELECT entity, count(DISTINCT source_key) FROM _merge_reject GROUP BY entity"
        ).fetchall()
    )
    batch.run("70_bookkeeping.sql", "merge_rejects")

    _drop_stale_watermarks(con, county, staged)
    # a time in the future never becomes a watermark, even from a landing staged by older code
    believable = {k: str(v) for k, v in staged.watermarks.items() if not watermark_in_future(v)}
    if believable:
        marks = pl.DataFrame({"name": list(believable), "value": list(believable.values())})
        batch.run("70_bookkeeping.sql", "watermarks", marks=batch.register("_marks", marks))

    counts = {}
    for entity in _run_entities(staged, validated):
        v = validated.get(entity)
        changes = change_counts.get(entity, {"inserted": 0, "updated": 0, "unchanged": 0})
        counts[entity] = {
            "fetched": _fetched(staged, v, entity),
            "accepted": sum(changes.values()),
            "rejected": (_distinct_keys(v.rejects) if v is not None else 0)
            + merge_rejects.get(entity, 0),
            "findings": v.findings.height if v is not None else 0,
            "deleted": gone.get(entity, 0),
            **changes,
        }
    finished = datetime.now(UTC)
    _write_runs(batch, county, staged, counts, marks_before, "succeeded", None, finished)
    open_conflicts = con.execute(
        "SELECT count(*) FROM ops.conflict WHERE resolved_at IS NULL "
        "AND $county IN (county_code_a, county_code_b)",
        {"county": county.code},
    ).fetchone()[0]
    return MergeResult(
        sync_run_id=batch.params["run"],
        county_code=county.code,
        counts=counts,
        pages=pages.height,
        conflicts_open=open_conflicts,
        finished_at=finished,
    )


def _upsert_entity(batch: _Batch, spec: _Entity, accepted: pl.DataFrame) -> dict[str, int]:
    """Stage, screen claims, version and upsert one entity's accepted rows."""
    ids = spec.identifiers()
    frame = accepted.with_row_index("_row").select(
        *spec.columns, "_row", "source_key", "source_updated_at", "raw_ref"
    )
    batch.register(ids["frame"], frame)
    batch.temp(ids["stage"])
    batch.run("10_stage.sql", "stage", **ids)
    batch.run("20_claims.sql", "claims", **ids)
    if spec.name in CHILD_ENTITIES:
        batch.run("20_claims.sql", "parent_claims", **ids)
    batch.run("20_claims.sql", "drop_claims", **ids)
    if spec.name == "household":
        batch.run("20_claims.sql", "household_conflicts", **ids)
    inserted, updated, unchanged = batch.run("10_stage.sql", "counts", **ids).fetchone()
    if spec.name in HISTORY_ENTITIES:
        batch.run("30_history.sql", "close_changed", **ids)
        batch.run("30_history.sql", "open_versions", **ids)
    batch.run("40_upsert.sql", "upsert", **ids)
    return {"inserted": inserted, "updated": updated, "unchanged": unchanged}


def _soft_delete(
    batch: _Batch,
    county: Any,
    staged: Any,
    validated: Mapping[str, Any],
    entities: Mapping[str, _Entity],
    live_before: Mapping[str, int],
    safety_share: float,
) -> dict[str, int]:
    """Find the rows that disappear (feed, absence), apply the safety stop, then delete them
    and the members of deleted households. Returns entity -> rows deleted."""
    con = batch.con
    candidates: dict[str, int] = {}
    for entity, spec in entities.items():
        ids = spec.identifiers()
        batch.temp(f"_gone_{entity}")
        batch.run("50_soft_delete.sql", "gone_table", **ids)
        feed = staged.deletions.get(entity)
        if feed is not None and feed.height:
            feed = feed.select(
                pl.col("source_key").cast(pl.String), pl.col("deleted_at").cast(pl.String)
            )
            view = batch.register(f"_deletions_{entity}", feed)
            batch.run("50_soft_delete.sql", "by_feed", deletions=view, **ids)
        if entity in staged.full_listing:
            view = batch.register(f"_listing_{entity}", _listing(staged, validated, entity))
            batch.run("50_soft_delete.sql", "by_absence", listing=view, **ids)
        candidates[entity] = con.execute(f"SELECT count(*) FROM _gone_{entity}").fetchone()[0]
        live = live_before.get(entity, 0)
        if live and candidates[entity] / live > safety_share:
            raise SafetyStop(county.label, entity, candidates[entity], live, safety_share)
    if candidates.get("household") and "person" in entities:
        batch.run("50_soft_delete.sql", "cascade_persons")
    gone = {}
    for entity, spec in entities.items():
        n = con.execute(f"SELECT count(*) FROM _gone_{entity}").fetchone()[0]
        if not n:
            continue
        ids = spec.identifiers()
        batch.run("50_soft_delete.sql", "apply", **ids)
        if entity in HISTORY_ENTITIES:
            batch.run("50_soft_delete.sql", "close_history", **ids)
        gone[entity] = n
    return gone


def _listing(staged: Any, validated: Mapping[str, Any], entity: str) -> pl.DataFrame:
    """Every key a full listing delivered: accepted and rejected rows alike."""
    parts = [pl.DataFrame(schema={"source_key": pl.String})]
    if (frame := staged.frames.get(entity)) is not None:
        parts.append(frame.select(pl.col("source_key").cast(pl.String)))
    if (v := validated.get(entity)) is not None:
        parts.append(v.rejects.select(pl.col("source_key").cast(pl.String)))
    return pl.concat(parts).drop_nulls().unique()


def _record_conflicts(
    batch: _Batch, staged: Any, validated: Mapping[str, Any], persons_staged: bool
) -> None:
    listed = "household" in staged.full_listing
    if not listed:  # the household-claim resolution reads this view in every merge
        batch.register("_listing_household", pl.DataFrame(schema={"source_key": pl.String}))
    batch.params["household_listed"] = listed
    batch.run("60_conflicts.sql", "resolve_id_conflicts")
    batch.run("60_conflicts.sql", "resolve_household_conflicts")
    batch.temp("_id_pair")
    batch.run("60_conflicts.sql", "id_pairs_table")
    person = validated.get("person")
    conflicts = getattr(person, "conflicts", None) if person is not None else None
    if conflicts is not None and conflicts.height:
        view = batch.register(
            "_conflicts",
            conflicts.select(
                pl.col(c).cast(pl.String) for c in ("id_number", "source_key", "other_source_key")
            ),
        )
        batch.run("60_conflicts.sql", "id_pairs_validated", conflicts=view)
    if persons_staged:
        batch.run("60_conflicts.sql", "id_pairs_core")
    batch.run("60_conflicts.sql", "record_id_conflicts")


def _issues(validated: Mapping[str, Any], attribute: str) -> pl.DataFrame:
    frames = [
        getattr(v, attribute).select(pl.col(c).cast(pl.String) for c in ISSUE_COLUMNS)
        for v in validated.values()
        if getattr(v, attribute) is not None and getattr(v, attribute).height
    ]
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema=dict.fromkeys(ISSUE_COLUMNS, pl.String))
    )


def _record_quarantine(batch: _Batch, staged: Any, validated: Mapping[str, Any]) -> None:
    """Keep every rejected record itself (as normalised) in ops.quarantine."""
    parts = []
    for entity, v in validated.items():
        frame = staged.frames.get(entity)
        if frame is None or v.rejects.height == 0:
            continue
        rejected = frame.filter(
            pl.col("source_key").is_in(v.rejects["source_key"].unique().implode())
        )
        parts.append(
            rejected.select(
                pl.lit(entity).alias("entity"),
                "source_key",
                "raw_ref",
                pl.struct(pl.all()).struct.json_encode().alias("record"),
            )
        )
    if parts:
        rows = batch.register("_quarantine", pl.concat(parts))
        batch.run("70_bookkeeping.sql", "quarantine", rows=rows)


def _record_issues(batch: _Batch, validated: Mapping[str, Any], findings: bool = True) -> None:
    targets = {"rejects": "ops.reject", "findings": "ops.finding"}
    for attribute, target in targets.items():
        if attribute == "findings" and not findings:
            continue
        issues = _issues(validated, attribute)
        if issues.height:
            view = batch.register(f"_{attribute}", issues)
            batch.run("70_bookkeeping.sql", "issues", issues=view, target=target)


def _write_runs(
    batch: _Batch,
    county: Any,
    staged: Any,
    counts: Mapping[str, Mapping[str, int]],
    marks_before: Mapping[str, str],
    status: str,
    error: str | None,
    finished: datetime,
) -> None:
    columns = ("fetched", "accepted", "rejected", "findings", "deleted")
    columns += ("inserted", "updated", "unchanged")
    rows = [
        {
            "entity": entity,
            **{c: int(n.get(c, 0)) for c in columns},
            "source_count": staged.source_counts.get(entity),
            "watermark_before": _watermark_for(entity, marks_before),
            "watermark_after": _watermark_for(entity, staged.watermarks)
            if status == "succeeded"
            else None,
        }
        for entity, n in counts.items()
    ]
    schema = {
        "entity": pl.String,
        **dict.fromkeys(columns, pl.Int64),
        "source_count": pl.Int64,
        "watermark_before": pl.String,
        "watermark_after": pl.String,
    }
    runs = pl.DataFrame(rows, schema=schema)
    batch.params.update(status=status, error=error, finished=finished)
    batch.run("70_bookkeeping.sql", "sync_runs", runs=batch.register("_runs", runs))


def _drop_stale_watermarks(con: duckdb.DuckDBPyConnection, county: Any, staged: Any) -> None:
    """An entity listed in full whose sync set no watermark (it saw no believable time) starts
    afresh: its old watermark, possibly poisoned, must not survive the full listing."""
    gone = [e for e in staged.full_listing if e not in staged.watermarks]
    if gone:
        con.execute(
            "DELETE FROM ops.watermark WHERE county_code = ? AND list_contains(?, name)",
            [county.code, gone],
        )


def _watermark_for(entity: str, marks: Mapping[str, str]) -> str | None:
    """The watermark of ``entity``: named ``<entity>`` or ``<anything>:<entity>``."""
    found = {k: v for k, v in marks.items() if k.split(":")[-1] == entity}
    if not found:
        return None
    return next(iter(found.values())) if len(found) == 1 else json.dumps(found, sort_keys=True)


def _run_entities(staged: Any, validated: Mapping[str, Any]) -> list[str]:
    seen = set(staged.frames) | set(validated) | set(staged.deletions)
    return [e for e in ENTITY_ORDER if e in seen]


def _fetched(staged: Any, v: Any, entity: str) -> int:
    frame = staged.frames.get(entity)
    if frame is not None:
        return frame.height
    return (v.accepted.height + _distinct_keys(v.rejects)) if v is not None else 0


def _distinct_keys(issues: pl.DataFrame | None) -> int:
    return issues["source_key"].n_unique() if issues is not None and issues.height else 0


def _live_counts(
    con: duckdb.DuckDBPyConnection, county_code: str, entities: Iterable[str]
) -> dict[str, int]:
    sql = " UNION ALL ".join(
        f"SELECT '{e}', count(*) FROM core.{e} WHERE county_code = $county AND deleted_at IS NULL"
        for e in entities
    )
    return dict(con.execute(sql, {"county": county_code}).fetchall())


def _pages_frame(manifest: Any) -> pl.DataFrame:
    """raw.page rows of a manifest (one per landed page: a few hundred, not records)."""
    schema = {
        "page_id": pl.String,
        "entity": pl.String,
        "url": pl.String,
        "fetched_at": pl.String,
        "sha256": pl.String,
        "size": pl.Int64,
        "content_type": pl.String,
        "path": pl.String,
        "meta": pl.String,
    }
    pages = getattr(manifest, "pages", None) or ()
    rows = [
        {
            "page_id": p.page_id,
            "entity": p.entity,
            "url": redact_url(p.url),
            "fetched_at": str(p.fetched_at),
            "sha256": p.sha256,
            "size": p.size,
            "content_type": p.content_type,
            "path": str(p.path),
            "meta": json.dumps(p.meta or {}, ensure_ascii=False, default=str),
        }
        for p in pages
    ]
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------------------------
# refused and failed syncs


def reject_counts(validated: Mapping[str, Any]) -> tuple[int, int]:
    """(rejected, total) records of a sync, counting distinct source keys."""
    rejected = sum(_distinct_keys(v.rejects) for v in validated.values())
    return rejected, rejected + sum(v.accepted.height for v in validated.values())


def reject_rate(validated: Mapping[str, Any]) -> float:
    """Share of the records of a sync that validation rejected (distinct source keys)."""
    rejected, total = reject_counts(validated)
    return rejected / total if total else 0.0


def top_reasons(validated: Mapping[str, Any], n: int = 5) -> list[dict]:
    """The ``n`` most frequent reject reasons: dicts with entity, rule, column_name, records
    (distinct rejected records) and message (one example), most frequent first."""
    issues = _issues(validated, "rejects")
    if not issues.height:
        return []
    top = (
        issues.group_by("entity", "rule", "column_name")
        .agg(records=pl.col("source_key").n_unique(), message=pl.col("message").first())
        .sort(["records", "entity", "rule"], descending=[True, False, False])
        .head(n)
    )
    return top.to_dicts()


def refuse_sync(
    con: duckdb.DuckDBPyConnection,
    county: Any,
    sync_run_id: str,
    mode: str,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any = None,
    started_at: datetime | None = None,
    *,
    reason: str | None = None,
    replay_of: str | None = None,
) -> None:
    """Record a sync refused for its reject rate: its ops.sync_run rows (status ``refused``) and
    ops.reject rows, nothing else; the county's data and watermarks stay as they were.
    ``accepted`` in those rows counts what passed validation (and was not written)."""
    now = datetime.now(UTC)
    if reason is None:
        rate = reject_rate(validated)
        threshold = getattr(county, "reject_threshold", None)
        reasons = ", ".join(
            f"{r['entity']}.{r['rule']} ×{r['records']}" for r in top_reasons(validated)
        )
        limit = f" above the threshold of {threshold:.1%}" if threshold is not None else ""
        reason = f"refused: reject rate {rate:.1%}{limit}; top reasons: {reasons or 'none'}"
    batch = _Batch(
        con,
        {
            "county": county.code,
            "run": sync_run_id,
            "mode": mode,
            "now": now,
            "replay_of": replay_of,
        },
    )
    batch.params["started"] = started_at or now
    con.execute("BEGIN")
    try:
        marks_before = watermarks(con, county.code)
        _record_issues(batch, validated, findings=False)
        counts = {
            entity: {
                "fetched": _fetched(staged, validated.get(entity), entity),
                "accepted": validated[entity].accepted.height if entity in validated else 0,
                "rejected": _distinct_keys(validated[entity].rejects) if entity in validated else 0,
            }
            for entity in _run_entities(staged, validated)
        }
        _write_runs(batch, county, staged, counts, marks_before, "refused", reason, now)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    finally:
        batch.release()


_URL = re.compile(r"https?://\S+")


def _clean_error(error: str, limit: int = 4000) -> str:
    """An error message safe to store: URLs lose credentials, bearer tokens are masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), redact_text(str(error)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_failure(
    con: duckdb.DuckDBPyConnection,
    sync_run_id: str,
    county_code: str | None,
    error: str,
    *,
    entity: str = "*",
    when: datetime | None = None,
) -> None:
    """Record a failed run in ops.sync_run (entity ``*``: the whole run), for the run-failure
    sensor. A county the run cannot be tied to is recorded as ``*``."""
    when = when or datetime.now(UTC)
    con.execute(
        """
        INSERT OR REPLACE INTO ops.sync_run BY NAME
        SELECT $run AS sync_run_id, $county AS county_code, $entity AS entity,
               $when AS started_at, $when AS finished_at, 'failed' AS status, $error AS error
        """,
        {
            "run": sync_run_id,
            "county": county_code or "*",
            "entity": entity,
            "when": when,
            "error": _clean_error(error),
        },
    )


def _failure_queue() -> Path:
    return paths.hub_home() / "state" / "failures.jsonl"


def queue_failure(run_id: str, job: str | None, county: str | None, error: str) -> None:
    """Queue a failed run for ops.sync_run without opening the warehouse (sensors must not:
    it is single-writer). The next read-write :func:`connect` on the live file records it."""
    queue = _failure_queue()
    queue.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "run_id": run_id,
            "job": job,
            "county": county,
            "error": _clean_error(error),
            "at": datetime.now(UTC).isoformat(),
        },
        ensure_ascii=False,
    )
    with queue.open("a", encoding="utf-8") as f:  # one short append: atomic enough (O_APPEND)
        f.write(line + "\n")


def record_queued_failures(con: duckdb.DuckDBPyConnection) -> int:
    """Move queued failures into ops.sync_run; returns how many. The queue file is renamed
    before it is read, so a failure queued meanwhile waits for the next call."""
    from seeds.registry import county as find_county

    queue = _failure_queue()
    if queue.exists():
        os.replace(queue, queue.with_name(f"failures.{uuid.uuid4().hex}.taken"))
    recorded = 0
    for taken in sorted(queue.parent.glob("failures.*.taken")):
        entries = [json.loads(line) for line in taken.read_text("utf-8").splitlines() if line]
        for entry in entries:
            code = None
            if entry.get("county"):
                try:
                    code = find_county(entry["county"]).code
                except KeyError:
                    code = None
            record_failure(
                con,
                entry["run_id"],
                code,
                entry.get("error") or "run failed",
                when=datetime.fromisoformat(entry["at"]) if entry.get("at") else None,
            )
            recorded += 1
        taken.unlink()
    return recorded


def latest_reject_rate(con: duckdb.DuckDBPyConnection, county_code: str) -> float:
    """Reject rate of the county's latest merged or refused sync (0.0 before the first)."""
    rejected, total = latest_reject_counts(con, county_code)
    return rejected / total if total else 0.0


def latest_reject_counts(con: duckdb.DuckDBPyConnection, county_code: str) -> tuple[int, int]:
    """(rejected, total) records of the county's latest merged or refused sync."""
    row = con.execute(
        """
        WITH latest AS (
            SELECT sync_run_id FROM ops.sync_run
            WHERE county_code = $county AND status IN ('succeeded', 'refused')
            ORDER BY finished_at DESC, sync_run_id DESC LIMIT 1)
        SELECT sum(rejected), sum(accepted) + sum(rejected)
        FROM ops.sync_run JOIN latest USING (sync_run_id)
        WHERE county_code = $county
        """,
        {"county": county_code},
    ).fetchone()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


# --------------------------------------------------------------------------------------------
# watermarks and the state file


def watermarks(con: duckdb.DuckDBPyConnection, county_code: str) -> dict[str, str]:
    """The committed watermarks of a county: ``{name: value}``."""
    return dict(
        con.execute(
            "SELECT name, value FROM ops.watermark WHERE county_code = ? ORDER BY name",
            [county_code],
        ).fetchall()
    )


def _slug(county: Any) -> str:
    return getattr(county, "slug", None) or str(county)


def state_path(county: Any) -> Path:
    return paths.hub_home() / "state" / f"{_slug(county)}.json"


def write_state(county: Any, marks: Mapping[str, str], *, sync_run_id: str | None = None) -> Path:
    """Cache a county's committed watermarks where the landing step reads them without opening
    DuckDB. Write after the merge committed; the warehouse stays the source of truth:
    ``sync_run_id`` is the sync that committed them, which ``pipelines.cursors`` compares with
    the warehouse's before a landing trusts the cache."""
    target = state_path(county)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "county": _slug(county),
                "watermarks": dict(marks),
                "sync_run_id": sync_run_id,
                "written_at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    os.replace(tmp, target)
    return target


def read_state(county: Any) -> dict[str, str]:
    """The cached watermarks of a county; empty (→ a full sync) when missing or unreadable."""
    target = state_path(county)
    try:
        return dict(json.loads(target.read_text(encoding="utf-8"))["watermarks"])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("state file %s unreadable (%s); treating as empty", target, exc)
        return {}


# --------------------------------------------------------------------------------------------
# marts and snapshot


def rebuild_marts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Run ``warehouse/sql/marts/*.sql`` in order in one transaction; returns the mart tables.

    Mart files document each table with COMMENT ON and each column once; a column left without
    a comment takes the comment of the same-named column in core, else elsewhere in mart."""
    from seeds.registry import registry_path

    seeds = str(paths.SEEDS).replace("'", "''")
    registry = str(registry_path()).replace("'", "''")
    con.execute(f"SET VARIABLE hub_seeds = '{seeds}'")
    con.execute(f"SET VARIABLE hub_registry = '{registry}'")  # HUB_REGISTRY may add counties
    _set_connection_states(con)
    con.execute("BEGIN")
    try:
        for file in sorted(MARTS_DIR.glob("[0-9][0-9]_*.sql")):
            con.execute(file.read_text(encoding="utf-8"))
        _inherit_column_comments(con)
        tables = [
            f"mart.{t}"
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'mart' ORDER BY table_name"
            ).fetchall()
        ]
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return tables


def _set_connection_states(con: duckdb.DuckDBPyConnection) -> None:
    """``hub_connections``: slug -> configured / simulated / not configured, for
    mart.sync_status (the settings are the process's, not the warehouse's)."""
    from pipelines.sources import connection_state
    from seeds.registry import counties

    states = {c.slug: connection_state(c) for c in counties()}
    con.execute(
        "SET VARIABLE hub_connections = MAP(?::VARCHAR[], ?::VARCHAR[])",
        [list(states), list(states.values())],
    )


def _inherit_column_comments(con: duckdb.DuckDBPyConnection) -> None:
    missing = con.execute(
        """
        WITH cols AS (
            SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()
            WHERE database_name = current_database() AND schema_name IN ('mart', 'core')),
        docs AS (
            SELECT column_name, arg_min(comment, (schema_name <> 'core', table_name)) AS comment
            FROM cols WHERE comment IS NOT NULL AND comment <> '' GROUP BY column_name)
        SELECT c.table_name, c.column_name, d.comment
        FROM cols AS c JOIN docs AS d USING (column_name)
        WHERE c.schema_name = 'mart' AND (c.comment IS NULL OR c.comment = '')
        """
    ).fetchall()
    for table, column, comment in missing:  # catalogue metadata: a few dozen statements
        con.execute(
            f"COMMENT ON COLUMN mart.{_q(table)}.{_q(column)} IS "
            + "'"
            + comment.replace("'", "''")
            + "'"
        )


def publish_snapshot(
    live_path: str | Path | None = None,
    snapshot_path: str | Path | None = None,
    pii_snapshot_path: str | Path | None = None,
) -> Path:
    """Publish the two copies of the live file (``pipelines.snapshots``): the analyst snapshot
    (no direct identifiers; returned) and the restricted PII snapshot, each written beside its
    target and renamed into place atomically.

    Call only from a step in the ``duckdb_warehouse`` pool, so no writer is active while the
    live file is read (a closed DuckDB connection has checkpointed its WAL into the file). A
    reader that has an old snapshot open keeps reading the old file; connections opened after
    the rename see the new one."""
    from pipelines import snapshots

    live = Path(live_path) if live_path is not None else paths.live_db()
    target = Path(snapshot_path) if snapshot_path is not None else paths.snapshot_db()
    pii = Path(pii_snapshot_path) if pii_snapshot_path is not None else paths.pii_snapshot_db()
    for published in (target, pii):
        remove_publish_leftovers(published)
    if wal_path(live).exists():
        with connect(live):  # replays and checkpoints a WAL left by a crashed writer
            pass
    # Both copies read the live file under the warehouse lock (shared): no writer can change it
    # while they are taken (a copy taken under a writer was unreadable once in 111).
    with warehouse_lock.hold(live, shared=True, purpose="consistent copy"):
        snapshots.publish_pii_snapshot(live, pii)
        return snapshots.publish_analyst_snapshot(live, target)


def copy_live_consistently(live: Path, dest: Path) -> Path:
    """Byte-copy the live file to ``dest`` while no writer can change it.

    A WAL left by a crashed writer is first replayed and checkpointed (a read-write open), so
    the file alone holds every committed transaction. The copy then holds the warehouse lock
    shared (hub writers wait politely) and a read-only DuckDB connection on the file (a writer
    outside the hub, such as a stray shell, is refused by DuckDB instead of changing the bytes
    under the copy)."""
    live, dest = Path(live), Path(dest)
    if wal_path(live).exists():
        with connect(live):  # replays and checkpoints a WAL left by a crashed writer
            pass
    with warehouse_lock.hold(live, shared=True, purpose="consistent copy"):
        guard = duckdb.connect(str(live), read_only=True)
        try:
            shutil.copyfile(live, dest)
        finally:
            guard.close()
    return dest


#: A leftover of a killed publish whose name carries no PID is removed once it is this old.
_ANONYMOUS_LEFTOVER_SECONDS = 600


def remove_publish_leftovers(target: Path) -> list[Path]:
    """Remove the temporary copies (``.<snapshot>.<pid>-<hex>.tmp`` and their ``.wal``) that
    publishes killed mid-copy left beside ``target``; a live publisher's copy is left alone."""
    removed = []
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        tag = leftover.name[len(target.name) + 2 :].split(".tmp", 1)[0]
        pid = tag.split("-", 1)[0] if "-" in tag else ""
        if pid.isdigit():
            if _pid_alive(int(pid)):
                continue
        else:
            try:
                age = datetime.now(UTC).timestamp() - leftover.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < _ANONYMOUS_LEFTOVER_SECONDS:
                continue
        with suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    if removed:
        log.warning("removed %d leftover(s) of killed publishes: %s", len(removed), removed)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
