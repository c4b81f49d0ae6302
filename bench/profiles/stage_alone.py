"""The staging of one landed sync alone (normaliser + ``staged.save``), offline, in this process:
CPU seconds (utime / stime), minor page faults and peak RSS of the staging, and the staged files'
sha256 (to compare two trees' output). No fetch, no simulator, no warehouse.

    .venv/bin/python bench/profiles/stage_alone.py <manifest.json> --county shangzhou \
        --out /tmp/stage-out

The normaliser writes into ``--out`` (emptied first), never into the landing's own ``staged/``.
Run another tree's copy of this script (``/tmp/main/bench/profiles/stage_alone.py``) for a
before: it puts its own tree first on ``sys.path``. ``_RJEM_MALLOC_CONF`` in the environment
chooses polars' allocator decay (``pipelines.allocator_conf`` keeps an explicit one).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _status(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith(field + ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--county", default="shangzhou")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pipelines import staged as staged_io
    from pipelines import sync
    from pipelines.landing import read_manifest
    from seeds.registry import county

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    target = county(args.county)
    manifest = read_manifest(args.manifest)
    normalise = sync.normaliser_for(target)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    staged_io.save(normalise(target, manifest, {}, workdir=args.out), args.out)
    after = resource.getrusage(resource.RUSAGE_SELF)
    header = json.loads((args.out / "staged.json").read_text())
    print(
        json.dumps(
            {
                "utime_s": round(after.ru_utime - before.ru_utime, 2),
                "stime_s": round(after.ru_stime - before.ru_stime, 2),
                "minor_faults": after.ru_minflt - before.ru_minflt,
                "wall_s": round(time.perf_counter() - started, 2),
                "peak_rss_mb": round(_status("VmHWM"), 1),
                "files": {k: v["sha256"][:12] for k, v in sorted(header["files"].items())},
            }
        )
    )


if __name__ == "__main__":
    main()
