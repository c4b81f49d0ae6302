"""The floor scripts of ``bench/`` run against the simulator: ``_fetch_floor.py`` and
``_load_floor.py`` (洛南's listings fetched and dropped, or loaded as delivered; ``dlt_vs_hub.py``)
and ``_reread_floor.py`` (商州's listings fetched and parsed; ``incremental_city.py``)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from _common import BENCH, _self_cpu, run_measured


def run_floor(sim, script: str, county: str) -> dict:
    """A floor script against ``county``'s platform, in a fresh process of the project's venv:
    the JSON line it printed, with its wall time and the CPU seconds of the client and the
    simulator."""
    creds = sim.credentials(county)
    with tempfile.TemporaryDirectory(prefix="floor-") as work:
        env = {
            **os.environ,
            "BENCH_URL": sim.base_url(county),
            "BENCH_KEY": creds["key"],
            "BENCH_SECRET": creds["secret"],
            "BENCH_DB": str(Path(work) / "floor.duckdb"),
        }
        log = Path(work) / "floor.log"
        driver_cpu = _self_cpu()
        code, wall, usage = run_measured(
            [sys.executable, str(BENCH / script)], env=env, cwd=BENCH, log=log
        )
        simulator_cpu = _self_cpu() - driver_cpu
        output = log.read_text(errors="replace")
    if code != 0:
        raise SystemExit(f"{script} failed:\n{output[-4000:]}")
    return {
        **json.loads(output.strip().splitlines()[-1]),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "simulator_cpu_s": simulator_cpu,
    }
