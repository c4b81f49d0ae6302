"""mart.person and mart.special_groups written as a row delta of their previous build.

Every marts build used to re-create mart.person (one row per person, 485k at scale 1) and
mart.special_groups (309k) whole, though a day's syncs change a few thousand persons: writing
them was most of the marts' CPU (bench/profiles/city-step-incremental.md). When the previous
build's record says what it saw (``marts_state``, written in the build's own transaction), a
build rewrites instead only the rows of:

* the persons the syncs since then changed (``changed_persons`` in sql/marts/delta.sql: their
  records' or households' content changed, or they were soft-deleted; decided from the history
  versions and deletions those syncs wrote, not from ``sync_run_id``, which 商州's daily re-read
  stamps on every row it only saw);
* when the data's date moved (``age_reference_date``, the same in every row): that column by one
  narrow UPDATE, and the persons whose age at the new date differs (``aged_persons``).

Those rows are deleted and inserted again from the mart's own SELECT (00_person.sql,
04_special_groups.sql: the definition stays there, read from the file), so the tables hold what
a full rebuild writes, row for row (tests/e2e/test_city_step_incremental.py). A full rebuild
runs instead when there is no record, the mart files or the migrations changed since
(``definition_digest``), a sync the record lists is gone (a restored file), on DuckLake (whose
UPDATE of every row rewrites them all), when the date moved in a table of more than
``REFERENCE_UPDATE_ROWS`` persons (the UPDATE's memory: above scale ~2), or when the rows the
delta leaves do not count as many as the definition gives (never seen; a warning says so).
mart.special_groups' stored rows are no longer in its ORDER BY's order after a delta (the
changed persons' rows come last); a query's own ORDER BY is what analysts rely on.

The analyst snapshot's delta (warehouse/snapshot_delta.py) rewrites the same rows of its copy
(:func:`apply_to_copy`) when the copy holds the build the live build started from.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass

import duckdb

from warehouse.lake.catalog import is_lake
from warehouse.statements import MARTS_DIR, run

log = logging.getLogger(__name__)

DELTA_SQL = "marts/delta.sql"
#: The mart tables written by delta: both hold rows of persons by ``person_key`` (delta.sql), and
#: mart.special_groups' delta takes the persons mart.person's found (its file runs later).
KEPT_TABLES = ("mart.person", "mart.special_groups")
#: A definition's closing ``ORDER BY`` of plain columns (no parenthesis, no quote), if any.
_FINAL_ORDER_BY = re.compile(r"\sORDER BY [^()';]*$")
_CREATE = re.compile(r"(?:\s|--[^\n]*\n)*CREATE OR REPLACE TABLE (mart\.\w+) AS\b(.*)", re.S)


@dataclass
class MartsBuild:
    """What one marts build did with the kept tables: ``mode`` ``delta`` or ``full``, and why."""

    mode: str
    reason: str
    digest: str
    previous_build: str | None = None
    changed_persons: int = 0
    reference_moved: bool = False


def definition_digest(con: duckdb.DuckDBPyConnection) -> str:
    """The mart files' text and the applied migrations: what the kept tables' rows are a
    function of, besides core."""
    digest = hashlib.sha256()
    for file in sorted(MARTS_DIR.glob("*.sql")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    for version, checksum in sorted(run(con, "ops/catalog.sql", "applied_migrations").fetchall()):
        digest.update(f"{version}:{checksum}\0".encode())
    return digest.hexdigest()


def plan(con: duckdb.DuckDBPyConnection) -> MartsBuild:
    """Decide, in the build's transaction before the mart files run, whether the kept tables
    are written by delta; for a delta, the syncs since the previous build are in
    ``_mart_new_runs``."""
    digest = definition_digest(con)

    def full(reason: str) -> MartsBuild:
        return MartsBuild("full", reason, digest)

    if is_lake(con):
        return full("DuckLake: rebuilt whole")
    if not run(con, DELTA_SQL, "record_exists").fetchone()[0]:
        return full("no record of a previous build")
    recorded, builds = run(con, DELTA_SQL, "recorded_digest").fetchone()
    if builds != 1 or recorded != digest:
        return full("the mart files or the migrations changed since the previous build")
    for table in KEPT_TABLES:
        schema, name = table.split(".")
        if not run(
            con, "ops/catalog.sql", "table_exists", {"schema": schema, "table": name}
        ).fetchone()[0]:
            return full(f"no {table} of a previous build")
    (lost,) = run(con, DELTA_SQL, "lost_runs").fetchone()
    if lost:
        return full(f"{lost} sync(s) the previous build saw are no longer listed")
    run(con, DELTA_SQL, "new_runs")
    (previous,) = run(con, DELTA_SQL, "previous_build").fetchone()
    return MartsBuild("delta", "the previous build plus the syncs since", digest, previous)


def run_file(con: duckdb.DuckDBPyConnection, text: str, build: MartsBuild) -> None:
    """Run one mart file; its ``CREATE OR REPLACE TABLE`` of a kept table becomes that table's
    delta in a delta build, and is written in parts when it is mart.person's (``_create``) in
    a full one (the rest of the file, comments included, runs as written)."""
    if not any(t in text for t in KEPT_TABLES):
        con.execute(text)
        return
    for statement in duckdb.extract_statements(text):
        created = _CREATE.match(statement.query)
        if created and created.group(1) in KEPT_TABLES:
            table, definition = created.group(1), created.group(2).strip()
            if build.mode == "delta":
                _write_delta(con, table, definition, build)
            else:
                _create(con, table, definition)
        else:
            con.execute(statement.query)


#: Live households per part when mart.person is written whole. Its definition joins every live
#: person with its household; writing that join's 26 columns while the hash table held every
#: household did not fit the city step's 96 MB (``CITY``) at scale 10 (1.6M households; the same
#: SELECT alone did), so the table is written in parts by a hash of household_no, each part's
#: join built on its own households (00_person.sql; bench/README.md, "The nightly full at
#: scale 10"). One part up to scale ~1.5: the plan of every smaller city is the one it was.
PERSON_PART_HOUSEHOLDS = 250_000


def person_parts(con: duckdb.DuckDBPyConnection) -> int:
    """How many parts a full build of mart.person is written in (``PERSON_PART_HOUSEHOLDS``)."""
    (households,) = con.execute(
        "SELECT count(*) FROM core.household WHERE deleted_at IS NULL"
    ).fetchone()
    return max(1, -(-households // PERSON_PART_HOUSEHOLDS))


def _create(con: duckdb.DuckDBPyConnection, table: str, definition: str) -> None:
    """``table`` re-created whole from its ``definition``: mart.person in parts of at most about
    ``PERSON_PART_HOUSEHOLDS`` households (the same rows: each person is in its household's
    part), any other table in one statement."""
    if table != "mart.person":
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {definition}")
        return
    parts = person_parts(con)
    try:
        for part in range(parts):
            con.execute(f"SET VARIABLE hub_person_parts = {parts}")
            con.execute(f"SET VARIABLE hub_person_part = {part}")
            if part == 0:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS {definition}")
            else:
                con.execute(f"INSERT INTO {table} {definition}")
    finally:  # every other use of the definition (a delta, a count) reads all households
        con.execute("RESET VARIABLE hub_person_parts")
        con.execute("RESET VARIABLE hub_person_part")


def _write_delta(
    con: duckdb.DuckDBPyConnection, table: str, definition: str, build: MartsBuild
) -> None:
    if table == "mart.person" and not _person_keys(con, definition, build):
        _rebuild(con, table, definition, build, "the reference date moved in a large table")
        return
    run(con, DELTA_SQL, "delete_changed", table=table)
    # the changed rows are appended whatever their order: a final ORDER BY would sort every
    # row of the definition before the changed keys are kept (DuckDB does not filter below it;
    # 04_special_groups: 0.20 CPU-s with it, 0.06 without, at scale 1)
    unordered = _FINAL_ORDER_BY.sub("", definition)
    run(con, DELTA_SQL, "insert_changed", table=table, definition=unordered)
    (expected,) = run(con, DELTA_SQL, "count_definition", definition=unordered).fetchone()
    (held,) = run(con, DELTA_SQL, "count_table", table=table).fetchone()
    if held != expected:  # a tripwire: a full rebuild is always right
        log.warning(
            "%s: the delta left %d rows where its definition gives %d; rebuilt whole",
            table,
            held,
            expected,
        )
        _rebuild(con, table, definition, build, f"{table}: the delta's row count was wrong")


def _rebuild(
    con: duckdb.DuckDBPyConnection, table: str, definition: str, build: MartsBuild, why: str
) -> None:
    """``table`` re-created whole; the kept tables after it too (their delta follows its keys)."""
    _create(con, table, definition)
    build.mode, build.reason = "full", why


#: Above this many rows, a moved reference date rebuilds mart.person whole instead of one
#: UPDATE of ``age_reference_date``: DuckDB holds an UPDATE's new values and undo until COMMIT,
#: ~17 bytes a row (81 MB of 5M rows, 33 MB of 2M, measured), which at scale 10 (4.8M persons)
#: would take most of the city step's 96 MB (``CITY``); with 2M rows held, a spilling join after
#: it still fit at 96 MB but the process peaked 50 MB higher. 1M rows (~17 MB): scale ~2.
REFERENCE_UPDATE_ROWS = 1_000_000


def _person_keys(con: duckdb.DuckDBPyConnection, definition: str, build: MartsBuild) -> bool:
    """``_mart_changed_keys``: the persons of the syncs since the previous build, and, when the
    reference date moved, the persons whose age moved with it (after which the date is set);
    False when the date moved in a table too large for one UPDATE (rebuild it instead)."""
    run(con, DELTA_SQL, "changed_persons")
    row = con.execute(f"SELECT age_reference_date FROM ({definition}) LIMIT 1").fetchone()
    if row is not None:  # else no live person: every previous row is gone (count: rebuilt)
        params = {"reference": row[0]}
        if run(con, DELTA_SQL, "reference_moved", params).fetchone()[0]:
            build.reference_moved = True
            (rows,) = run(con, DELTA_SQL, "count_table", table="mart.person").fetchone()
            if rows > REFERENCE_UPDATE_ROWS:
                return False
            run(con, DELTA_SQL, "aged_persons", definition=definition)
            run(con, DELTA_SQL, "set_reference", params)
    (build.changed_persons,) = con.execute(
        "SELECT count(DISTINCT person_key) FROM _mart_changed_keys"
    ).fetchone()
    return True


def record(con: duckdb.DuckDBPyConnection, build: MartsBuild) -> None:
    """What this build saw, in its transaction (not on DuckLake, which always rebuilds)."""
    if is_lake(con):
        return
    params = {
        "build_id": uuid.uuid4().hex,
        "previous": build.previous_build if build.mode == "delta" else None,
        "digest": build.digest,
        "mode": build.mode,
        "reason": build.reason,
        "changed_persons": build.changed_persons if build.mode == "delta" else None,
        "reference_moved": build.reference_moved,
    }
    run(con, DELTA_SQL, "record_schema")
    run(con, DELTA_SQL, "record_build", params)
    if build.mode != "delta":  # no keys were collected
        con.execute("CREATE OR REPLACE TEMP TABLE _mart_changed_keys (person_key VARCHAR)")
    run(con, DELTA_SQL, "record_changed_keys", params)
    run(con, DELTA_SQL, "record_runs")
    run(con, DELTA_SQL, "record_comments")


def live_build(con: duckdb.DuckDBPyConnection) -> str | None:
    """The id of the live file's last marts build (attached as ``live``), for the analyst
    publish record: the next publish applies the builds' delta to its copy
    (:func:`apply_to_copy`)."""
    row = _live_build(con)
    return row[0] if row else None


def _live_build(con: duckdb.DuckDBPyConnection) -> tuple | None:
    if not run(con, DELTA_SQL, "live_record_exists").fetchone()[0]:
        return None
    return run(con, DELTA_SQL, "live_build").fetchone()


def apply_to_copy(con: duckdb.DuckDBPyConnection, copied_build: str | None) -> list[str]:
    """In the analyst snapshot's copy (its transaction; the live file attached as ``live``):
    when the live file's last marts build is a delta of ``copied_build`` (the build the copy
    holds), rewrite the rows that build rewrote, and set the reference date as it did; returns
    the kept tables so written (none: replaced whole by the caller). The copy then holds the
    live tables row for row: it held them as of ``copied_build``, and the live build changed
    only those rows and that column (the caller checks the row counts)."""
    row = _live_build(con)
    if copied_build is None or row is None:
        return []
    _, previous, mode = row
    if mode != "delta" or previous != copied_build:
        return []
    # a delta build moved the date only in a table of at most REFERENCE_UPDATE_ROWS rows (else
    # it rebuilt whole), so this UPDATE is as small as the live one, or updates no row
    run(con, DELTA_SQL, "copy_reference")
    for table in KEPT_TABLES:
        run(con, DELTA_SQL, "copy_delete", table=table)
        run(con, DELTA_SQL, "copy_insert", table=table)
    return list(KEPT_TABLES)
