"""Validation read lazily, per partition of households and in chunks (issue 13), finds exactly
what validation of whole frames in memory finds: every reject, finding and conflict, with the
same messages, on the simulator's records with defects injected."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from schemas.validate import ValidationContext, validate_county
from tests.unit.test_schemas_simulator_truth import _frames

world_module = pytest.importorskip("simulator.world")


@pytest.fixture(scope="module")
def world():
    return world_module.World(seed=11, scale=0.01, defect_rate=0.05)


def _everything(result) -> dict[str, list[tuple]]:
    return {
        f"{entity}.{level}": sorted(getattr(v, level).rows())
        for entity, v in result.items()
        for level in ("rejects", "findings", "conflicts")
    }


def _whole_and_parted(frames, context, tmp_path, monkeypatch):
    """Validation of the whole frames, and of the same frames from Parquet files in many
    partitions of 40 households and chunks of 333 rows."""
    whole = validate_county(frames, context)
    for entity, df in frames.items():
        df.write_parquet(tmp_path / f"{entity}.parquet")
    lazy = {e: pl.scan_parquet(tmp_path / f"{e}.parquet") for e in frames}
    monkeypatch.setenv("HUB_VALIDATION_PARTITION_HOUSEHOLDS", "40")  # many partitions
    return whole, validate_county(lazy, context, chunk_rows=333)


@pytest.mark.parametrize("slug", ["luonan", "shangzhou"])
def test_partitions_and_chunks_find_what_whole_frames_find(world, slug, tmp_path, monkeypatch):
    county = next(c for c in world.counties if c.slug == slug)
    frames = _frames(world, county)
    context = ValidationContext(as_of=date(2016, 7, 1))
    whole, parted = _whole_and_parted(frames, context, tmp_path, monkeypatch)

    assert frames["household"].height > 3 * 40  # really several partitions
    assert _everything(parted) == _everything(whole)
    for entity, v in parted.items():
        assert v.rejected_rows.to_list() == whole[entity].rejected_rows.to_list()
        assert v.accepted.height == whole[entity].accepted.height
    assert sum(v.rejects.height for v in whole.values()) > 20  # defects were there to find


def test_partitions_find_orphans_against_the_warehouse_households_as_whole_frames_do(
    world, tmp_path, monkeypatch
):
    """Children whose household is not in the batch but in the warehouse
    (``existing_households``, narrowed to each partition's own households) are not orphans;
    those whose household is in neither are, exactly as validation of whole frames finds."""
    county = next(c for c in world.counties if c.slug == "luonan")
    frames = _frames(world, county)
    households = frames["household"]["household_no"].unique().sort()
    absent = households.gather_every(3)  # a third of the households not in this batch
    frames["household"] = frames["household"].filter(
        ~pl.col("household_no").is_in(absent.implode())
    )
    in_core = pl.DataFrame({"household_no": absent.gather_every(2)})  # half of them in core
    context = ValidationContext(as_of=date(2016, 7, 1), existing_households=in_core)
    whole, parted = _whole_and_parted(frames, context, tmp_path, monkeypatch)

    assert _everything(parted) == _everything(whole)
    orphans = whole["person"].rejects.filter(pl.col("rule") == "orphan_household")
    assert orphans.height > 0  # members of households in neither the batch nor core
    for entity, v in parted.items():
        assert v.rejected_rows.to_list() == whole[entity].rejected_rows.to_list()
