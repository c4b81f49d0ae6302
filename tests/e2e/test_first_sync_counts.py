"""A first sync into an empty warehouse reports its records as inserted, never as updated.

``make demo`` at scale 1.0 showed 商州 with 325 "updated" records in a first full sync: its
platform delivers the county's regions (1 county + 27 towns + 297 villages), and
``core.region`` already held those codes from the division seed (``warehouse/region_seed.py``),
so the platform's first delivery of each was counted as an update of the seeded row. The seed
is reference data, not a sync: what a county platform delivers for the first time is new.
"""

from __future__ import annotations

import duckdb
import pytest

from base import paths
from pipelines import sync
from seeds.registry import county
from tests.conftest import serving

pytestmark = pytest.mark.e2e
SHANGZHOU = county("shangzhou")


def test_first_full_sync_counts_inserts_not_updates(monkeypatch, hub_home):
    with serving(monkeypatch):
        merged = sync.merge(SHANGZHOU, sync.land(SHANGZHOU, "full"))
        again = sync.merge(SHANGZHOU, sync.land(SHANGZHOU, "full"))

    regions = merged.counts["region"]
    assert regions["inserted"] > 0, regions  # the county's regions: seeded codes, first delivery
    for entity, counts in merged.counts.items():
        assert counts["updated"] == 0, (entity, counts)
        assert counts["inserted"] + counts["unchanged"] == counts["accepted"], (entity, counts)
    # what the run summary and the UI read (ops.sync_run) says the same
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        updated = con.execute(
            "SELECT sum(updated), sum(inserted) FROM ops.sync_run WHERE sync_run_id = ?",
            [merged.sync_id],
        ).fetchone()
        seeded_left = con.execute(
            "SELECT count(*) FROM core.region WHERE county_code = ? AND source_platform = 'seed'",
            [SHANGZHOU.code],
        ).fetchone()[0]
    assert updated[0] == 0 and updated[1] == _total(merged, "inserted")
    assert seeded_left == 0  # every seeded region of the county now carries the platform's row
    # the second sync of the same data: nothing new, nothing changed
    assert _total(again, "inserted") == 0 and _total(again, "updated") == 0


def _total(merged: sync.Merged, column: str) -> int:
    return sum(counts[column] for counts in merged.counts.values())
