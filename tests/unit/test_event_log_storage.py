"""The repo's dagster.yaml event log (pipelines/event_log.py): Dagster's SQLite files and tables,
connections kept open per process. What one process writes, another reads as the UI would;
runs beyond the open-database limit reopen; the pools' slots work."""

from __future__ import annotations

import shutil

import dagster as dg

from base import paths
from pipelines import event_log


@dg.asset
def numbers() -> int:
    return 1


@dg.asset_check(asset=numbers)
def positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"checked": 1})


def _instance(home) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def test_the_repo_instance_writes_dagsters_files_and_another_instance_reads_them(
    tmp_path, monkeypatch
):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(paths.REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    writer = _instance(home)
    assert isinstance(writer.event_log_storage, event_log.KeptOpenSqliteEventLogStorage)

    job = dg.define_asset_job("numbers_job", selection=[numbers])
    defs = dg.Definitions(assets=[numbers], asset_checks=[positive], jobs=[job])
    run_ids = []
    for _ in range(event_log.OPEN_DATABASES + 2):  # more runs than databases kept open
        result = defs.resolve_job_def("numbers_job").execute_in_process(instance=writer)
        assert result.success
        run_ids.append(result.run_id)
    assert len(writer.event_log_storage._engines) <= event_log.OPEN_DATABASES
    # the first run's database was closed: it opens again for reading
    assert writer.all_logs(run_ids[0])

    # Dagster's own layout: one database per run and the index, where the default storage keeps them
    runs_dir = home / "history" / "runs"
    assert {f"{r}.db" for r in run_ids} <= {p.name for p in runs_dir.glob("*.db")}
    assert (runs_dir / "index.db").exists()

    reader = _instance(home)  # another process's view (the webserver, hub status)
    for run_id in run_ids:
        types = {
            e.dagster_event.event_type_value for e in reader.all_logs(run_id) if e.dagster_event
        }
        assert {
            dg.DagsterEventType.ASSET_MATERIALIZATION.value,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
            dg.DagsterEventType.RUN_SUCCESS.value,
        } <= types
    latest = reader.get_latest_materialization_event(numbers.key)
    assert latest is not None and latest.run_id == run_ids[-1]

    # pools: slots set, claimed and freed through the kept-open index
    storage = reader.event_log_storage
    storage.set_concurrency_slots("test_pool", 1)
    claim = storage.claim_concurrency_slot("test_pool", "run-a", "step-a")
    assert claim.is_claimed
    assert not storage.claim_concurrency_slot("test_pool", "run-b", "step-b").is_claimed
    storage.free_concurrency_slots_for_run("run-a")
    assert writer.event_log_storage.get_concurrency_info("test_pool").claimed_slots == []
