"""A register read in many small chunks stages exactly what one whole read stages (issue 13):
rows, their order and ``raw_ref``, households (first row in the file), heads, regions, counts."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import pytest

from base.errors import SourceError
from pipelines.connectors.workbook.files import open_register
from pipelines.connectors.workbook.normalise import normalise
from schemas.id_number import make_id
from tests.unit.test_normalise_workbook import (
    DANFENG,
    ZHASHUI,
    csv_bytes,
    file_page,
    land,
    row,
    xlsx,
)

ONE_CHUNK = str(1 << 30)
SMALLEST = "4096"  # HUB_WORKBOOK_CHUNK_BYTES' floor: a few rows of XML a chunk


def _register(households: int = 60) -> list[dict]:
    """Households of 1-4 members over a few villages of two towns; the head listed second in
    some, a household whose rows are not adjacent, a person listed twice, quoted text."""
    rows = []
    for h in range(households):
        town = "100" if h % 3 else "101"
        hh = f"611026{town}{1 + h % 4:03d}{h:04d}"
        size = 1 + h % 4
        for m in range(size):
            id_number = make_id("611026", date(1950 + h % 40, 1 + m, 1 + h % 27), h % 999, "male")
            rows.append(
                row(hh, m + 1, id_number, 与户主关系="户主" if m == h % size else "之子",
                    乡=f"镇{town}", 行政村=f"村{h % 4}", 人数=str(size),
                    姓名=f'张"{h}"，\n{m}' if h % 7 == 0 else f"张{h}")
            )  # fmt: skip
            if "乡" in rows[-1]:
                rows[-1]["乡(镇)"] = rows[-1].pop("乡")
    rows.append(dict(rows[5], 姓名="重复"))  # a person listed again: the later row wins
    rows.append(dict(rows[0], 人编号=rows[0]["户编号"] + "09"))  # household 0 again, far below
    return rows


def _staged(monkeypatch, manifest, county, chunk: str):
    monkeypatch.setenv("HUB_WORKBOOK_CHUNK_BYTES", chunk)
    monkeypatch.setenv("HUB_STAGING_GROUP_ROWS", "25")
    return normalise(county, manifest)


@pytest.mark.parametrize(
    ("county", "name", "make"),
    [
        (ZHASHUI, "a_20160701.xlsx", lambda rows: xlsx(rows)),
        (DANFENG, "a_20160701.csv", lambda rows: csv_bytes(rows)),
    ],
)
def test_small_chunks_stage_what_a_whole_read_stages(monkeypatch, tmp_path, county, name, make):
    body = make(_register())
    manifest = land(tmp_path, county, [file_page(name, body)])
    whole = _staged(monkeypatch, manifest, county, ONE_CHUNK)
    chunked = _staged(monkeypatch, manifest, county, SMALLEST)
    assert whole.frames["person"].height > 100
    for entity in ("region", "household", "person"):
        a, b = whole.frames[entity], chunked.frames[entity]
        assert a.schema == b.schema and a.equals(b, null_equal=True), entity
    assert whole.source_counts == chunked.source_counts
    assert (whole.watermarks, whole.as_of) == (chunked.watermarks, chunked.as_of)
    heads = chunked.frames["household"]["head_person_no"]
    assert heads.null_count() < heads.len()
    # the register really was read in many chunks
    page = next(p for p in manifest.pages if p.entity == "file")
    chunks = list(open_register(county, name, page.verified_path()).chunks)
    assert len(chunks) > 5 and sum(c.rows.height for c in chunks) > 100


def test_a_damaged_sheet_inside_an_intact_zip_fails_naming_the_file(tmp_path, monkeypatch):
    body = xlsx(_register(20))
    source, out = zipfile.ZipFile(io.BytesIO(body)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]  # the sheet's XML ends mid-row
            z.writestr(info.filename, data)
    monkeypatch.setenv("HUB_WORKBOOK_CHUNK_BYTES", SMALLEST)
    manifest = land(tmp_path, ZHASHUI, [file_page("d.xlsx", out.getvalue())])
    with pytest.raises(SourceError) as err:
        normalise(ZHASHUI, manifest)
    assert ZHASHUI.label in str(err.value) and "d.xlsx" in str(err.value)
