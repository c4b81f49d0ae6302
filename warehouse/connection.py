"""Opening the warehouse: the lock, migrations, the profile check and what a read-write open
of the live file does first (seed core.region, record queued run failures)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import duckdb

import warehouse.commit_record as commit_record
import warehouse.key_rebuild as key_rebuild
import warehouse.lock as warehouse_lock
import warehouse.region_seed as region_seed
from base import paths, settings
from warehouse.keys import KeyScope, without_keys
from warehouse.lake import ddl as lake_ddl
from warehouse.lake import locks as lake_locks
from warehouse.lake.catalog import close_lake, is_lake, open_lake
from warehouse.run_log import record_queued_failures
from warehouse.statements import MIGRATIONS_DIR, run
from warehouse.transaction import transaction

log = logging.getLogger(__name__)

#: Migrations whose change depends on what the warehouse holds, made in Python (DuckDB has no
#: dynamic DDL): version -> the function, run after the file's own statements in the same
#: transaction. Like a migration file, a released step is never changed (a new migration does
#: the next change); the checksum is the file's, so editing the module's wording or format
#: does not make every warehouse report 010 as changed.
PYTHON_STEPS = {10: key_rebuild.rebuild_keyed_tables}


def quiet(con: duckdb.DuckDBPyConnection) -> None:
    """Pipeline connections print nothing: DuckDB's progress bar would draw unlabelled bars from
    every step process into the terminal (and into the logs)."""
    con.execute("SET enable_progress_bar = false")


@contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (default: the live file), migrate it when read-write, always close.

    Holds the warehouse lock (``warehouse.lock``: exclusive when read-write, shared
    when read-only) from before the open until after the close, waiting politely for another
    writer. Opening the live file read-write also seeds core.region with the known divisions
    (when the list changed) and records the run failures the Dagster sensor queued (sensors
    never open the warehouse themselves); closing it writes the commit record that tells
    landings whether their cached cursors are the warehouse's (``warehouse.cursors``).

    With ``HUB_WAREHOUSE_BACKEND=ducklake`` the live warehouse is the lake (see
    :func:`_connect_lake`); other paths (snapshots) are DuckDB files on either backend."""
    if is_live_lake(path):
        with _connect_lake(read_only) as con:
            yield con
        return
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
                    region_seed.seed_regions(con)
                    record_queued_failures(con)
            yield con
            if not read_only and is_live:
                owners = commit_record.owners(con)
        finally:
            con.close()
            if is_live and not read_only:
                if owners is None:  # the work failed: landings read the file's own cursors
                    commit_record.forget_commit_record()
                else:
                    commit_record.write_commit_record(path, owners)


def is_live_lake(path: str | Path | None = None) -> bool:
    """Does ``path`` (default: the live warehouse) name the lake? True on the DuckLake backend
    for the live warehouse, whose file then does not exist."""
    if not settings.is_lake():
        return False
    return path is None or Path(path).resolve() == paths.live_db().resolve()


@contextmanager
def _connect_lake(read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """The lake, attached and in use; read-write opens migrate, check the profile, seed the
    divisions and record queued failures under the lake's write lock (other processes may be
    opening it at the same moment). Readers see the latest committed snapshot. No file lock and
    no commit record: the lake has many writers, and landings read its cursors from the lake."""
    con = open_lake(read_only=read_only)
    try:
        quiet(con)
        if not read_only:
            with lake_locks.writer("open the warehouse"):
                migrate(con)
                check_profile(con, "the lake")
                region_seed.seed_regions(con)
                record_queued_failures(con)
        yield con
    finally:
        close_lake(con)


def wal_path(db_path: Path) -> Path:
    """The write-ahead log DuckDB keeps beside a file until it checkpoints."""
    return db_path.with_name(db_path.name + ".wal")


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
    row = run(con, "ops/catalog.sql", "profile").fetchone()
    if row is None:
        run(con, "ops/catalog.sql", "record_profile", {"profile": current})
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
            row = run(con, "ops/catalog.sql", "profile").fetchone()
    except duckdb.Error:  # locked by a running writer: connect() checks when it writes
        return None
    return row[0] if row else None


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet in ``ops.schema_migration``, in order, each in its own
    transaction. Returns the names applied. An applied file that has since changed is reported,
    not re-run: schema changes go in a new migration.

    Both backends take the DDL without its key clauses (``warehouse.keys``: the keys are checked
    before COMMIT, not indexed); DuckLake also without comments on macros."""
    applied: dict[int, str] = {}
    if _table_exists(con, "ops", "schema_migration"):
        applied = dict(run(con, "ops/catalog.sql", "applied_migrations").fetchall())
    done = []
    lake = is_lake(con)
    for file in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        version, text = int(file.name[:3]), file.read_text(encoding="utf-8")
        step = PYTHON_STEPS.get(version)
        checksum = hashlib.sha256(text.encode()).hexdigest()
        if version in applied:
            if applied[version] != checksum:
                log.warning("migration %s changed after it was applied; not re-run", file.name)
            continue
        # DDL, and its own record: the one keyed row it inserts
        record = KeyScope({"ops.schema_migration": "version = $version"}, {"version": version})
        with transaction(con, record):
            con.execute(lake_ddl.for_lake(text) if lake else without_keys(text))
            if step is not None:
                step(con)
            params = {"version": version, "file": file.name, "checksum": checksum}
            run(con, "ops/catalog.sql", "record_migration", params)
        done.append(file.name)
    return done


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return _table_exists(con, schema, table)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    params = {"schema": schema, "table": table}
    return bool(run(con, "ops/catalog.sql", "table_exists", params).fetchone()[0])
