"""Dagster's SQLite event log with its connections kept open (named in ``dagster.yaml``).

Dagster's ``SqliteEventLogStorage`` creates a SQLAlchemy engine, opens a SQLite connection and
closes it again for every write: a run of ``sync_all_counties`` writes ~550 events, each a
materialisation or check evaluation written twice (the run's database and the index), and the
close of the last connection to a WAL database checkpoints it. Replaying a real run's events
(``bench/event_writes.py``) that costs ~10 ms CPU per event under load; a step process spends
more of its life writing events than doing nothing else (bench/history.md, "The orchestration
floor").

This class is the same storage — the same files under ``$DAGSTER_HOME/history/runs/`` (one
database per run plus ``index.db``), the same schema, WAL, busy timeout and per-process lock —
except that each process keeps one open connection per database it writes, for the few most
recent databases (a webserver reads many runs: older ones are closed), commits without an fsync
each (WAL, ``synchronous=NORMAL``) and does not ask alembic about a database already created. Nothing else changes:
the UI, ``dagster dev``, the pools (``concurrency_limits`` in ``index.db``) and
``pipelines/run_health.py`` read and write the same tables. A connection never crosses a fork
(the cache belongs to the process that opened it).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import _event_logs_directory
from dagster._utils.concurrency import ConcurrencyClaimStatus
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from pipelines.executor_waits import POOL_POLL_SECONDS

log = logging.getLogger(__name__)

#: Open databases kept per process (the index and the runs being written or watched).
OPEN_DATABASES = 8
#: Engines a forked child inherited from its parent: kept referenced, so never closed by it.
_INHERITED: list = []


def _no_sync_per_commit(dbapi_connection, _record) -> None:
    """WAL with ``synchronous=NORMAL``: a commit no longer waits for its own fsync (the WAL is
    synced at checkpoints). The database cannot be corrupted by a crash; a power cut may lose
    the last events written before it, whose run the hub then reports dead anyway."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _stamped(engine: Engine) -> bool:
    """Is the database already created (its alembic revision stamped)? Dagster's ``_initdb``
    asks alembic, which parses every migration script of the event log again in each process
    (a sixth of a step process's CPU in bench/dagster_floor.py), only to do nothing when the
    database has a revision: every run's database but the first write's, and the index."""
    with engine.connect() as conn:
        try:
            return (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").first() is not None
            )
        except OperationalError:  # no such table: a new database
            return False


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one open connection per recent database and process."""

    def __init__(
        self,
        base_dir: str | None = None,
        inst_data=None,
        pool_poll_seconds: float = POOL_POLL_SECONDS,
    ):
        if base_dir is None:  # where Dagster's default storage keeps them
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                # Dagster's CLI without DAGSTER_HOME runs on a throw-away instance in a temp
                # directory it does not hand to its storages: events go to one of our own,
                # as throw-away as that instance (`dagster definitions validate`, a quick try)
                home = tempfile.mkdtemp(prefix="dagster-events-")
                log.warning("DAGSTER_HOME is not set: this process's run events go to %s", home)
            base_dir = _event_logs_directory(home)
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables_seen: set[str] = set()
        self.pool_poll_seconds = pool_poll_seconds
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {
            "base_dir": Field(StringSource, is_required=False),
            # seconds between two checks of a step's claim of a pool slot another run holds
            "pool_poll_seconds": Field(float, is_required=False),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():  # forked: the parent's connections are not ours
            # never closed here either (SQLite: a connection must not be used across a fork)
            _INHERITED.append(self._engines)
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,  # one connection, reused; the lock below serialises its use
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _no_sync_per_commit)
        if shard not in self._initialized_dbs:
            if not _stamped(engine):
                self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        while len(self._engines) > OPEN_DATABASES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # asked again for every asset event (each time a new engine): a table, once there, stays
        if table_name not in self._tables_seen:
            if not super().has_table(table_name):
                return False
            self._tables_seen.add(table_name)
        return True

    def claim_concurrency_slot(
        self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None
    ) -> ConcurrencyClaimStatus:
        """Dagster's claim; a blocked one says when to check again (the executors honour it
        instead of their back-off of 1 s growing to 15 s: pipelines/executor_waits.py)."""
        status = super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)
        return status if status.is_claimed else status.with_sleep_interval(self.pool_poll_seconds)

    def wipe(self) -> None:
        self._close_all()
        super().wipe()

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def dispose(self) -> None:
        super().dispose()
        self._close_all()
