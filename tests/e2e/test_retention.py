"""Retention on real syncs: rejected records are quarantined once, not on every sync; landed
payloads are pruned after the retention age once a later full sync succeeded, and what is left
still rebuilds the latest state."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from base import paths
from pipelines import sync
from pipelines.landing import new_sync_id
from seeds.registry import county
from tests.e2e.helpers import content_digest, landing_syncs, live, sync_county

pytestmark = pytest.mark.e2e
LUONAN = county("luonan")


def _quarantined() -> int:
    with live() as con:
        return con.execute("SELECT count(*) FROM ops.quarantine").fetchone()[0]


def test_quarantine_once_and_landing_pruned_after_a_later_full_sync(
    simulator, hub_home, monkeypatch
):
    assert sync_county(LUONAN, mode="full").success
    first = _quarantined()
    assert first > 0, "the simulator injected no defects at this scale"
    (first_sync,) = landing_syncs(LUONAN)

    # an old landing, as a sync two months ago would have left it
    root = paths.landing_dir() / LUONAN.slug
    ancient = new_sync_id(datetime.now(UTC) - timedelta(days=60))
    shutil.copytree(root / first_sync, root / ancient)

    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "30")
    assert sync_county(LUONAN, mode="full").success  # the same records rejected again
    assert _quarantined() == first  # ... and not stored again
    with live() as con:
        runs = con.execute(
            "SELECT count(DISTINCT sync_run_id) FROM ops.reject WHERE county_code = ?",
            [LUONAN.code],
        ).fetchone()[0]
    assert runs == 2  # every sync still records why it rejected them
    kept = landing_syncs(LUONAN)
    assert ancient not in kept and first_sync in kept  # 60 days old: pruned; today's: kept

    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "0")
    assert sync_county(LUONAN, mode="incremental").success  # an incremental prunes nothing
    assert first_sync in landing_syncs(LUONAN)
    assert sync_county(LUONAN, mode="full").success
    (latest,) = landing_syncs(LUONAN)  # only the full sync that just succeeded is left
    expected = content_digest(LUONAN)

    # ... and it rebuilds the latest state in a fresh warehouse
    manifest = root / latest / "manifest.json"
    monkeypatch.setenv("HUB_WAREHOUSE", str(Path(hub_home) / "rebuilt.duckdb"))
    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "forever")
    shutil.rmtree(root / latest / "staged")  # replay from the landed pages themselves
    sync.merge(
        LUONAN,
        sync.Landed(
            LUONAN.code, latest, "full", str(manifest), str(root / latest / "staged"), 0, 0, 0.0, {}
        ),
    )
    rebuilt = content_digest(LUONAN)
    current = [t for t in expected if t.startswith("core.") and not t.endswith("_history")]
    assert len(current) >= 8 and expected["core.household"]
    assert {t: rebuilt[t] for t in current} == {t: expected[t] for t in current}
