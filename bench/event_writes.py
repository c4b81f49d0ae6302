"""What Dagster's event log storage costs per event: a real run's events written again.

Reads every event of the runs in a kept ``DAGSTER_HOME`` (``bench/dagster_floor.py --keep``:
the 544 events of ``sync_all_counties`` and those of ``sync_city``, materialisations, check
evaluations, step and engine events as the hub's jobs write them), then stores them again, in
order, under a new run id into a fresh instance for each ``dagster.yaml`` given, one event per
``store_event`` as the run worker and the step processes do. Prints CPU and wall seconds per
event for each storage, alternating the storages ``--rounds`` times (the machine's load moves).

    .venv/bin/python bench/event_writes.py /tmp/hub-floor-xxxx/dagster dagster.yaml other.yaml
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path


def _events(dagster_home: Path) -> list:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    runs = sorted(instance.get_runs(), key=lambda r: instance.get_run_stats(r.run_id).start_time)
    return [entry for run in runs for entry in instance.all_logs(run.run_id)]


def _store(events: list, config: Path) -> tuple[float, float]:
    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix="hub-events-"))
    try:
        shutil.copyfile(config, home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)  # a config may name its paths by env
        instance = dg.DagsterInstance.from_config(str(home))
        storage = instance.event_log_storage
        run_id = str(uuid.uuid4())
        storage.store_event(events[0]._replace(run_id=run_id))  # creates the run's database
        cpu, wall = time.process_time(), time.perf_counter()
        for entry in events[1:]:
            storage.store_event(entry._replace(run_id=run_id))
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kept_dagster_home", type=Path)
    parser.add_argument("configs", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    events = _events(args.kept_dagster_home)
    n = len(events) - 1
    print(f"{n + 1} events; load {os.getloadavg()[0]:.1f}")
    for r in range(1, args.rounds + 1):
        for config in args.configs:
            cpu, wall = _store(events, config)
            print(
                f"round {r} {config.name}: {n} events {cpu:.2f} CPU-s ({1000 * cpu / n:.2f} ms "
                f"each), {wall:.2f} s wall ({1000 * wall / n:.2f} ms each); "
                f"load {os.getloadavg()[0]:.1f}"
            )


if __name__ == "__main__":
    main()
