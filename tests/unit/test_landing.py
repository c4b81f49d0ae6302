"""Raw landing: pages stored on arrival, manifest round trip, sha256 verification."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from base.errors import SourceError
from pipelines.landing import (
    MANIFEST,
    PARTIAL,
    LandingWriter,
    Page,
    land,
    new_sync_id,
    read_manifest,
)
from seeds.registry import County

COUNTY = County("611023", "商南县", "Shangnan County", "shangnan", "battle", "3", 0.05, "t")


def pages() -> list[Page]:
    return [
        Page("household", "http://h/fpzz/pkh/list?pageNum=1", b'{"rows":[]}', "application/json", {"pageNum": 1}),
        Page("deletions:household", "http://h/api/v2/deletions", b"{}", "application/json; charset=utf-8", {}),
        Page("file", "http://h/exports/%E6%9F%9E.xlsx", b"PK\x03\x04binary", "application/octet-stream",
             {"name": "柞水县建档立卡贫困人口明细_20160701.xlsx", "sha256": "x"}),
        Page("stats", "http://h/api/v2/stats", b"<html>gateway</html>", "text/html", {}),
    ]  # fmt: skip


def test_sync_id_is_sortable_utc_plus_random() -> None:
    a = new_sync_id(datetime(2016, 7, 1, 10, 20, 0, tzinfo=UTC))
    b = new_sync_id(datetime(2016, 7, 1, 10, 20, 0, tzinfo=UTC))
    assert re.fullmatch(r"20160701T102000.000000Z-[0-9a-f]{6}", a)
    assert a != b


def test_each_page_is_stored_on_arrival(tmp_path: Path) -> None:
    writer = LandingWriter(COUNTY, "S1", root=tmp_path)
    first = writer.write(pages()[0])
    # on disk and journaled before the sync is closed
    assert first.path == tmp_path / "shangnan" / "S1" / "00001-household.json"
    assert first.path.read_bytes() == b'{"rows":[]}'
    journal = (tmp_path / "shangnan" / "S1" / PARTIAL).read_text(encoding="utf-8")
    assert json.loads(journal)["page_id"] == "shangnan:S1:1"
    assert not (tmp_path / "shangnan" / "S1" / MANIFEST).exists()
    writer.close()


def test_manifest_round_trip(tmp_path: Path) -> None:
    with LandingWriter(COUNTY, "S2", root=tmp_path) as writer:
        landed = writer.write_all(pages())
    manifest_path = writer.close()  # idempotent
    assert manifest_path == tmp_path / "shangnan" / "S2" / MANIFEST
    assert not (tmp_path / "shangnan" / "S2" / PARTIAL).exists()

    names = [p.path.name for p in landed]
    assert names == [
        "00001-household.json",
        "00002-deletions-household.json",
        "00003-file.xlsx",
        "00004-stats.html",
    ]
    doc = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert doc["complete"] is True and doc["county"] == "shangnan" and doc["kind"] == "battle"
    record = doc["pages"][2]
    assert set(record) >= {
        "page_id", "entity", "url", "fetched_at", "sha256", "size", "content_type", "path", "meta",
    }  # fmt: skip
    assert record["path"] == "shangnan/S2/00003-file.xlsx"  # relative to the landing root
    assert record["meta"]["name"].startswith("柞水县")

    for where in (manifest_path, manifest_path.parent):
        manifest = read_manifest(where)
        assert manifest.complete and manifest.sync_id == "S2" and manifest.county == "shangnan"
        assert [p.page_id for p in manifest.pages] == [f"shangnan:S2:{n}" for n in range(1, 5)]
        assert [p.body() for p in manifest.pages] == [p.body for p in pages()]
        assert manifest.pages[1].entity == "deletions:household"
        assert manifest.entity_pages("file")[0].meta["name"].endswith(".xlsx")
        assert manifest.pages[0].json() == {"rows": []}
        parsed = datetime.fromisoformat(manifest.pages[0].fetched_at.replace("Z", "+00:00"))
        assert parsed.tzinfo is not None


def test_landing_root_can_move(tmp_path: Path) -> None:
    with LandingWriter(COUNTY, "S3", root=tmp_path / "a") as writer:
        writer.write_all(pages())
    (tmp_path / "a").rename(tmp_path / "b")  # paths are relative to the root: replay still works
    manifest = read_manifest(tmp_path / "b" / "shangnan" / "S3")
    assert manifest.pages[2].body().startswith(b"PK")


def test_corrupt_landed_page_is_detected(tmp_path: Path) -> None:
    with LandingWriter(COUNTY, "S4", root=tmp_path) as writer:
        writer.write_all(pages())
    manifest = read_manifest(writer.dir)
    manifest.pages[0].path.write_bytes(b'{"rows":[{"tampered":1}]}')
    with pytest.raises(SourceError, match=r"shangnan: .*00001-household.json: .*corrupt: sha256"):
        manifest.pages[0].body()
    manifest.pages[1].path.unlink()
    with pytest.raises(SourceError, match="unreadable"):
        manifest.pages[1].body()


def test_failed_sync_keeps_its_pages_marked_incomplete(tmp_path: Path) -> None:
    class Failing:
        def fetch(self, mode, watermarks):
            yield pages()[0]
            raise SourceError(COUNTY, "http://h/fpzz/pkh/list?pageNum=2", "HTTP 500")

    with pytest.raises(SourceError, match="HTTP 500"):
        land(COUNTY, Failing(), "full", {}, sync_id="S5", root=tmp_path)
    manifest = read_manifest(tmp_path / "shangnan" / "S5")
    assert not manifest.complete
    assert [p.entity for p in manifest.pages] == ["household"]


def test_crashed_sync_is_readable_from_its_journal(tmp_path: Path) -> None:
    writer = LandingWriter(COUNTY, "S6", root=tmp_path)
    writer.write_all(pages()[:2])
    writer._journal.flush()  # the process dies here: no manifest.json
    manifest = read_manifest(tmp_path / "shangnan" / "S6")
    assert not manifest.complete
    assert [p.body() for p in manifest.pages] == [p.body for p in pages()[:2]]


def test_land_returns_the_manifest(tmp_path: Path) -> None:
    class Client:
        def fetch(self, mode, watermarks):
            assert (mode, watermarks) == ("incremental", {"household": "x"})
            yield from pages()

    manifest = land(COUNTY, Client(), "incremental", {"household": "x"}, root=tmp_path)
    assert manifest.complete and len(manifest.pages) == 4
    assert manifest.sync_id and manifest.path.name == MANIFEST


def test_sync_directories_are_never_reused(tmp_path: Path) -> None:
    LandingWriter(COUNTY, "S7", root=tmp_path).close()
    with pytest.raises(FileExistsError):
        LandingWriter(COUNTY, "S7", root=tmp_path)
