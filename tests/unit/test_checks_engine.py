"""The per-row checks (pandera models, sanity) run their many small polars queries on the
in-memory engine (``validate_chunks.CHECKS_ENGINE``): polars 2.1's default engine for a
``collect()`` is the streaming one, several times the fixed CPU cost of a small query, and
pandera's polars backend collects each check on its own (bench/profiles/merge.md, "A first
full merge's CPU, cut"). The setting is the process's: it must be back as it was afterwards."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars._plr import get_engine_affinity

import schemas.validate_chunks as validate_chunks
from schemas.validate import ValidationContext, validate_county
from tests.unit.test_schemas_simulator_truth import _frames

world_module = pytest.importorskip("simulator.world")


def test_per_row_checks_run_in_memory_and_leave_the_engine_as_it_was(tmp_path, monkeypatch):
    world = world_module.World(seed=11, scale=0.01, defect_rate=0.05)
    county = next(c for c in world.counties if c.slug == "luonan")
    frames = _frames(world, county)
    for entity, df in frames.items():
        df.write_parquet(tmp_path / f"{entity}.parquet")
    lazy = {e: pl.scan_parquet(tmp_path / f"{e}.parquet") for e in frames}

    engines: list[str] = []
    real = validate_chunks._column_failures

    def recording(entity, df):
        engines.append(get_engine_affinity())
        return real(entity, df)

    monkeypatch.setattr(validate_chunks, "_column_failures", recording)
    before = get_engine_affinity()
    result = validate_county(lazy, ValidationContext(as_of=date(2016, 7, 1)), chunk_rows=500)

    assert len(engines) > len(frames)  # several chunks, every entity
    assert set(engines) == {"in-memory"}
    assert get_engine_affinity() == before  # the process's default is back
    assert sum(v.rejects.height for v in result.values()) > 0  # the checks ran and found
