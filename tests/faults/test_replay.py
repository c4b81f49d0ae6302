"""Verified replay (issue 11, point 3): a corrupted landed page, a shortened staged file and a
short full listing are refused before anything is written; a replay is recorded as a replay."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from base.errors import ListingIncomplete, SourceError
from pipelines import staged as staged_io
from pipelines import sync
from pipelines.landing import read_manifest
from seeds.registry import county
from tests.e2e.helpers import live, warehouse_digest
from tests.faults.conftest import run_hub

pytestmark = pytest.mark.faults
LUONAN = county("luonan")
AUDIT = ("ops.watermark", "ops.sync_run", "ops.reject", "raw.page")


@pytest.fixture
def second_landing(world, hub_home):
    """luonan merged once in full, then landed in full again (not merged yet)."""
    sync.merge(LUONAN, sync.land(LUONAN, "full"))
    return sync.land(LUONAN, "full")


def test_a_corrupted_landed_page_is_refused(second_landing):
    before = warehouse_digest(AUDIT)
    page = next(
        p for p in read_manifest(second_landing.manifest_path).pages if p.entity == "household"
    )
    page.path.write_bytes(page.path.read_bytes()[: page.size // 2])  # truncated on disk

    with pytest.raises(SourceError) as refused:
        sync.merge(LUONAN, second_landing)
    message = str(refused.value)
    assert LUONAN.name in message and str(page.path) in message and "truncated" in message, message
    assert warehouse_digest(AUDIT) == before


def test_a_shortened_staged_file_is_refused(second_landing):
    before = warehouse_digest(AUDIT)
    frame = Path(second_landing.staged_path) / "frame.household.parquet"
    pl.read_parquet(frame).head(-10).write_parquet(frame)

    with pytest.raises(SourceError) as refused:
        sync.merge(LUONAN, second_landing)
    message = str(refused.value)
    assert str(frame) in message and "changed since it was written" in message, message
    assert warehouse_digest(AUDIT) == before


def test_a_full_listing_shorter_than_the_platform_count_deletes_nothing(second_landing):
    """Even a staged directory rewritten consistently (checksums and all) with rows missing, as
    a normaliser bug would, is refused before the absence of those rows deletes anything."""
    before = warehouse_digest(AUDIT)
    directory = Path(second_landing.staged_path)
    staged = staged_io.load(directory)
    staged.frames["household"] = staged.frames["household"].head(
        -5
    )  # 5 of ~300: under the safety stop
    staged_io.save(staged, directory)

    with pytest.raises(ListingIncomplete) as refused:
        sync.merge(LUONAN, second_landing)
    message = str(refused.value)
    expected = staged.source_counts["household"]
    assert f"household: {expected - 5} in the listing, the platform counts {expected}" in message
    assert LUONAN.name in message and "nothing was merged or deleted" in message, message
    assert warehouse_digest(AUDIT) == before


def test_a_replay_is_recorded_as_a_replay_beside_the_original_run(world, hub_home, tmp_path):
    original = sync.land(LUONAN, "full")
    sync.merge(LUONAN, original)
    with live() as con:
        audit = con.execute(
            "SELECT * FROM ops.sync_run WHERE sync_run_id = ? ORDER BY entity", [original.sync_id]
        ).fetchall()
    shutil.rmtree(original.staged_path)  # replays re-stage from the verified pages

    out = run_hub(tmp_path, "replay", "replay", "luonan", original.sync_id)
    assert f"as run {original.sync_id}+replay1" in out, out
    with live() as con:
        assert (
            con.execute(
                "SELECT * FROM ops.sync_run WHERE sync_run_id = ? ORDER BY entity",
                [original.sync_id],
            ).fetchall()
            == audit
        )
        replays = con.execute(
            "SELECT DISTINCT sync_run_id, replay_of, status FROM ops.sync_run WHERE replay_of = ?",
            [original.sync_id],
        ).fetchall()
    assert replays == [(f"{original.sync_id}+replay1", original.sync_id, "succeeded")]
