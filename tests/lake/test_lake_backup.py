"""`hub backup` / `hub restore` on the DuckLake backend, round trip with real processes: the
catalog dumped with pg_dump and restored with pg_restore into a real PostgreSQL, the Parquet
files copied, and the lake read back equal (every core, ops and raw row)."""

from __future__ import annotations

import json
import stat

import pytest

import warehouse
from pipelines import sync
from seeds.registry import county
from tests.faults.conftest import changed, run_hub
from tests.lake.test_parallel_merges import lake_content
from warehouse.lake import catalog

pytestmark = [pytest.mark.lake, pytest.mark.e2e]
SHANYANG = county("shanyang")


def _use_lake(monkeypatch, postgres, name: str, data) -> None:
    postgres.recreate_database(name + "_analyst")  # the analyst lake beside it (publish)
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", postgres.recreate_database(name))
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", str(data))
    catalog.forget()


def _content() -> tuple[dict, list[int]]:
    """Every core, ops and raw row, and the lake's snapshots (time travel's reach)."""
    catalog.forget()  # another process changed the lake: attach afresh
    with warehouse.connect(read_only=True) as con:
        snapshots = con.execute(
            "SELECT snapshot_id FROM ducklake_snapshots(current_database()) ORDER BY 1"
        ).fetchall()
        return lake_content(con), [s for (s,) in snapshots]


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_backup_and_restore_a_lake_round_trip(simulator, postgres, hub_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_TIMEOUT", "60")
    data = tmp_path / "lake" / "data"
    _use_lake(monkeypatch, postgres, "backup_src", data)
    sync.merge(SHANYANG, sync.land(SHANYANG, "full"))
    before, snapshots = _content()
    snapshot = snapshots[-1]
    assert before["core.household"], "the county synced nothing"

    backup = tmp_path / "backups" / "day0.lake"
    out = run_hub(tmp_path, "backup", "backup", str(backup))
    assert f"at snapshot {snapshot}" in out and "Restore it with" in out, out
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["snapshot"] == snapshot and manifest["files"]
    assert "password" not in json.dumps(manifest)
    # owner-only: the backup holds everything the lake holds, PII included
    for path in [backup, *backup.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    # the files copied are the ones the catalog references, all of them
    assert _files(backup / "data") == set(manifest["files"]) <= _files(data)

    changed(simulator)
    sync.merge(SHANYANG, sync.land(SHANYANG))  # the lake moves on after the backup
    after, _ = _content()
    assert after != before

    refused = run_hub(tmp_path, "refused", "restore", str(backup), expect=1)
    assert "not empty" in refused and "--force" in refused, refused
    assert _content()[0] == after  # nothing touched

    out = run_hub(tmp_path, "restore", "restore", str(backup), "--force")
    assert f"to snapshot {snapshot}" in out and "Cursor cache reset" in out, out
    assert "Analyst lake: republished" in out, out
    assert _content() == (before, snapshots)
    assert _files(data) == set(manifest["files"])  # the replaced lake's own files are gone

    # the restored lake takes the next sync as any lake does
    sync.merge(SHANYANG, sync.land(SHANYANG))
    cursors = lambda content: [row[:3] for row in content["ops.watermark"]]  # noqa: E731
    assert cursors(_content()[0]) == cursors(after)


def test_a_backup_restores_into_an_empty_catalog_and_another_data_path(
    simulator, postgres, hub_home, tmp_path, monkeypatch
):
    _use_lake(monkeypatch, postgres, "backup_elsewhere", tmp_path / "first" / "data")
    sync.merge(SHANYANG, sync.land(SHANYANG, "full"))
    before, snapshots = _content()
    backup = tmp_path / "elsewhere.lake"
    run_hub(tmp_path, "backup", "backup", str(backup))

    _use_lake(monkeypatch, postgres, "restored_elsewhere", tmp_path / "second" / "data")
    out = run_hub(tmp_path, "restore", "restore", str(backup))  # empty target: no --force
    assert f"to snapshot {snapshots[-1]}" in out, out
    assert _content() == (before, snapshots)  # the catalog now names the second data path

    not_a_backup = tmp_path / "nothing"
    not_a_backup.mkdir()
    out = run_hub(tmp_path, "bad", "restore", str(not_a_backup), "--force", expect=1)
    assert "is not a lake backup" in out, out
