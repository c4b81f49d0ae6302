"""The merge step's memory does not grow with the county (issue 13): no timing, a peak.

洛南 is landed at scale 0.1 and at scale 0.5 (five times the records: about 20k and 98k) from
the simulator on loopback; each landing is then merged by the real merge step
(``pipelines.sync.merge``) in a FRESH child process (``python -m tests.memory.merge_step``)
into a fresh warehouse, and the child reports its own ``VmHWM`` (the kernel's high-water mark,
so no peak is missed between samples; a fresh interpreter holds nothing of this process).

What bounds the step is the size of its pieces, not the county: validation's per-row chunks
(``HUB_VALIDATION_CHUNK_ROWS``), its partitions of households
(``HUB_VALIDATION_PARTITION_HOUSEHOLDS``) and DuckDB's ``memory_limit``
(``HUB_MERGE_MEMORY_LIMIT``). The test makes the pieces small, so that a small county already
spans many of them, and asserts that five times the records add less than
``GROWTH_BOUND_MB``.

Why 60 MB (measured on this machine, 2 cores, under load; figures in bench/profiles/merge.md):
- the bounded step: 0.1 → 0.5 adds 23–39 MB. What still grows below the county sizes that
  matter: Parquet is read a row group at a time, and a row group holds up to 262,144 rows
  (polars' default), so a small county's reads grow until its files pass one row group; and
  the keys the merge keeps (rejected positions, issue rows, accepted keys);
- the same step with the staged frames held whole in memory again (``staged.load`` instead of
  ``staged.open_verified``: whole-county frames in Python, registered as Arrow in DuckDB)
  adds 85–97 MB, and fails this test (0.1 → 0.3 already adds 34–65 MB); the merge before
  issue 13 (no DuckDB limit) added 145 MB from 0.1 to 0.3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.conftest import serving

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("memory")]

REPO = Path(__file__).resolve().parents[2]
GROWTH_BOUND_MB = 60
PIECES = {
    "HUB_MERGE_MEMORY_LIMIT": "96MB",
    "HUB_VALIDATION_PARTITION_HOUSEHOLDS": "2000",
    "HUB_VALIDATION_CHUNK_ROWS": "5000",
}


def land(tmp_path: Path, monkeypatch, scale: float) -> Path:
    """Land a full 洛南 sync at ``scale``; returns the Landed as JSON for the child."""
    from pipelines import sync
    from seeds.registry import county

    home = tmp_path / f"land-{scale}"
    monkeypatch.setenv("HUB_HOME", str(home))
    with serving(monkeypatch, scale=scale, defect_rate=0.01):
        landed = sync.land(county("luonan"), "full")
    path = tmp_path / f"landed-{scale}.json"
    path.write_text(json.dumps(asdict(landed)))
    return path


def merge_peak(tmp_path: Path, landed: Path, scale: float) -> dict:
    """Merge a landing in a fresh child process into a fresh warehouse; its own figures."""
    env = {**os.environ, **PIECES, "HUB_HOME": str(tmp_path / f"merge-{scale}")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.memory.merge_step", str(landed)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_merge_peak_does_not_grow_with_the_county(tmp_path, monkeypatch):
    small = merge_peak(tmp_path, land(tmp_path, monkeypatch, 0.1), 0.1)
    large = merge_peak(tmp_path, land(tmp_path, monkeypatch, 0.5), 0.5)
    assert large["fetched"] > 4.5 * small["fetched"]  # really about five times the records
    assert not small["pyarrow_imported"] and not large["pyarrow_imported"], (
        "the merge step imported pyarrow (~60 MB of its RSS): a frame went through "
        "con.register/.pl() instead of warehouse.batch.load_frame/frame_of"
    )
    # a merge redone at the retry's 1 GB limit would hide a statement that stopped spilling
    assert small["memory_retries"] == 0 and large["memory_retries"] == 0, (
        "a merge ran out of DuckDB's forced limit and was redone at the larger one: some "
        "statement no longer fits (bench/profiles/merge_trace.py names it)"
    )
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    assert growth < GROWTH_BOUND_MB, (
        f"the merge step's peak grew by {growth:.0f} MB from {small['fetched']:,} to "
        f"{large['fetched']:,} records ({small['peak_rss_mb']:.0f} → "
        f"{large['peak_rss_mb']:.0f} MB): something holds whole-county data again"
    )
