"""validate_county against the simulator's truth, on its canonical records (no HTTP, no
normaliser): every injected defect is found under its rule and level, and nothing else is.

The end-to-end truth test goes through the platforms and the normalisers; this one pins down the
validation semantics alone, so a disagreement is located quickly.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from schemas.columns import ENTITIES, PARSE_ERROR, conform
from schemas.validate import ValidationContext, validate_county

world_module = pytest.importorskip("simulator.world")

# Produced by the workbook renderer and its normaliser, not visible in canonical records.
RENDERED_ONLY = {"id_number_as_number"}
WORKBOOK_ENTITIES = ("household", "person")
TRUTH_KEY = ["entity", "source_key", "rule", "level"]


@pytest.fixture(scope="module")
def world():
    return world_module.World(seed=5, scale=0.01, defect_rate=0.05)


def _frames(world, county) -> dict[str, pl.DataFrame]:
    entities = WORKBOOK_ENTITIES if county.kind == "workbook" else tuple(ENTITIES)
    frames = {}
    for entity in entities:
        df = world.records(county.code, entity).with_columns(
            pl.col("updated_at").dt.convert_time_zone("UTC").alias("source_updated_at"),
            pl.lit("sim#0").alias("raw_ref"),
            pl.lit([], pl.List(PARSE_ERROR)).alias("parse_errors"),
        )
        frames[entity] = conform(entity, df)
    return frames


def _found(result) -> pl.DataFrame:
    parts = []
    for entity, v in result.items():
        for level, frame in (("reject", v.rejects), ("finding", v.findings)):
            parts.append(frame.select("entity", "source_key", "rule", level=pl.lit(level)))
        parts.append(
            v.conflicts.select(
                entity=pl.lit(entity),
                source_key="source_key",
                rule=pl.lit("duplicate_id_number"),
                level=pl.lit("conflict"),
            )
        )
    return pl.concat(parts).unique()


@pytest.mark.parametrize("slug", ["luonan", "shangzhou", "shanyang", "zhashui"])
def test_validation_finds_exactly_the_injected_defects(world, slug):
    county = next(c for c in world.counties if c.slug == slug)
    frames = _frames(world, county)
    result = validate_county(frames, ValidationContext(as_of=date(2016, 7, 1)))
    truth = (
        world.truth(county.code)
        .filter(pl.col("entity").is_in(list(frames)) & ~pl.col("rule").is_in(list(RENDERED_ONLY)))
        .select(TRUTH_KEY)
        .unique()
    )
    assert truth.height > 0
    found = _found(result)
    missing = truth.join(found, on=TRUTH_KEY, how="anti").sort(TRUTH_KEY)
    extra = found.join(truth, on=TRUTH_KEY, how="anti").sort(TRUTH_KEY)
    assert missing.is_empty(), f"defects not found:\n{missing}"
    assert extra.is_empty(), f"issues the simulator did not inject:\n{extra}"
