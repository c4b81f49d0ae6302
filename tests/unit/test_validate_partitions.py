"""Validation read lazily, per partition of households and in chunks (issue 13), finds exactly
what validation of whole frames in memory finds: every reject, finding and conflict, with the
same messages, on the simulator's records with defects injected."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import polars as pl
import pytest

from schemas import validate, validate_chunks
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


def _lazy(frames, tmp_path):
    for entity, df in frames.items():
        df.write_parquet(tmp_path / f"{entity}.parquet", row_group_size=97)
    return {e: pl.scan_parquet(tmp_path / f"{e}.parquet") for e in frames}


@contextmanager
def _filtered(frames, parts, workdir=None):
    """How each partition was read before the one-pass split: every file scanned once per
    partition with the hash filter (``partition_frame``)."""
    yield lambda entity, part: validate_chunks.partition_frame(entity, frames[entity], part, parts)


def _defective(world):
    """洛南's records with a few persons and a measure of no household (null household_no):
    their partition is the null's hash, in the split as in the filter."""
    frames = _frames(world, next(c for c in world.counties if c.slug == "luonan"))
    for entity, every in (("person", 17), ("measure", 5)):
        nulls = pl.int_range(pl.len()) % every == 3
        frames[entity] = frames[entity].with_columns(
            household_no=pl.when(nulls).then(None).otherwise(pl.col("household_no"))
        )
    return frames


def test_the_split_gives_each_partition_what_the_filter_gave(world, tmp_path, monkeypatch):
    """Every household-keyed file split once (read 250 rows at a time, written when 600 are
    held: several files per partition) gives each partition the rows, order and columns of the per-partition filter,
    from a folder of ``workdir`` that is gone afterwards."""
    frames = _defective(world)
    lazy = _lazy(frames, tmp_path)
    monkeypatch.setattr(validate_chunks, "SPLIT_ROWS", 250)
    monkeypatch.setattr(validate_chunks, "SPLIT_HELD_ROWS", 600)
    parts = 7
    workdir = tmp_path / "spill"  # DuckDB's temp directory, with a spilled file of its own
    workdir.mkdir()
    (workdir / "duckdb_temp_storage.tmp").write_bytes(b"")
    keyed = {e: lazy[e] for e in validate_chunks.HOUSEHOLD_KEYED if e in lazy}
    with validate_chunks.household_partitions(keyed, parts, workdir) as partition:
        ours = [p for p in workdir.iterdir() if p.name.startswith("validation-")]
        assert len(ours) == 1 and ours[0].stat().st_mode & 0o077 == 0  # owner-only
        seen = 0
        for part in range(parts):
            for entity, frame in keyed.items():
                split = partition(entity, part)
                filtered = validate_chunks.partition_frame(entity, frame, part, parts)
                assert split.schema == filtered.schema and split.equals(filtered)
                seen += split.height
    assert [p.name for p in workdir.iterdir()] == ["duckdb_temp_storage.tmp"]  # ours removed
    assert seen == sum(f.height for e, f in frames.items() if e in keyed)


def test_validation_split_once_finds_what_the_filtered_partitions_found(
    world, tmp_path, monkeypatch
):
    """The whole validation, the files split once against each partition scanning every file:
    the same rejects, findings and conflicts in the same order, the same rejected rows."""
    frames = _defective(world)
    lazy = _lazy(frames, tmp_path)
    context = ValidationContext(
        as_of=date(2016, 7, 1),
        existing_households=frames["household"].select("household_no").gather_every(4),
    )
    monkeypatch.setenv("HUB_VALIDATION_PARTITION_HOUSEHOLDS", "40")
    monkeypatch.setattr(validate_chunks, "SPLIT_ROWS", 300)
    monkeypatch.setattr(validate_chunks, "SPLIT_HELD_ROWS", 700)
    assert validate_chunks.partitions(lazy) > 5  # several partitions
    split = validate_county(lazy, context, chunk_rows=333, workdir=tmp_path / "spill")
    assert not (tmp_path / "spill").exists()  # made for the split (DuckDB had not), removed
    with monkeypatch.context() as m:
        m.setattr(validate, "household_partitions", _filtered)
        filtered = validate_county(lazy, context, chunk_rows=333)

    for entity, v in split.items():
        for level in ("rejects", "findings", "conflicts", "rejected_rows"):
            assert getattr(v, level).equals(getattr(filtered[entity], level)), (entity, level)
        assert v.accepted.height == filtered[entity].accepted.height
    rules = pl.concat([v.rejects for v in split.values()])["rule"].unique().to_list()
    assert {"orphan_household", "parent_rejected", "head_count"} <= set(rules)
    assert sum(v.findings.height for v in split.values()) > 0
