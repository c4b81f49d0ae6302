"""A run blocked on the warehouse pool by another run: what its wait costs (Dagster alone).

The pool slot of ``duckdb_warehouse`` is taken by a stand-in for another run (a claim in the
instance, as a merge of another run holds it), then a job of the hub runs with the floor's
instant bodies (``bench/_floor_defs.py``) and blocks on the pool at its first warehouse step.
After ``--hold`` seconds the stand-in frees the slot. Reported: the run worker's CPU seconds
while it waited (a waiting executor should sleep) and the seconds from the slot's release to
the blocked step's launch (Dagster polls the pool with its own interval).

    .venv/bin/python bench/pool_wait.py [--job sync_luonan] [--hold 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import _timeline  # noqa: E402

POOL = "duckdb_warehouse"
HOLDER = ("another-run", "another_merge")


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", default="sync_luonan")
    parser.add_argument("--mode", default="incremental")
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--dagster-yaml", type=Path, default=_common.REPO / "dagster.yaml")
    args = parser.parse_args()
    base, homes = _common.fresh_homes("hub-pool-wait-")
    shutil.copyfile(args.dagster_yaml, Path(homes["DAGSTER_HOME"]) / "dagster.yaml")
    env = {
        **os.environ,
        **homes,
        "HUB_PROFILE": "demo",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO), str(BENCH)])),
    }
    os.environ.update(homes)
    import dagster as dg

    instance = dg.DagsterInstance.get()
    storage = instance.event_log_storage
    storage.set_concurrency_slots(POOL, 1)
    assert storage.claim_concurrency_slot(POOL, *HOLDER).is_claimed
    out = base / "report.json"
    cmd = [sys.executable, str(BENCH / "dagster_floor.py"), "worker", str(out), args.mode, args.job]
    load = os.getloadavg()[0]
    with open(base / "worker.log", "wb") as log:
        worker = subprocess.Popen(cmd, env=env, cwd=_common.REPO, stdout=log, stderr=log)
        # wait until the run's warehouse step is pending on the pool, then hold it
        deadline = time.time() + 120
        while time.time() < deadline and not [
            p for p in storage.get_concurrency_info(POOL).pending_steps if p.run_id != HOLDER[0]
        ]:
            time.sleep(0.1)
        cpu_blocked_from, blocked_from = _proc_cpu(worker.pid), time.time()
        time.sleep(args.hold)
        cpu_waiting = _proc_cpu(worker.pid) - cpu_blocked_from
        waited = time.time() - blocked_from
        freed_at = time.time()
        storage.free_concurrency_slot_for_step(*HOLDER)
        code = worker.wait()
    if code != 0:
        sys.stderr.write((base / "worker.log").read_text(errors="replace")[-4000:])
        raise SystemExit(f"worker failed ({code}); kept {base}")
    run = json.loads(out.read_text())["runs"][0]
    timeline = run["timeline"]
    # a step's launch (its process; in process: its start) after the release
    launches = [
        run["run_start"] + t.get("launch", t.get("start", 0.0))
        for t in timeline["steps"].values()
        if run["run_start"] + t.get("launch", t.get("start", 0.0)) >= freed_at - 0.5
    ]
    delay = min(launches) - freed_at if launches else float("nan")
    print(
        f"{args.job}: blocked {waited:.1f} s on the pool: run worker CPU {cpu_waiting:.2f} s "
        f"({cpu_waiting / waited:.0%} of a core); slot freed → next step launched {delay:.2f} s "
        f"(load {load:.1f} → {os.getloadavg()[0]:.1f})"
    )
    print(_timeline.describe(timeline))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
