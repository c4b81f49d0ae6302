"""The executor and pool settings that keep the merge chain short (bench/history.md, "The merge
chain's gaps"): a setting lost here costs seconds per sync and fails nothing else, so each one
is asserted on the real job definitions and a real instance from the repo's dagster.yaml."""

from __future__ import annotations

import shutil
import time

import dagster as dg
import pytest
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.executor import child_process_executor

from base import paths
from pipelines import executor_waits
from pipelines.defs.keys import LANDING_TAG, LANDINGS_AT_ONCE, WAREHOUSE_TAG
from seeds.registry import counties


@pytest.fixture(scope="module")
def job():
    from pipelines.definitions import defs

    return defs.resolve_job_def("sync_all_counties")


def _tags(job, step: str) -> dict[str, str]:
    return job.graph.node_named(step).definition.tags


def _executor_config(job) -> dict:
    # the executor as configured (hub_executor), as Dagster resolves it for a run
    return job.executor_def.config_schema.resolve_config({}).value["config"]


def test_landings_have_their_own_limit_and_a_merge_always_finds_a_process_slot(job):
    config = _executor_config(job)
    limits = {(t["key"], t["value"]): t["limit"] for t in config["tag_concurrency_limits"]}
    [(key, value)] = LANDING_TAG.items()
    assert limits[(key, value)] == LANDINGS_AT_ONCE
    assert limits[next(iter(WAREHOUSE_TAG.items()))] == 1
    # four landings running, one merge, and one process still exiting after its step ended
    assert config["max_concurrent"] >= LANDINGS_AT_ONCE + 2
    assert config["start_method"]["forkserver"]["preload_modules"] == ["pipelines.preload"]
    for county in counties():
        assert LANDING_TAG.items() <= _tags(job, f"{county.slug}__landing").items()


def test_the_landing_that_rereads_everything_starts_first(job):
    priorities = {
        c.slug: int(_tags(job, f"{c.slug}__landing").get("dagster/priority", 0)) for c in counties()
    }
    assert priorities["shangzhou"] > max(p for slug, p in priorities.items() if slug != "shangzhou")
    assert int(_tags(job, "danfeng_merge")["dagster/priority"]) > max(
        priorities.values()
    )  # merges still first


def test_a_blocked_claim_says_when_to_check_again(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(paths.REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    storage = dg.DagsterInstance.from_config(str(home)).event_log_storage
    storage.set_concurrency_slots("test_pool", 1)
    assert storage.claim_concurrency_slot("test_pool", "run-a", "merge").is_claimed
    blocked = storage.claim_concurrency_slot("test_pool", "run-b", "merge")
    assert not blocked.is_claimed
    assert blocked.sleep_interval == executor_waits.POOL_POLL_SECONDS  # not Dagster's 1 s → 15 s
    storage.free_concurrency_slot_for_step("run-a", "merge")
    assert storage.claim_concurrency_slot("test_pool", "run-b", "merge").is_claimed


def test_a_pending_claim_waits_before_it_answers_not_yet(tmp_path, monkeypatch):
    import pipelines.definitions  # noqa: F401  (the code location applies it)

    assert getattr(InstanceConcurrencyContext.claim, "hub_naps", False)
    assert child_process_executor.TICK == executor_waits.STEP_EVENT_POLL_SECONDS
    assert getattr(child_process_executor._poll_for_event, "hub_bursts", False)
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(paths.REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    instance.event_log_storage.set_concurrency_slots("test_pool", 1)
    assert instance.event_log_storage.claim_concurrency_slot("test_pool", "other", "m").is_claimed
    run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
    with InstanceConcurrencyContext(instance, run) as context:
        assert not context.claim("test_pool", "merge")  # blocked: checks again in 0.5 s
        asks = 0
        until = time.time() + 0.3
        while time.time() < until:  # an executor's loop asking again and again
            assert not context.claim("test_pool", "merge")
            asks += 1
    # without the wait, the loop asked tens of thousands of times (a core spinning)
    assert asks <= 0.3 / executor_waits.PENDING_CLAIM_NAP + 2


FORKED_STEP = """
import gc, json, multiprocessing as mp
from multiprocessing import forkserver

from pipelines import forkserver as fs

def report(queue):
    frozen = gc.get_freeze_count()
    gc.collect()  # what a step's full collection sees: not the forkserver's heap
    queue.put({"frozen": frozen, "tracked": len(gc.get_objects()),
               "in_a_step": fs.start_forkserver("sync_luonan")})

if __name__ == "__main__":
    assert not fs.start_forkserver("sync_city")  # in process: no forkserver
    assert forkserver._forkserver._forkserver_pid is None
    assert fs.start_forkserver("sync_luonan")  # as `hub demo` and the run workers do
    early = forkserver._forkserver._forkserver_pid
    # what Dagster's multiprocess executor does at its first step (MultiprocessExecutor.execute)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["dagster._core.executor.multiprocess", "pipelines.preload"])
    queue = ctx.Queue()
    step = ctx.Process(target=report, args=(queue,))
    step.start()
    seen = queue.get(timeout=120)
    step.join()
    print(json.dumps({**seen, "same_forkserver": forkserver._forkserver._forkserver_pid == early}))
"""


def test_the_forkserver_starts_early_and_its_steps_skip_its_heap_in_collections(tmp_path):
    """``pipelines.forkserver.start_forkserver`` starts the executor's forkserver before the run needs it (its
    preload beside the run's own setup), and Dagster's executor then forks from that one. The
    forkserver freezes what it imported, so a full collection in a step process walks only the
    step's own objects, not the ~220,000 of Dagster and the code location, and leaves those
    pages shared (bench/history.md, "The floor of a county run")."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "forked_step.py"
    script.write_text(FORKED_STEP)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=paths.REPO,
        env={**os.environ, "HUB_PROFILE": "demo"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["same_forkserver"], seen  # Dagster found it running: no second preload
    assert seen["frozen"] > 100_000, seen  # the code location, frozen in the forkserver
    assert seen["tracked"] < seen["frozen"] / 4, seen  # a collection walks the step's own only
    assert seen["in_a_step"] is False, seen  # a step process never starts a forkserver of its own


def test_the_jobs_that_start_the_forkserver_early_are_those_that_fork_their_steps():
    from pipelines import forkserver
    from pipelines.definitions import defs
    from pipelines.defs.automation import hub_executor

    names = [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert "sync_luonan" in names and "sync_city" in names
    for name in names:
        job = defs.resolve_job_def(name)
        assert forkserver.forks_steps(name) == (job.executor_def is hub_executor), name
    assert _executor_config(defs.resolve_job_def("sync_luonan"))["start_method"]["forkserver"][
        "preload_modules"
    ] == [forkserver.PRELOAD]
    assert forkserver.FORKSERVER_PRELOAD == [
        "dagster._core.executor.multiprocess",
        forkserver.PRELOAD,
    ]
    assert forkserver.run_worker_job() is None  # this process is no code server's run worker
