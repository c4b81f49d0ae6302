"""Child of the landing memory tests (``test_landing_memory``, ``test_battle_memory``,
``test_workbook_memory``): one county's landing step (fetch → land → normalise → stage) in this
fresh process; prints its resident memory after the imports (the baseline) and its peak
(VmHWM), in MB, as one JSON line.

    python -m tests.e2e.landing_rss <slug>     (HUB_HOME and HUB_<SLUG>_URL/... set)

``land_in_fresh_process`` is the tests' side: it runs this module and reads the line back;
``landing_growth`` lands a county at a small and a larger scale that way and gives the growth of
the step's peak against the growth of what was landed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def land_in_fresh_process(handle, home: Path, slug: str, **settings: str) -> dict:
    """Land ``slug`` from the simulator ``handle`` into ``home`` in a fresh process with the
    extra ``settings`` (environment variables); its figures."""
    env = {**os.environ, **handle.env(), "HUB_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.landing_rss", slug],
        cwd=REPO,
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Growth:
    """One county landed at two scales: each run's figures, and what grew between them (MB)."""

    small: dict
    large: dict
    landed_mb: float  # growth of the landed bytes
    peak_mb: float  # growth of the landing step's peak RSS
    figures: dict  # scale -> figures, for the failure message


def landing_growth(
    monkeypatch, tmp_path: Path, slug: str, scales: tuple[float, float], counties=None, **settings
) -> Growth:
    """Land ``slug`` at ``scales`` (small, large), each from a fresh simulator (``counties``: the
    ones it generates; default all) into a fresh home, in a fresh process with ``settings``."""
    from tests.conftest import serving  # the tests' side only: not in the measured child

    figures = {}
    for scale in scales:
        world = {"scale": scale} | ({"counties": counties} if counties else {})
        with serving(monkeypatch, **world) as handle:
            figures[scale] = land_in_fresh_process(
                handle, tmp_path / f"hub-{scale}", slug, **settings
            )
    small, large = (figures[scale] for scale in scales)
    return Growth(
        small,
        large,
        (large["landed_bytes"] - small["landed_bytes"]) / 2**20,
        large["peak_mb"] - small["peak_mb"],
        figures,
    )


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(slug: str) -> None:
    from pipelines import sync
    from seeds.registry import county

    baseline = _status_mb("VmRSS")  # interpreter, polars, DuckDB, pyarrow … loaded
    landed = sync.land(county(slug), "full")
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": _status_mb("VmHWM"),
                "landed_bytes": landed.bytes,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1])
