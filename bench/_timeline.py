"""Where the wall time of a multi-step run goes, read from its Dagster event log.

For each step: when the run worker launched its process (``STEP_WORKER_STARTING``), when the
step process began its body (``STEP_START``), when its input was loaded and when it succeeded.
From those the serial chain of the warehouse steps (the merges, one at a time) is split into
the merges' own time and its gaps: no merge had landed yet, the executor had not launched the
next one (the previous end noticed, a process slot free, the pool claimed), and the launched
process had not reached its body yet (fork, instance, plan, input). The timestamps are the
processes' own, so the split is far less load-sensitive than the run's wall.

    from _timeline import collect, describe   # the bench workers store collect() per run
    .venv/bin/python bench/_timeline.py bench/results/incremental_city-*.json   # saved runs
"""

from __future__ import annotations

KINDS = {
    "STEP_WORKER_STARTING": "launch",
    "STEP_WORKER_STARTED": "forked",
    "STEP_START": "start",
    "LOADED_INPUT": "input",
    "STEP_SUCCESS": "end",
    "STEP_FAILURE": "end",
    "STEP_SKIPPED": "skipped",
}


def collect(instance, run_id: str) -> dict:
    """The run's step events as seconds from the run's start: {step: {kind: t}} plus the run's
    start → end and the seconds of its first step launch."""
    stats = instance.get_run_stats(run_id)
    start = stats.start_time
    steps: dict[str, dict[str, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        kind = KINDS.get(event.event_type_value)
        if kind is None:
            continue
        # the first of each kind (a step loads one input; the worker events come once)
        steps.setdefault(event.step_key, {}).setdefault(kind, round(record.timestamp - start, 3))
    return {"run_s": round(stats.end_time - start, 3), "steps": steps}


def _merge_chain(steps: dict[str, dict[str, float]], merge: str, landing: str) -> list[dict]:
    chain = []
    for key, t in steps.items():
        if key.endswith(merge) and "start" in t and "end" in t:
            county = key[: -len(merge)]
            landed = steps.get(county + landing, {}).get("end", 0.0)
            chain.append({"step": key, "landed": landed, **t})
    return sorted(chain, key=lambda s: s["start"])


def gaps(timeline: dict, merge: str = "_merge", landing: str = "__landing") -> dict:
    """The serial merge chain's time split: merging; waiting for a landing (no merge had landed);
    the executor's wait (a merge had landed and the previous one had ended, but its process was
    not launched yet: the end noticed, a free process slot, the pool claimed); the process start
    (launched to its body)."""
    chain = _merge_chain(timeline["steps"], merge, landing)
    if not chain:
        return {}
    merging = waiting = executor = process = 0.0
    previous_end = chain[0]["start"]  # before the first merge: the landings, not the chain
    for s in chain:
        launch = s.get("launch", s["start"])
        gap = max(0.0, s["start"] - previous_end)
        ready = max(previous_end, s["landed"])
        waiting += min(gap, max(0.0, min(ready, s["start"]) - previous_end))
        executor += max(0.0, min(launch, s["start"]) - max(ready, previous_end)) if gap else 0.0
        process += min(gap, max(0.0, s["start"] - max(launch, ready)))
        merging += s["end"] - s["start"]
        previous_end = s["end"]
    first, last = chain[0], chain[-1]
    return {
        "first_merge_start_s": first["start"],
        "merge_span_s": round(last["end"] - first["start"], 3),
        "merging_s": round(merging, 3),
        "waiting_for_landing_s": round(waiting, 3),
        "executor_wait_s": round(executor, 3),
        "process_start_s": round(process, 3),
        "after_last_merge_s": round(timeline["run_s"] - last["end"], 3),
        "order": [s["step"].removesuffix(merge) for s in chain],
    }


def describe(timeline: dict, merge: str = "_merge", landing: str = "__landing") -> str:
    """A text timeline: one line per step in launch order, then the merge chain's split."""
    steps = timeline["steps"]
    lines = [
        f"    {'step':<22} {'launch':>7} {'start':>7} {'input':>7} {'end':>7}  "
        f"{'process':>7} {'body':>6}"
    ]

    def cell(t: dict, kind: str) -> str:
        return f"{t[kind]:7.2f}" if kind in t else "      –"

    for key, t in sorted(steps.items(), key=lambda kv: kv[1].get("launch", kv[1].get("start", 0))):
        process = t["start"] - t["launch"] if "start" in t and "launch" in t else None
        body = t["end"] - t["start"] if "end" in t and "start" in t else None
        lines.append(
            f"    {key:<22} {cell(t, 'launch')} {cell(t, 'start')} {cell(t, 'input')} "
            f"{cell(t, 'end')}  "
            + (f"{process:7.2f}" if process is not None else "      –")
            + (f" {body:6.2f}" if body is not None else "      –")
        )
    split = gaps(timeline, merge, landing)
    if split:
        lines.append(
            f"    run {timeline['run_s']:.2f} s: first merge at {split['first_merge_start_s']:.2f} s; "
            f"merge chain {split['merge_span_s']:.2f} s = merging {split['merging_s']:.2f} + "
            f"waiting for a landing {split['waiting_for_landing_s']:.2f} + executor's wait "
            f"{split['executor_wait_s']:.2f} + process starts {split['process_start_s']:.2f}; "
            f"after the last merge {split['after_last_merge_s']:.2f} s"
        )
    return "\n".join(lines)


def _runs_of(payload: dict):
    """Every timeline of a saved bench result (``bench/results/*.json``), labelled."""
    for i, result in enumerate(payload.get("results", payload.get("runs", [])), 1):
        if result.get("full", {}).get("timeline"):  # incremental_city: the demo's full sync
            yield f"#{i} sync_all_counties (full)", result["full"]["timeline"]
        raw = result.get("raw", result)
        for run in raw.get("runs", []):
            if run.get("timeline") and run["job"] != "sync_city":
                yield f"#{i} {run['job']}", run["timeline"]


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    for path in sys.argv[1:]:
        for label, timeline in _runs_of(json.loads(Path(path).read_text(encoding="utf-8"))):
            print(f"{path} {label}:\n{describe(timeline)}")
