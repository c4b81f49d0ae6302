"""A workbook whose 户编号 point at villages in no division list, through the real landing,
normalise, validate and merge: the households are kept with an `unknown_village` finding, no
region is invented for them, and every row carries the file's export time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from base.paths import landing_dir
from pipelines import sync
from pipelines.landing import LandingWriter
from tests.e2e.helpers import live
from tests.unit.test_normalise_workbook import HH1, HH2, ROWS, ZHASHUI, file_page, xlsx

pytestmark = pytest.mark.e2e
EXPORTED = datetime(2016, 7, 1, 10, 10, 22, tzinfo=UTC)  # 导出时间：2016-07-01 18:10:22


def _land(pages) -> sync.Landed:
    with LandingWriter(ZHASHUI, root=landing_dir() / ZHASHUI.slug) as writer:
        writer.write_all(pages)
    manifest = Path(writer.dir) / "manifest.json"
    staged = sync.stage(ZHASHUI, manifest, {})
    return sync.Landed(ZHASHUI.code, Path(writer.dir).name, "full", str(manifest), str(staged),
                       len(pages), 0, 0.0, {})  # fmt: skip


def test_unknown_villages_are_flagged_not_created(hub_home):
    page = file_page("柞水县建档立卡贫困人口明细_20160701.xlsx", xlsx(ROWS))
    merged = sync.merge(ZHASHUI, _land([page]))
    # HH2 has no 户主 (head_count): rejected; HH1 is kept
    assert merged.counts["household"]["accepted"] == 1
    with live() as con:
        findings = set(con.execute("SELECT entity, source_key, rule FROM ops.finding").fetchall())
        rejects = set(con.execute("SELECT entity, source_key, rule FROM ops.reject").fetchall())
        households = con.execute(
            "SELECT household_no, source_updated_at FROM core.household ORDER BY 1"
        ).fetchall()
        invented = con.execute(
            "SELECT code FROM core.region WHERE code IN (?, ?, ?, ?)",
            [HH1[:12], HH2[:12], HH1[:9], HH2[:9]],
        ).fetchall()
        seeded = con.execute(
            "SELECT count(*) FROM core.region WHERE county_code = ? AND source_platform = 'seed'",
            [ZHASHUI.code],
        ).fetchone()[0]
        person_times = con.execute("SELECT DISTINCT source_updated_at FROM core.person").fetchall()
    assert ("household", HH1, "unknown_village") in findings
    assert ("region", HH1[:12], "unknown_division") in rejects
    assert ("region", HH2[:12], "unknown_division") in rejects
    assert not any(rule == "orphan_village" for _, _, rule in rejects)
    assert [h for h, _ in households] == [HH1]  # kept, flagged
    assert invented == []  # never a region for an unknown code
    assert seeded == 1 + 9 + 82  # the county, its towns and villages from seeds/divisions
    assert {t for _, t in households} == {EXPORTED} and person_times == [(EXPORTED,)]
