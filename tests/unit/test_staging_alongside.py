"""Staging while the landing runs (``pipelines/staging_alongside.py``, issue 13): the staged
output equals staging after the landing; a failed landing leaves no staged directory and
raises its own error; a failed staging lets the landing complete, then raises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from pipelines import sync
from pipelines.landing import LandedPage
from pipelines.staging_alongside import LivePages, StagingAlongside
from seeds.registry import county
from tests.conftest import serving

SHANGZHOU = county("shangzhou")


def _frames(staged: Path) -> dict[str, pl.DataFrame]:
    return {p.name: pl.read_parquet(p) for p in sorted(staged.glob("frame.*.parquet"))}


def test_staged_alongside_the_landing_equals_staged_after_it(hub_home, monkeypatch) -> None:
    with serving(monkeypatch):
        landed = sync.land(SHANGZHOU, "full")  # battle: staged while landing
    staged = Path(landed.staged_path)
    alongside = _frames(staged)
    header = json.loads((staged / "staged.json").read_text())
    assert alongside["frame.person.parquet"].height > 100

    after = staged.with_name("staged-after")
    shutil.copytree(staged, after)
    shutil.rmtree(staged)
    sync.stage(SHANGZHOU, Path(landed.manifest_path), {})  # the old order: land, then stage
    again = _frames(staged)
    assert list(again) == list(alongside)
    for name, frame in again.items():
        assert frame.schema == alongside[name].schema and frame.equals(alongside[name]), name
    assert json.loads((staged / "staged.json").read_text()) == header


def _page(directory: Path, seq: int) -> LandedPage:
    path = directory / f"{seq:05d}-person.json"
    return LandedPage(f"x:y:{seq}", seq, "person", "u", path, path.name, "", 0, "", "", {})


def test_a_failing_staging_lets_the_landing_finish_then_raises(tmp_path) -> None:
    read: list[int] = []

    def stage(manifest_path: Path, live: LivePages) -> Path:
        for page in live.pages:
            read.append(page.seq)
            if page.seq == 2:
                raise ValueError("page 2 is malformed")
        return manifest_path.parent / "staged"

    alongside = StagingAlongside(stage)
    for seq in range(1, 6):  # the landing carries on
        alongside.add(_page(tmp_path, seq))
    with pytest.raises(ValueError, match="page 2 is malformed"):
        alongside.finish()
    assert read == [1, 2]


def test_a_failing_landing_stops_the_staging_and_removes_what_it_wrote(tmp_path) -> None:
    def stage(manifest_path: Path, live: LivePages) -> Path:
        target = manifest_path.parent / "staged"
        target.mkdir()
        for page in live.pages:
            (target / f"{page.seq}.part").touch()
        return target

    alongside = StagingAlongside(stage)
    alongside.add(_page(tmp_path, 1))
    alongside.add(_page(tmp_path, 2))
    alongside.abandon()  # the landing raised: its error is the one the caller sees
    assert not (tmp_path / "staged").exists()
    assert StagingAlongside(stage).finish() is None  # nothing landed: nothing staged alongside
