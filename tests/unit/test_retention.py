"""Landed payloads are pruned after the retention age, only once a later full sync succeeded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines import retention
from pipelines.landing import new_sync_id

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _landing(root, days_ago: float) -> str:
    sync_id = new_sync_id(NOW - timedelta(days=days_ago))
    page = root / "luonan" / sync_id / "00001-household.json"
    page.parent.mkdir(parents=True)
    page.write_text("{}")
    (page.parent / "staged").mkdir()
    return sync_id


def test_prunes_only_old_landings_before_a_succeeded_full_sync(tmp_path):
    old = _landing(tmp_path, 45)
    older_incremental = _landing(tmp_path, 40)
    recent = _landing(tmp_path, 10)  # before the full sync but younger than 30 days: kept
    full = _landing(tmp_path, 5)  # the full sync that just succeeded
    after = _landing(tmp_path, 2)  # landed after it (not merged yet): a replay needs it
    (tmp_path / "luonan" / "not-a-sync").mkdir()

    pruned = retention.prune_landing("luonan", full, days=30, now=NOW, root=tmp_path)
    assert set(pruned.sync_ids) == {old, older_incremental} and pruned.bytes == 4
    left = {p.name for p in (tmp_path / "luonan").iterdir()}
    assert left == {full, after, recent, "not-a-sync"}


def test_keep_days_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("HUB_LANDING_KEEP_DAYS", raising=False)
    assert retention.keep_days() == 30
    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "365")
    assert retention.keep_days() == 365
    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "forever")
    assert retention.keep_days() is None
    old = _landing(tmp_path, 400)
    full = _landing(tmp_path, 1)
    assert retention.prune_landing("luonan", full, now=NOW, root=tmp_path).sync_ids == ()
    assert (tmp_path / "luonan" / old).is_dir()
    monkeypatch.setenv("HUB_LANDING_KEEP_DAYS", "a month")
    with pytest.raises(ValueError, match="HUB_LANDING_KEEP_DAYS"):
        retention.keep_days()
