"""The hub's real jobs with bodies that do nothing: the orchestration floor (bench/dagster_floor.py).

``floor_job(name)`` returns the job ``name`` of ``pipelines.definitions`` itself — the same
assets, checks, pools, op tags, executor (``hub_executor``: forkserver preloading
``pipelines.preload``, four at a time, one warehouse step at a time), IO manager and run config
— after swapping, in this process, the work the bodies call for instant stand-ins:

- ``sync.land`` returns a ``Landed`` at once (no HTTP, no files); the landing step still
  lowers its priority, records its metadata and pickles its output through the IO manager;
- ``sync.merge`` returns a ``Merged`` with every entity's counts at zero; ``rejects.export_sync``
  writes nothing; ``warehouse.connect`` opens an in-memory DuckDB (no lock, no file);
- ``checks.evaluate`` yields one passed result per check spec of the county (same checks, same
  metadata keys, no query);
- the city step's ``rebuild_marts`` / ``publish_snapshots`` do nothing (the snapshot "file" is
  an empty file at the run's snapshot path; the publish says "full", nothing published).

So every event the real run writes is written (materialisations with the same metadata keys,
check evaluations, outputs, pool claims, logs captured), and every process is started, but no
step does any of the hub's work. The reconstructor is called in the run worker and in every
step process (forked from the real forkserver), so the swap happens in each.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

#: When each step body began, in that step's own CPU seconds (written by the step for the
#: benchmark: the start-up cost of a step process up to its body).
BODY_CPU_LOG = "HUB_FLOOR_BODY_LOG"
#: "1": leave the forkserver to Dagster's first step launch, as before ``pipelines.forkserver`` started
#: it early (the A/B of bench/history.md, "The floor of a county run").
FORKSERVER_AT_FIRST_STEP = "HUB_FLOOR_FORKSERVER_AT_FIRST_STEP"


def _note_body_start(step: str) -> None:
    path = os.environ.get(BODY_CPU_LOG)
    if path:
        cpu = time.process_time()
        with open(path, "a", encoding="utf-8") as f:  # one short append per step
            f.write(f"{step}\t{os.getpid()}\t{cpu:.4f}\n")


def _patch() -> None:
    import dagster as dg
    import duckdb

    import warehouse
    from pipelines import rejects, sync
    from pipelines.defs import checks, city, counties
    from pipelines.defs.keys import entities_of
    from seeds.registry import county as find_county
    from warehouse.snapshot_delta import AnalystPublish

    if getattr(sync, "_floor_patched", False):
        return

    def land(county, mode="incremental"):
        _note_body_start(f"{county.slug}__landing")
        return sync.Landed(
            county_code=county.code,
            sync_id=f"floor-{county.slug}",
            mode=mode,
            manifest_path="/dev/null",
            staged_path="/dev/null",
            pages=0,
            bytes=0,
            seconds=0.0,
            watermarks_before={},
        )

    def merge(county, landed, safety_share=None, orchestrator_run=None):
        _note_body_start(f"{county.slug}_merge")
        zero = dict.fromkeys(
            ("fetched", "accepted", "rejected", "findings", "deleted", "inserted", "updated"), 0
        )
        return sync.Merged(
            county_code=county.code,
            sync_id=landed.sync_id,
            mode=landed.mode,
            seconds=0.0,
            counts={e: {**zero, "unchanged": 0} for e in entities_of(county)},
        )

    @contextlib.contextmanager
    def connect(*args, **kwargs):
        con = duckdb.connect()
        con.execute("CREATE SCHEMA mart; CREATE TABLE mart.sync_status (county_code VARCHAR)")
        try:
            yield con
        finally:
            con.close()

    def evaluate(county, con=None):
        return [
            dg.AssetCheckResult(
                check_name=spec.name,
                asset_key=spec.asset_key,
                passed=True,
                metadata={"warehouse": 0, "source": 0, "quarantined": 0},
            )
            for spec in checks.check_specs(find_county(county.slug))
        ]

    def rebuild_marts(con):
        _note_body_start("city__marts")
        return []

    def publish_snapshots(live, target, pii, delta=True):
        _note_body_start("city__snapshot")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).touch()  # the step's metadata reads its size
        return AnalystPublish(mode="full", reason="orchestration floor: nothing published")

    sync.land, sync.merge = land, merge
    rejects.export_sync = lambda *a, **k: None
    warehouse.connect = connect
    warehouse.rebuild_marts = rebuild_marts
    warehouse.publish_snapshots = publish_snapshots
    checks.evaluate = evaluate
    assert counties.sync is sync and city.warehouse is warehouse  # the bodies call through these
    sync._floor_patched = True


def floor_job(name: str):
    """The job ``name`` of the hub's definitions, its bodies swapped for instant stand-ins; the
    executor's forkserver started first, as ``hub demo`` does (``pipelines/forkserver.py``)."""
    from pipelines import forkserver

    if (
        os.environ.get(FORKSERVER_AT_FIRST_STEP) != "1"
    ):  # dagster_floor.py --forkserver-at-first-step
        forkserver.start_forkserver(name)
    _patch()
    from pipelines.definitions import defs

    return defs.resolve_job_def(name)
