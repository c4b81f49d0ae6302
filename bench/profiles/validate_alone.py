"""``validate_county`` alone on a landed sync's staged files, in this process: CPU seconds
(``getrusage``, polars' threads included), wall, peak RSS (``VmHWM``) and the CPU of its
parts (bench/profiles/merge.md, "Validation's partitions in one pass").

    .venv/bin/python bench/profiles/validate_alone.py <landed.json> --home /tmp/va [--repo DIR]

``--repo`` runs another tree's code (e.g. ``git archive main | tar -x -C /tmp/main``) with this
venv. Imports what a forked merge step starts with (``pipelines.preload``), reads the
validation context from the warehouse in ``--home`` (a fresh one: a first full), then
validates every staged entity lazily, as the merge does (no hash diff: every row checked).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

#: The functions whose CPU is reported (module attribute names; absent ones are skipped).
PARTS = {
    "schemas.validate": (
        "row_failures",
        "_by_household",
        "_household_rejects",
        "_child_rejects",
        "_findings",
        "conflict_candidates",
    ),
    "schemas.validate_chunks": ("_split",),
}


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed(spent: dict[str, float], module, name: str) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = cpu()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] += cpu() - start

    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("landed", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo))
    os.environ.update(HUB_HOME=str(args.home), HUB_PROFILE="demo")
    import importlib

    import pipelines.preload  # noqa: F401  (what a forked merge step starts with)
    import warehouse
    from pipelines import staged as staged_io
    from pipelines import sync
    from schemas import validate
    from seeds.registry import county as county_of

    landed = sync.Landed(**json.loads(args.landed.read_text()))
    county = county_of(landed.county_code)
    staged = staged_io.open_verified(Path(landed.staged_path), county.label)
    with warehouse.connect(args.home / "hub.duckdb") as con:
        context = sync._context(con, county, staged)
    lazy = {e: staged.scan(e) for e in staged.entities()}
    options = {}
    if "workdir" in inspect.signature(validate.validate_county).parameters:
        options["workdir"] = args.home / "hub.duckdb.tmp"  # the merge's DuckDB temp directory
    spent: dict[str, float] = defaultdict(float)
    for module, names in PARTS.items():
        loaded = importlib.import_module(module)
        for name in names:
            if hasattr(loaded, name):
                timed(spent, loaded, name)
    before = status_mb("VmRSS")
    start, wall = cpu(), time.perf_counter()
    out = validate.validate_county(lazy, context, **options)
    row = {
        "validate_cpu_s": round(cpu() - start, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(status_mb("VmHWM")),
        "rejects": sum(v.rejects.height for v in out.values()),
        "findings": sum(v.findings.height for v in out.values()),
        "load": round(os.getloadavg()[0], 1),
        "parts_cpu_s": {k: round(v, 2) for k, v in spent.items()},
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
