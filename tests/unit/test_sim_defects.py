"""The defect table drives the truth: every entry declares its entity, level and what it
records, and every defect a county's platform can carry is injected and recorded as declared."""

from __future__ import annotations

import polars as pl
import pytest

from simulator.world import World
from simulator.world.defects import DEFECTS, LEVELS
from simulator.world.injection import kinds_for


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=11, scale=0.02, defect_rate=0.05)


def test_each_entry_declares_what_it_records():
    for entity, table in DEFECTS.items():
        for rule, defect in table.items():
            assert defect.entity == entity, rule
            assert defect.level in {"reject", "finding", "conflict"}, rule
            assert defect.records.strip(), rule
            assert LEVELS[rule] == defect.level, f"{rule} has two levels"


def test_every_defect_a_platform_can_carry_is_in_the_truth_as_declared(world: World):
    expected, seen = set(), set()
    for county in world.counties:
        truth = world.truth(county.code)
        levels = truth.select("rule", "level").unique()
        assert dict(levels.iter_rows()) == {r: LEVELS[r] for r in levels["rule"]}, county.slug
        expected |= {(e, r) for e, rules in kinds_for(county).items() for r in rules}
        seen |= set(
            truth.filter(pl.col("rule") != "parent_rejected").select("entity", "rule").iter_rows()
        )
    assert expected == seen
