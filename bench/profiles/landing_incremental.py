"""The landing step of a one-day incremental, one county at a time, in a step-like child: what
``bench/incremental_city.py`` times as ``<county>_landing`` (bench/profiles/merge.md, "The small
counties' incremental steps").

    .venv/bin/python bench/profiles/landing_incremental.py serve --home /tmp/linc [--scale 1.0]
    .venv/bin/python bench/profiles/landing_incremental.py land --home /tmp/linc \
        [--county luonan --county zhenan] [--repeat 2] [--repo /tmp/main] \
        [--cprofile DIR | --py-spy DIR]

``serve`` runs the demo without Dagster (a full sync of all seven counties, landed and merged
into ``--home``), moves the simulator's clock one day on, renders its feeds (``prepare``, as the
benchmarks do before timing), writes the simulator's environment to ``--home``/sim.json and
serves until it is stopped (Ctrl-C / SIGTERM). ``land`` lands one county's incremental from
that warehouse in a fresh child (``pipelines.preload`` imported first, as a step forked from
the executor's forkserver has it; ``--repo``: another tree's code, e.g. ``git archive main``),
prints its CPU seconds by phase (the cursors, the fetch and landing, the staging) and removes
the landing again, so every run fetches the same day. The landings only read the warehouse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

from merge_incremental import TIMED_PHASES, demo_then_day  # noqa: E402

CHILD = (
    """
import json, resource, sys, time
from dataclasses import asdict
sys.path.insert(0, {repo!r})
t_import = time.process_time()
import pipelines.preload  # noqa: F401  (what a step forked from the forkserver holds)
t_import = time.process_time() - t_import
from pipelines import sync
from seeds.registry import county

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

"""
    + TIMED_PHASES
    + """
import pipelines.landing as planding
timed_phase(sync.cursors, 'starting_watermarks', 'cursors')
timed_phase(sync.landing, 'land', 'fetch + land (+ staging alongside)')
timed_phase(planding, 'read_manifest', '  manifest read')
timed_phase(planding, 'remove_leftovers', '  leftovers removed')
timed_phase(sync, 'stage', 'stage')
timed_phase(sync.staged_io, 'save', '  staged saved')
c = county({slug!r})
profiler = None
if {cprofile!r}:
    import cProfile
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
t0, w0 = cpu(), time.perf_counter()
landed = sync.land(c, 'incremental')
step, wall = cpu() - t0, time.perf_counter() - w0
if profiler is not None:
    import pstats
    profiler.disable()
    with open({cprofile!r} + '/' + c.slug + '.txt', 'w') as f:
        pstats.Stats(profiler, stream=f).sort_stats('cumulative').print_stats(120)
        pstats.Stats(profiler, stream=f).sort_stats('tottime').print_stats(60)
for label, t in phase_cpu.items():
    print(f'{{t:7.3f}} CPU-s  phase: {{label}}')
header = json.loads(open(landed.staged_path + '/staged.json').read())
print(json.dumps({{'county': c.slug, 'step_cpu_s': round(step, 3), 'wall_s': round(wall, 2),
    'process_cpu_s': round(cpu(), 2), 'preload_cpu_s': round(t_import, 2),
    'mode': landed.mode, 'source': landed.watermarks_source, 'pages': landed.pages,
    'landed_kb': round(landed.bytes / 1024, 1),
    'staged_rows': {{k: v['rows'] for k, v in header['files'].items()}},
    'manifest': landed.manifest_path, 'landed': asdict(landed)}}))
"""
)


def serve(home: Path, scale: float, days: float) -> None:
    sim = demo_then_day(home, scale, days)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        (home / "sim.json").write_text(json.dumps(sim.env()))
        print(f"serving: {home / 'sim.json'}", flush=True)
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def land(
    home: Path,
    slugs: list[str],
    repeat: int,
    repo: Path,
    cprofile: str | None,
    spy: str | None,
    keep: bool = False,
) -> None:
    sim_env = json.loads((home / "sim.json").read_text())
    env = {**os.environ, **sim_env, "HUB_HOME": str(home), "HUB_PROFILE": "demo"}
    for _ in range(repeat):
        for slug in slugs:
            code = CHILD.format(repo=str(repo), slug=slug, cprofile=cprofile)
            cmd = [sys.executable, "-c", code]
            if spy:
                out = Path(spy) / f"{slug}-{time.strftime('%H%M%S')}.txt"
                py_spy = Path(sys.executable).with_name("py-spy")
                cmd = [
                    str(py_spy),
                    "record",
                    "-r",
                    "250",
                    "--format",
                    "raw",
                    "-o",
                    str(out),
                    "--",
                    *cmd,
                ]
            load = os.getloadavg()[0]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                print(done.stderr[-3000:])
                raise SystemExit(done.returncode)
            *lines, last = done.stdout.strip().splitlines()
            print("\n".join(lines))
            result = json.loads(last)
            manifest = Path(result.pop("manifest"))
            if keep:  # for merge_incremental.py: its <slug>.landed.json and warehouse-base
                (home / f"{slug}.landed.json").write_text(json.dumps(result.pop("landed")))
            else:  # every run fetches the same day: its landing goes, the cursor cache stays
                result.pop("landed")
                shutil.rmtree(manifest.parent, ignore_errors=True)
            print(json.dumps({**result, "repo": str(repo), "load": round(load, 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("serve", "land"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--county", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--repo", type=Path, default=REPO, help="the tree whose code lands")
    parser.add_argument("--cprofile", help="a directory for each landing's cProfile (CPU clock)")
    parser.add_argument("--py-spy", dest="spy", help="a directory for py-spy's collapsed stacks")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the landings and write <slug>.landed.json for merge_incremental.py",
    )
    args = parser.parse_args()
    if args.action == "serve":
        serve(args.home, args.scale, args.days)
    else:
        slugs = args.county or ["luonan", "shangnan", "shanyang", "zhenan", "danfeng", "zhashui"]
        land(args.home, slugs, args.repeat, args.repo.resolve(), args.cprofile, args.spy, args.keep)


if __name__ == "__main__":
    main()
