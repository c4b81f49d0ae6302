"""The simulator's output is a pure function of its seed: a fingerprint of every table.

The truth tests (tests/e2e/test_truth.py) and the tests of the platforms compare what the hub
loads with what the world generated, so the world must give the same records, defects and clock
changes for the same seed however its code is arranged. This test hashes every internal frame
(the served columns plus the simulator's own bookkeeping columns, in row order) and the truth
list of every county, at day 0, in the middle of a day and after a few days, and compares them
with the fingerprint recorded in ``sim_world_fingerprint.json``.

A change that alters the world on purpose (a new column, a different distribution) must
regenerate the file deliberately and say so in its commit:
``.venv/bin/python -m tests.unit.test_sim_world_fingerprint > tests/unit/sim_world_fingerprint.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from schemas.columns import ENTITIES
from simulator.world import World

RECORDED = Path(__file__).with_name("sim_world_fingerprint.json")


def _digest(df: pl.DataFrame) -> str:
    h = hashlib.sha256(repr(list(df.schema.items())).encode())
    h.update(df.write_json().encode())
    return h.hexdigest()[:16]


def _tables(world: World) -> dict[str, str]:
    out = {}
    for county in world.counties:
        state = world._state(county.code)
        for entity in ENTITIES:
            out[f"{county.code}/{entity}"] = _digest(state.frames[entity])
        out[f"{county.code}/truth"] = _digest(state.truth)
    return out


def fingerprint() -> dict:
    """Every table at day 0, mid-day (a day's plan half applied) and after three days; and a
    second world with more defects whose counties are first touched after the clock moved (so
    they replay the days on generation)."""
    world = World(seed=7, scale=0.05)
    out: dict = {"day0": _tables(world)}
    out["advance1"] = world.advance(days=2, minutes=13 * 60 + 7)
    out["mid"] = _tables(world)
    out["advance2"] = world.advance(days=1, minutes=11 * 60)
    out["day3"] = _tables(world)
    late = World(seed=11, scale=0.02, defect_rate=0.05)
    late.advance(days=2)
    out["late"] = _tables(late)
    return out


def test_the_world_is_exactly_the_recorded_one():
    expected = json.loads(RECORDED.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(fingerprint()))
    assert got.keys() == expected.keys()
    for phase, tables in expected.items():
        changed = sorted(
            t for t in tables.keys() | got[phase].keys() if got[phase].get(t) != tables.get(t)
        )
        assert not changed, f"{phase}: differs from the recorded world: {changed}"


if __name__ == "__main__":
    print(json.dumps(fingerprint(), indent=1, sort_keys=True))
