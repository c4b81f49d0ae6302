"""The analyst snapshot as a row-level delta of the previous one (``publish_analyst``).

A full rebuild (``warehouse.snapshots.publish_analyst_snapshot``) rewrites every row of the
analyst file; after a one-day incremental, few rows changed. So the publish starts from a byte
copy of the previous analyst file and applies only what changed since it was published:

* **core entity tables** (``core.household``, ``core.person``, …; not ``core.region``): every
  merge statement that writes a core row sets its ``sync_run_id`` (warehouse/sql/merge: upsert,
  unchanged rows' ``last_synced_at``, soft deletes). The syncs merged since the last publish are
  the rows of ``ops.sync_run`` the live warehouse has and the previous file has not (``EXCEPT
  ALL`` of that small table), plus the syncs whose touch of unchanged rows was still pending
  when the previous file was published (its ``ops.touch_pending``: warehouse/touch.py). The rows of those syncs are deleted by key from the copy and
  inserted again from the live file, through the same redacting SELECT as the full rebuild
  (``warehouse.snapshots.analyst_select``): no identifier is ever written.
  A row those syncs only saw (same ``row_hash``, the touch of warehouse/touch.py: a full
  re-read, 商州's v2 platform every day) gets its ``STAMPS`` updated in place instead
  (``_restamp``): rewriting those whole rows was most of the delta.
* **history tables** (``core.<entity>_history``): a version is inserted with the sync's
  ``sync_run_id``, and closed only in a sync that inserts the next version (changed) or
  soft-deletes the core row (deleted). The keys of such versions and of core rows those syncs
  deleted get all their versions replaced.
* **every other table** (``mart``, ``ref``, ``ops``, ``core.region``): replaced whole (the marts
  are rebuilt each time and ``mart.sync_status`` moves with the clock; the ``ops`` tables are
  small).

The delta is checked before and after: the previous file must be the one the last publish wrote
(its size, mtime and inode, recorded in ``.<snapshot>.publish.json`` beside it), hold the syncs
that publish recorded, come from the same warehouse with the same migrations and analyst layout,
and every sync it covers must still be in the live file; after the delta every delta table must
hold exactly the live table's row count. Anything else (no previous file, no record, a
mismatch) publishes a full rebuild instead, and the outcome says which happened and why: a full
rebuild is never reported as an increment. So does a publish after syncs that wrote most of the
copy's rows (a nightly full: ``REBUILD_SHARE``), where the delta would cost more than the rebuild.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

import warehouse.mart_delta as mart_delta
import warehouse.snapshots as snapshots
from base import settings
from schemas.columns import ENTITIES, KEYS
from warehouse.connection import quiet
from warehouse.statements import literal
from warehouse.statements import q as _q

log = logging.getLogger(__name__)

#: Bumped when the analyst layout (``warehouse.snapshots``) changes: older files are rebuilt.
LAYOUT_VERSION = 1
#: A delta-grown file this many times the size of its last full build is rebuilt compact
#: (deleted rows leave space DuckDB reuses but does not always give back).
MAX_GROWTH = 2.0
#: The delta refuses, and the file is rebuilt whole, when the syncs since the previous publish
#: wrote more than this share of the copy's core rows: a nightly full re-reads every row (one
#: county's full re-read, even the largest's, is a fraction of the city), and restamping nearly
#: every row costs more than writing them all (at scale 10: bench/README.md, "The nightly full
#: at scale 10").
REBUILD_SHARE = 0.9
#: What a sync writes into a row it found unchanged (40_upsert.sql, 45_touch.sql): the delta
#: updates these in place instead of rewriting the row (``_restamp``).
STAMPS = ("last_synced_at", "sync_run_id", "source_platform")


@dataclass
class AnalystPublish:
    """What one analyst publish did: ``mode`` is ``delta`` or ``full``; ``reason`` says why a
    full rebuild happened (or what the delta started from)."""

    mode: str
    reason: str
    publish_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    previous_publish: str | None = None
    sync_runs: int = 0  # syncs applied by the delta
    rows_deleted: int = 0
    rows_inserted: int = 0
    rows_restamped: int = 0  # unchanged rows a sync only saw: their STAMPS updated in place
    delta_tables: list[str] = field(default_factory=list)
    replaced_tables: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return asdict(self)


class DeltaRefused(Exception):
    """The previous analyst file cannot be the base of a delta; the message says why."""


def state_path(target: Path) -> Path:
    """The publish record beside the analyst snapshot."""
    return target.with_name(f".{target.name}.publish.json")


def publish_analyst(live: Path, target: Path, delta: bool = True) -> AnalystPublish:
    """Publish the analyst snapshot of ``live`` at ``target``: a delta of the previous file
    when it can (module docstring), else a full rebuild; record the publish beside it."""
    outcome = None
    if not delta:
        reason = "full rebuild requested"
    else:
        try:
            outcome = _publish_delta(live, target)
        except DeltaRefused as refused:
            reason = str(refused)
        except duckdb.OutOfMemoryException as out:
            # the delta's copy is a temp file, gone with the error: the rebuild, which reads
            # the live file table by table, fits where a delta of many rows may not (its joins
            # are bounded by parts, its temp tables spill, yet at scale 10 one ran out)
            error = str(out).splitlines()[0]
            reason = f"the delta ran out of the city step's DuckDB memory ({error}): rebuilt whole"
            log.warning("analyst snapshot: %s", reason)
    if outcome is None:
        snapshots.publish_analyst_snapshot(live, target)
        outcome = AnalystPublish(mode="full", reason=reason)
        full_size = target.stat().st_size
    else:
        full_size = _read_state(target)["full_size"]
    _write_state(live, target, outcome, full_size)
    return outcome


def _read_state(target: Path) -> dict:
    path = state_path(target)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeltaRefused(
            f"no publish record beside the previous snapshot ({path.name})"
        ) from None
    except (OSError, ValueError) as e:
        raise DeltaRefused(f"the publish record {path.name} is unreadable: {e}") from e
    return state


def _identity(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _fingerprint(con: duckdb.DuckDBPyConnection, database: str) -> dict:
    """What the publish record remembers of a warehouse (or analyst copy): its migrations and
    the syncs it holds (both small tables)."""
    (migrations,) = con.execute(
        f"SELECT md5(coalesce(string_agg(version || ':' || checksum, ',' ORDER BY version), '')) "
        f"FROM {_q(database)}.ops.schema_migration"
    ).fetchone()
    runs, digest = con.execute(
        "SELECT count(*), md5(coalesce(string_agg(to_json(s)::VARCHAR, '|' ORDER BY "
        f"to_json(s)::VARCHAR), '')) FROM {_q(database)}.ops.sync_run AS s"
    ).fetchone()
    return {"migrations": migrations, "sync_runs": runs, "sync_run_digest": digest}


def _write_state(live: Path, target: Path, outcome: AnalystPublish, full_size: int) -> None:
    # The fingerprint of the live file the snapshot was just made from (still under the
    # warehouse lock: unchanged), which its copies of ops.sync_run and ops.schema_migration
    # hold. Not read from the new snapshot: a reader in this process may hold the old one open,
    # and DuckDB would hand that instance back.
    con = duckdb.connect()
    try:
        quiet(con)
        con.execute(f"ATTACH {literal(live)} AS live (READ_ONLY)")
        fingerprint = _fingerprint(con, "live")
        mart_build = mart_delta.live_build(con)
    finally:
        con.close()
    state = {
        "layout_version": LAYOUT_VERSION,
        "publish_id": outcome.publish_id,
        "mode": outcome.mode,
        "published_at": datetime.now(UTC).isoformat(),
        "live": str(live.resolve()),
        "file": _identity(target),
        "full_size": full_size,
        "mart_build": mart_build,  # the live marts build the snapshot holds (its next delta's base)
        **fingerprint,
    }
    path = state_path(target)
    # named like the publishes' temp files: a killed publish's is removed by the next one
    tmp = target.with_name(f".{target.name}.{os.getpid()}-state.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(state, out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.chmod(settings.PRIVATE_FILE)
    os.replace(tmp, path)


def _check_previous(live: Path, target: Path) -> dict:
    """The publish record of the previous file, if that file can be the base of a delta."""
    if not target.exists():
        raise DeltaRefused("no previous analyst snapshot")
    state = _read_state(target)
    if state.get("layout_version") != LAYOUT_VERSION:
        raise DeltaRefused("the analyst layout changed since the previous snapshot")
    if state.get("live") != str(live.resolve()):
        raise DeltaRefused("the previous snapshot was published from another warehouse file")
    if state.get("file") != _identity(target):
        raise DeltaRefused(
            "the previous snapshot is not the file the last publish wrote (size, mtime or "
            "inode differ)"
        )
    if not isinstance(state.get("full_size"), int):
        raise DeltaRefused("the publish record lacks the size of the last full build")
    if target.stat().st_size > MAX_GROWTH * state["full_size"]:
        raise DeltaRefused(
            f"the delta-grown snapshot is over {MAX_GROWTH:g}x its last full build: rebuilt compact"
        )
    return state


def _publish_delta(live: Path, target: Path) -> AnalystPublish:
    state = _check_previous(live, target)
    outcome = AnalystPublish(
        mode="delta",
        reason=f"previous snapshot {state['publish_id']} plus the syncs merged since",
        previous_publish=state["publish_id"],
    )
    with snapshots.building(live, target, start_from=target) as (con, this):
        _check_against_live(con, this, state)
        _apply(con, this, outcome, state.get("mart_build"))
    return outcome


def _check_against_live(con: duckdb.DuckDBPyConnection, this: str, state: dict) -> None:
    """The copy holds what the record says, and the live file still holds all of it."""
    mine, live = _fingerprint(con, this), _fingerprint(con, "live")
    recorded = {k: state.get(k) for k in mine}
    if mine != recorded:
        raise DeltaRefused("the previous snapshot does not hold the syncs its record names")
    if mine["migrations"] != live["migrations"]:
        raise DeltaRefused("the warehouse's migrations changed since the previous snapshot")
    (lost,) = con.execute(
        "SELECT count(*) FROM (SELECT sync_run_id, county_code, entity FROM ops.sync_run "
        "EXCEPT SELECT sync_run_id, county_code, entity FROM live.ops.sync_run)"
    ).fetchone()
    if lost:
        raise DeltaRefused(
            f"the live warehouse no longer holds {lost} sync record(s) of the previous "
            "snapshot (restored from a backup?)"
        )


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> set[tuple[str, str]]:
    kept = ", ".join(f"'{s}'" for s in snapshots.PUBLISHED_SCHEMAS)
    rows = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
        f"AND schema_name IN ({kept})",
        [database],
    ).fetchall()
    return {(s, t) for s, t in rows if f"{s}.{t}" not in snapshots.PII_ONLY_TABLES}


class _Catalog:
    """The columns (in order, with their comments) and the table comments of the copy's and the
    live file's tables, read in one query each: the delta used to ask ``duckdb_columns()`` once
    per table and twice more per replaced table's comments (~105 queries, each a scan of every
    attached catalogue: ~0.3 CPU-s of a publish at scale 1, bench/profiles/
    city-step-incremental.md). Read before the delta writes; what it then reads stays true: the
    copy's core tables keep their columns, the live file is read-only, and a replaced table is
    re-created from the live columns read here."""

    def __init__(self, con: duckdb.DuckDBPyConnection, databases: tuple[str, ...]) -> None:
        self.columns: dict[tuple[str, str, str], list[tuple[str, str | None]]] = {}
        for database, schema, table, column, comment in con.execute(
            "SELECT database_name, schema_name, table_name, column_name, comment "
            "FROM duckdb_columns() WHERE list_contains(?, database_name) "
            "ORDER BY database_name, schema_name, table_name, column_index",
            [list(databases)],
        ).fetchall():
            self.columns.setdefault((database, schema, table), []).append((column, comment))
        self.comments = {
            (database, schema, table): comment
            for database, schema, table, comment in con.execute(
                "SELECT database_name, schema_name, table_name, comment FROM duckdb_tables() "
                "WHERE list_contains(?, database_name)",
                [list(databases)],
            ).fetchall()
        }

    def names(self, database: str, schema: str, table: str) -> list[str]:
        """The columns of ``database.schema.table`` in order."""
        return [c for c, _ in self.columns.get((database, schema, table), [])]

    def comment_of(self, database: str, schema: str, table: str, column: str) -> str | None:
        return dict(self.columns.get((database, schema, table), [])).get(column)


def _analyst_columns(live_columns: list[str], table: str) -> list[str]:
    """The columns the full rebuild gives ``core.<table>`` (warehouse.snapshots)."""
    dropped = snapshots.redacted_columns().get(table, ())
    kept = [c for c in live_columns if c not in dropped]
    return [*kept, "birth_year"] if "birth_date" in dropped else kept


def _apply(
    con: duckdb.DuckDBPyConnection, this: str, outcome: AnalystPublish, mart_build: str | None
) -> None:
    """Delete and insert the changed rows of the delta tables, replace the others, in one
    transaction; then check the delta tables' row counts against the live file. ``mart_build``:
    the live marts build the copy holds (``warehouse.mart_delta.apply_to_copy``)."""
    from warehouse.keys import NO_KEYED_TABLE
    from warehouse.transaction import transaction

    tables = _tables(con, this)
    if tables != _tables(con, "live"):
        raise DeltaRefused("the published tables changed since the previous snapshot")
    catalog = _Catalog(con, (this, "live"))
    delta = _delta_entities(this, tables, catalog)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _runs AS SELECT DISTINCT sync_run_id FROM "
        "(SELECT * FROM live.ops.sync_run EXCEPT ALL SELECT * FROM ops.sync_run)"
        # a sync whose touch was pending at the previous publish (warehouse.touch) has touched
        # rows since, under its own sync_run_id, which the copy already lists
        " UNION SELECT sync_run_id FROM ops.touch_pending"
    )
    outcome.sync_runs = con.execute("SELECT count(*) FROM _runs").fetchone()[0]
    _refuse_most_rows(con, delta)
    delta_tables = {t for e in delta for t in (e, f"{e}_history") if ("core", t) in tables}
    # One entity at a time, each committed: its restamp in bounded pieces of their own (DuckDB
    # holds an UPDATE's new values and undo in memory until COMMIT: warehouse/touch.py), then its
    # rows in one transaction, then its temp tables dropped, so the next entity's joins do not
    # share the city step's memory with them (at scale 10 they did not fit together: bench/
    # README.md, "The nightly full at scale 10"). The copy is a temp file renamed into place
    # only if the whole publish succeeds, so committing parts is safe.
    for entity in delta:
        outcome.rows_restamped += _restamp(
            con, entity, KEYS[entity], catalog.names(this, "core", entity)
        )
        with transaction(con, NO_KEYED_TABLE):  # a copy: keys checked in the warehouse
            con.execute("SET preserve_insertion_order = false")  # analysts' rows have no order
            history = ("core", f"{entity}_history") in tables
            _apply_entity(con, this, entity, history, outcome, catalog)
            con.execute("SET preserve_insertion_order = true")  # marts keep their order
        for temp in (_restamped(entity), _changed(entity), "_versions"):
            con.execute(f"DROP TABLE IF EXISTS {temp}")
    with transaction(con, NO_KEYED_TABLE):
        # mart.person / mart.special_groups: the rows the live build rewrote, if it can
        kept = mart_delta.apply_to_copy(con, mart_build)
        for schema, table in sorted(tables):
            if (schema == "core" and table in delta_tables) or f"{schema}.{table}" in kept:
                continue
            _replace(con, schema, table, catalog)
            outcome.replaced_tables.append(f"{schema}.{table}")
        outcome.delta_tables = sorted([*(f"core.{t}" for t in delta_tables), *kept])
        for table in outcome.delta_tables:
            mine, live = (
                con.execute(f"SELECT count(*) FROM {db}{table}").fetchone()[0]
                for db in ("", "live.")
            )
            if mine != live:
                raise DeltaRefused(
                    f"{table}: the delta left {mine} rows where the live file has {live}"
                )


def _refuse_most_rows(con: duckdb.DuckDBPyConnection, delta: list[str]) -> None:
    """Refuse the delta when the syncs since the previous publish (``_runs``) wrote more than
    ``REBUILD_SHARE`` of the copy's rows of the delta entities (``REBUILD_SHARE``'s comment)."""
    written = held = 0
    for entity in delta:
        table = f"core.{_q(entity)}"
        written += con.execute(
            f"SELECT count(*) FROM live.{table} WHERE sync_run_id IN (SELECT sync_run_id FROM _runs)"
        ).fetchone()[0]
        held += con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if held and written > REBUILD_SHARE * held:
        raise DeltaRefused(
            f"the syncs since the previous snapshot wrote {written:,} of its {held:,} core rows "
            f"(over {REBUILD_SHARE:.0%}: a full re-read): rebuilt whole"
        )


def _delta_entities(this: str, tables: set, catalog: _Catalog) -> list[str]:
    """The core entities published by delta: keyed, written only by merges (not
    ``core.region``, which the division seed also writes), with the analyst columns of the
    live table."""
    out = []
    for entity in KEYS:
        if entity == "region" or ("core", entity) not in tables:
            continue
        for table in (entity, f"{entity}_history"):
            if ("core", table) not in tables:
                continue
            expected = _analyst_columns(catalog.names("live", "core", table), table)
            if catalog.names(this, "core", table) != expected:
                raise DeltaRefused(f"the columns of core.{table} changed")
        out.append(entity)
    return out


def _apply_entity(
    con: duckdb.DuckDBPyConnection,
    this: str,
    entity: str,
    history: bool,
    outcome: AnalystPublish,
    catalog: _Catalog,
) -> None:
    keys = KEYS[entity]
    cols = ", ".join(_q(k) for k in keys)
    join = " AND ".join(f"k.{_q(k)} = t.{_q(k)}" for k in keys)
    new = "sync_run_id IN (SELECT sync_run_id FROM _runs)"
    # the syncs' rows but those restamped already (_restamp leaves them in _changed_<entity>)
    changes = [(entity, _changed(entity))]
    if history:  # new versions, and every version of a row the syncs soft-deleted
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _versions AS SELECT DISTINCT {cols} FROM "
            f"live.core.{_q(entity + '_history')} WHERE {new} "
            f"UNION SELECT {cols} FROM live.core.{_q(entity)} WHERE {new} "
            "AND deleted_at IS NOT NULL"
        )
        changes.append((f"{entity}_history", "_versions"))
    for table, keyed in changes:
        name = f"core.{_q(table)}"
        select = snapshots.analyst_select("core", table, catalog.names(this, "core", table))
        outcome.rows_deleted += con.execute(
            f"DELETE FROM {name} AS t WHERE EXISTS (SELECT 1 FROM {keyed} AS k WHERE {join})"
        ).fetchone()[0]
        outcome.rows_inserted += con.execute(
            f"INSERT INTO {name} BY NAME SELECT {select} FROM live.{name} AS t "
            f"WHERE EXISTS (SELECT 1 FROM {keyed} AS k WHERE {join})"
        ).fetchone()[0]


def _restamped(entity: str) -> str:
    return _q(f"_restamped_{entity}")


def _changed(entity: str) -> str:
    return _q(f"_changed_{entity}")


def _restamp(
    con: duckdb.DuckDBPyConnection, entity: str, keys: tuple[str, ...], columns: list[str]
) -> int:
    """Update in place the rows of the syncs since the previous publish that those syncs only
    saw (a full re-read, 商州's v2 platform every day: warehouse/touch.py); the keys of the
    syncs' other rows are left in the temp table ``_changed_<entity>``, the rows the delta
    rewrites. Their
    contract columns have the copy's ``row_hash`` (THE hash of them, warehouse.entities, the
    one the merge trusts to call a row unchanged), every other analyst column but ``STAMPS`` is
    equal, so setting ``STAMPS`` gives exactly the row a full rebuild writes. Rewriting those
    whole rows cost most of the delta (bench/profiles/city-step-incremental.md). In pieces of
    ``touch_rows()`` rows, each committed: what DuckDB holds of an UPDATE until its COMMIT does
    not grow with the county (``_update_stamps``)."""
    table = f"core.{_q(entity)}"
    contract = set(ENTITIES[entity]) | {"birth_year"}  # birth_year: of birth_date, hashed
    compared = [
        c
        for c in columns  # the copy's, in order
        if (c not in contract and c not in STAMPS) or c == "row_hash"
    ]
    key_cols = ", ".join(f"l.{_q(k)}" for k in keys)
    new = "l.sync_run_id IN (SELECT sync_run_id FROM _runs)"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_changed(entity)} AS SELECT {key_cols} "
        f"FROM live.{table} AS l WHERE false"
    )
    if "row_hash" not in compared:  # not a merged table: nothing says what is unchanged
        con.execute(
            f"INSERT INTO {_changed(entity)} SELECT {key_cols} FROM live.{table} AS l WHERE {new}"
        )
        return 0

    def on(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{_q(k)} = {b}.{_q(k)}" for k in keys)

    stamps = ", ".join(f"l.{_q(c)}" for c in STAMPS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_restamped(entity)} AS SELECT {key_cols}, {stamps}, "
        f"hash({key_cols}) AS piece FROM live.{table} AS l WHERE false"
    )
    same = " AND ".join(f"t.{_q(c)} IS NOT DISTINCT FROM l.{_q(c)}" for c in compared)
    seen = ", ".join(f"l.{_q(c)}" for c in dict.fromkeys([*keys, *compared, *STAMPS]))
    for part, parts in _join_parts(con, table, new):
        # The syncs' rows of the part first, into a temp table whose size the planner knows,
        # so that it builds the join's hash table on them and not on the copy's table: joined
        # straight from the live file (a filter on sync_run_id it cannot estimate) it built on
        # the copy's whole table (485k wide rows for 商州's 82k at scale 1, 0.3-0.4 CPU-s). The
        # copy's side is not cut by part (the key equality keeps the part's rows): with a
        # filter there the planner thought it the smaller and built on it again (0.5-0.7
        # CPU-s at scale 1; bench/profiles/city-step-incremental.md, third round). Narrow rows
        # (keys, stamps and an md5 of the compared columns) cost ~0.4 s more at scale 1 and
        # still did not fit at scale 10, where the delta gives way to the rebuild
        # (``publish_analyst``; bench/README.md, "The nightly full at scale 10").
        in_part = f"hash({', '.join(f'l.{_q(k)}' for k in keys)}) % {parts} = {part}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _seen AS SELECT {seen} FROM live.{table} AS l "
            f"WHERE {new} AND {in_part}"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _part AS SELECT {key_cols}, {stamps} "
            f"FROM _seen AS l JOIN {table} AS t ON {on('t', 'l')} WHERE {same}"
        )
        con.execute(
            f"INSERT INTO {_restamped(entity)} SELECT {key_cols}, {stamps}, hash({key_cols}) "
            "FROM _part AS l"
        )
        # the part's other rows, against the part's restamped ones only: no join ever holds
        # more than a part (a DELETE of all restamped keys from all the syncs' keys did not
        # fit the city step's memory at scale 10)
        con.execute(
            f"INSERT INTO {_changed(entity)} SELECT {key_cols} FROM _seen AS l "
            f"WHERE NOT EXISTS (SELECT 1 FROM _part AS t WHERE {on('t', 'l')})"
        )
    for temp in ("_seen", "_part"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return _update_stamps(con, entity, on("t", "r"))


def _update_stamps(con: duckdb.DuckDBPyConnection, entity: str, on_keys: str) -> int:
    """Set the ``STAMPS`` of the copy's rows listed in ``_restamped_<entity>``, in pieces of
    ``touch_rows()`` rows, each committed; the number of rows."""
    from warehouse.keys import NO_KEYED_TABLE
    from warehouse.touch import touch_rows
    from warehouse.transaction import transaction

    (restamped,) = con.execute(f"SELECT count(*) FROM {_restamped(entity)}").fetchone()
    pieces = -(-restamped // touch_rows())
    assignments = ", ".join(f"{_q(c)} = r.{_q(c)}" for c in STAMPS)
    for piece in range(pieces):
        with transaction(con, NO_KEYED_TABLE):  # the copy has no keys; no key column written
            con.execute(
                f"UPDATE core.{_q(entity)} AS t SET {assignments} FROM {_restamped(entity)} "
                f"AS r WHERE {on_keys} AND r.piece % {pieces} = {piece}"
            )
    return restamped


#: The syncs' rows per part of ``_restamp``'s join: each part's rows go into the temp table
#: ``_seen``, and the join's hash table is built on them, so both grow with this many rows, not
#: with the county or the city. One part for a day of 商州's re-read up to scale ~3 (the plan
#: 13am measured at scale 1). At scale 10 even parts of 100,000 did not fit the city step's
#: 96 MB (bench/README.md, "The nightly full at scale 10"): the delta then gives way to the
#: rebuild.
RESTAMP_JOIN_ROWS = 250_000


def _join_parts(con: duckdb.DuckDBPyConnection, table: str, new: str) -> list[tuple[int, int]]:
    """(part, parts) of ``_restamp``'s join of ``live.<table> AS l`` (rows where ``new``)
    with the copy's ``table``: none when the syncs wrote no row of it."""
    (seen,) = con.execute(f"SELECT count(*) FROM live.{table} AS l WHERE {new}").fetchone()
    if not seen:
        return []
    parts = max(1, -(-seen // RESTAMP_JOIN_ROWS))
    return [(part, parts) for part in range(parts)]


def _replace(con: duckdb.DuckDBPyConnection, schema: str, table: str, catalog: _Catalog) -> None:
    """Re-create ``schema.table`` from the live file's analyst rows, comments from live."""
    name = f"{_q(schema)}.{_q(table)}"
    live_columns = catalog.names("live", schema, table)
    columns = _analyst_columns(live_columns, table) if schema == "core" else live_columns
    select = snapshots.analyst_select(schema, table, columns)
    con.execute(f"DROP TABLE {name}")
    con.execute(f"CREATE TABLE {name} AS SELECT {select} FROM live.{name}")
    # the new table's columns are ``columns``, each commented as the live column of its name
    # (snapshots.copy_comments, from the catalogue read once)
    snapshots.put_comments(
        con,
        name,
        catalog.comments[("live", schema, table)],
        [(c, catalog.comment_of("live", schema, table, c)) for c in columns],
    )
