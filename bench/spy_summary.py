"""Summarise a ``py-spy record --subprocesses --format raw`` profile of a benchmark: where the
samples of each process of the run went, and how much of a step process was the hub's own work.

    py-spy record --subprocesses --format raw --rate 50 -o luonan.raw -- \
        .venv/bin/python bench/sync_luonan.py --repeat 1
    .venv/bin/python bench/spy_summary.py luonan.raw [--top 25]

Each raw line is ``frame;frame;... count`` with the process as the first frame. A process is
classed by its stack: the driver (simulator thread, memory sampler), the run worker (Dagster's
orchestration: plan, events, executor loop), the forkserver, and the step processes (forked
from it): a step's samples are the hub's work when a frame of the hub's step code
(``pipelines/defs``, ``pipelines/sync.py`` …) is on the stack below Dagster's ``core_execute``,
and Dagster's otherwise (process start, event writes, IO manager, log capture).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

PROCESS = re.compile(r'process (\d+):"([^"]*)"')
#: Frames that mark the hub's own work inside a step process (the asset bodies and below).
HUB_STEP = re.compile(r"\(pipelines/defs/(?:counties|city)\.py:")


def classify(line: str) -> tuple[str, str]:
    """(process kind, part) of one sample: the process is the last ``process N:"cmd"`` frame
    (a command line may itself contain ``;``, so the line is searched as a whole)."""
    cmd = PROCESS.findall(line)[-1][1] if PROCESS.search(line) else ""
    if "forkserver" in cmd:
        # the forkserver and every step process forked from it share its command line
        if "child_process_executor.py" not in line:
            return "forkserver", "preload + fork loop"
        step = "step"
        for name in ("landing", "merge", "marts", "snapshot"):
            if re.search(rf"[.>]{name} \(pipelines/defs/", line):
                step = f"step:{name}"
                break
        if HUB_STEP.search(line):
            return step, "hub work (asset body)"
        return step, "dagster (start-up, events, IO manager)"
    if "_common.py run" in cmd or "dagster-job" in cmd:
        return "run worker", "dagster orchestration"
    if "resource_tracker" in cmd:
        return "resource tracker", "-"
    if "simulator/" in line:
        return "driver", "simulator serving pages"
    return "driver", "other (memory sampler, waits)"


def leaf(frames: list[str]) -> str:
    return frames[-1] if frames else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    parts: Counter[tuple[str, str]] = Counter()
    leaves: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    total = 0
    with open(args.raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            key = classify(stack)
            parts[key] += int(count)
            leaves[key][_useful_frame(frames)] += int(count)
            total += int(count)
    print(f"{total} samples")
    print(f"{'process':<18} {'part':<42} {'samples':>8} {'share':>6}")
    for (kind, part), n in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"{kind:<18} {part:<42} {n:>8} {n / total:>6.1%}")
    for key, counter in sorted(leaves.items(), key=lambda kv: -sum(kv[1].values())):
        if sum(counter.values()) < total * 0.02:
            continue
        print(f"\n{key[0]} / {key[1]}: top frames")
        for frame, n in counter.most_common(args.top):
            print(f"  {n:>6}  {frame[:150]}")


HUB_FRAME = re.compile(r"\((?:pipelines|warehouse|schemas|base|seeds)/")


def _useful_frame(frames: list[str]) -> str:
    """The innermost frame of the hub, else of Dagster, else the leaf (library internals are
    grouped under the frame that called them)."""
    frames = [f for f in frames if not f.startswith("process ") and "(" in f]
    for pattern in (HUB_FRAME, re.compile(r"\(dagster/")):
        for frame in reversed(frames):
            if pattern.search(frame):
                return frame
    return leaf(frames)


if __name__ == "__main__":
    main()
