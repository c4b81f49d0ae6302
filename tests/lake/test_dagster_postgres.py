"""Dagster's own storage on PostgreSQL (dagster-postgres, deploy/dagster.postgres.yaml), really
run: a county's sync job executed by the `dagster` CLI in its own process, with the multiprocess
executor's step processes, the warehouse on DuckLake, and DAGSTER_HOME holding the deployment's
instance file. Its run, events, asset materialisations and pool claims are read back from the
PostgreSQL database; then a run killed while it holds its county's merge pool is freed there by
the hub's run health (docs/engineering/scale-out.md, "Dagster's own storage on PostgreSQL")."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import dagster as dg
import psycopg
import pytest

from base.paths import REPO
from pipelines.defs.keys import entities_of
from seeds.registry import county
from warehouse.lake import locks

pytestmark = [pytest.mark.lake, pytest.mark.e2e]
SHANYANG = county("shanyang")


def _pg_url(postgres, dbname: str) -> str:
    """A SQLAlchemy URL for dagster-postgres over the fixture server's Unix socket (no
    password: the test server trusts local connections; a deployment uses PGPASSWORD)."""
    return f"postgresql+psycopg2://hub@/{dbname}?host={postgres.socket_dir}&port={postgres.port}"


@pytest.fixture
def province(postgres, hub_home, tmp_path, monkeypatch, request):
    """The deployment's shape on one machine: the warehouse on a lake, Dagster's storage in its
    own PostgreSQL database, DAGSTER_HOME holding deploy/dagster.postgres.yaml as it is."""
    from tests.conftest import serving

    suffix = hashlib.md5(request.node.nodeid.encode()).hexdigest()[:10]
    storage_db = f"dagster_{suffix}"
    postgres.recreate_database(storage_db)
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", postgres.recreate_database(f"lake_{suffix}"))
    home = tmp_path / "dagster_home"
    home.mkdir(mode=0o700)
    shutil.copyfile(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", _pg_url(postgres, storage_db))
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_NOTICE", "0.5")
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_TIMEOUT", "120")
    with serving(monkeypatch):
        yield postgres.database(storage_db)


class DagsterJob:
    """``dagster job execute`` of the hub's code location as a real process (its own process
    group, so a SIGKILL reaches its step processes too), output in ``<name>.log``."""

    def __init__(self, tmp_path, name: str, job: str) -> None:
        self.log = tmp_path / f"{name}.log"
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", "pipelines.definitions",
             "-j", job],
            cwd=REPO, env=dict(os.environ), stdout=self.log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def finish(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"timed out; output:\n{self.output()}") from None

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.popen.poll() is not None:
                raise AssertionError(f"{what}: exited {self.popen.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError(f"{what} within {timeout} s:\n{self.output()}")
            time.sleep(0.1)


def _rows(dsn: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(dsn) as con:
        return con.execute(sql, params).fetchall()


def test_a_sync_run_its_events_and_materialisations_are_stored_in_postgres(province, tmp_path):
    run = DagsterJob(tmp_path, "sync", f"sync_{SHANYANG.slug}")
    assert run.finish(timeout=240) == 0, run.output()

    instance = dg.DagsterInstance.get()  # from DAGSTER_HOME: the deployment's file, unchanged
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    # the run, straight from PostgreSQL's tables
    ((run_id, status),) = _rows(
        province,
        "SELECT run_id, status FROM runs WHERE pipeline_name = %s",
        f"sync_{SHANYANG.slug}",
    )
    assert status == "SUCCESS"
    events = dict(
        _rows(
            province,
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type IS NOT NULL GROUP BY 1",
            run_id,
        )
    )
    # RUN_SUCCESS is stored under its legacy name PIPELINE_SUCCESS: use the enum's values
    assert events[dg.DagsterEventType.RUN_SUCCESS.value] == 1, events
    assert events[dg.DagsterEventType.STEP_SUCCESS.value] >= 2, events
    materialised = {
        key
        for (key,) in _rows(
            province,
            "SELECT asset_key FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            run_id,
        )
    }
    wanted = {dg.AssetKey([SHANYANG.slug, "landing"])} | {
        dg.AssetKey([SHANYANG.slug, e]) for e in entities_of(SHANYANG)
    }
    assert {dg.AssetKey.from_db_string(k) for k in materialised} == wanted
    assert set(_rows(province, "SELECT asset_key FROM asset_keys")) >= {
        (k.to_string(),) for k in wanted
    }
    # the merge held its county's pool on the lake, a pool in PostgreSQL: one slot (dagster.yaml's
    # default_limit), free again now that the run is over
    pool = f"lake_merge_{SHANYANG.slug}"
    assert _rows(
        province, 'SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', pool
    ) == [(1,)]
    info = instance.event_log_storage.get_concurrency_info(pool)
    assert info.slot_count == 1 and info.claimed_slots == [] and info.pending_steps == []
    # the run health reads the run's process from the PostgreSQL event log; it has ended
    from pipelines import run_health

    pid, _ = run_health.run_pid(instance, run_id)
    assert pid > 0
    assert run_health.dead_runs(instance) == []
    # and the warehouse on the lake holds the county
    from tests.e2e.helpers import live

    with live() as con:
        households = con.execute(
            "SELECT count(*) FROM core.household WHERE county_code = ?", [SHANYANG.code]
        ).fetchone()[0]
    assert households > 0


def test_a_run_killed_holding_its_merge_pool_is_freed_in_postgres(province, tmp_path):
    """The merge step takes its pool slot, then waits for the county's lake lock (held here);
    the run is killed there; the run health marks it failed and frees the slot in PostgreSQL."""
    from pipelines import run_health

    pool = f"lake_merge_{SHANYANG.slug}"
    instance = dg.DagsterInstance.get()
    with locks.county(SHANYANG.code, purpose="test blocker"):
        run = DagsterJob(tmp_path, "killed", f"sync_{SHANYANG.slug}")
        claimed = lambda: instance.event_log_storage.get_concurrency_info(pool).claimed_slots  # noqa: E731
        run.wait_for(claimed, 180, "the merge never took its pool slot")
        (dead_run,) = {s.run_id for s in claimed()}
        run.wait_for(lambda: run_health.run_pid(instance, dead_run), 30, "no run PID logged")
        run.kill9()  # the run's process and its step processes, as a crash would
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.STARTED

    cleared = run_health.clear_dead_runs(instance)
    assert [d.run_id for d in cleared] == [dead_run]
    assert cleared[0].freed_slots == 1
    (said,) = run_health.describe(cleared)
    assert pool in said and "marked failed" in said, said
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
    assert claimed() == []
    assert _rows(
        province, "SELECT count(*) FROM concurrency_slots WHERE run_id = %s", dead_run
    ) == [(0,)]
