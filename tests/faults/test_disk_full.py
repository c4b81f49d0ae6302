"""Disk full (issue 11, point 6), on a real small tmpfs: the error names the county, the file and
the real cause (never "cannot rollback"), and the warehouse stays as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from base.errors import ResourceError
from pipelines import sync
from seeds.registry import county
from tests.e2e.helpers import warehouse_digest

pytestmark = pytest.mark.faults
LUONAN, SHANGNAN = county("luonan"), county("shangnan")


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root); disk full not simulated")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); disk full not simulated")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs for the test to fill; unmounted afterwards."""
    mounts: list[Path] = []

    def mount(name: str, size: str) -> Path:
        target = tmp_path / name
        _mount_tmpfs(target, size)
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], check=False)


def _fill(directory: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``directory`` until ``leave_bytes`` are left."""
    filler = directory / "filler"
    free = shutil.disk_usage(directory).free - leave_bytes
    with filler.open("wb") as f:
        while free > 0:
            chunk = min(free, 1 << 20)
            f.write(b"\0" * chunk)
            free -= chunk
    return filler


def test_full_landing_disk_names_county_file_and_cause(world, hub_home, small_disk, monkeypatch):
    disk = small_disk("home", "2m")
    monkeypatch.setenv("HUB_HOME", str(disk))
    _fill(disk, 64 * 1024)

    with pytest.raises(ResourceError) as full:
        sync.land(LUONAN, "full")
    message = str(full.value)
    assert LUONAN.name in message and str(disk / "landing" / "luonan") in message, message
    assert "no space left on the device" in message and "ENOSPC" in message, message


def test_full_warehouse_disk_at_merge_names_the_cause_and_changes_nothing(
    world, hub_home, small_disk, monkeypatch
):
    disk = small_disk("warehouse", "64m")
    monkeypatch.setenv("HUB_WAREHOUSE", str(disk / "hub.duckdb"))
    sync.merge(LUONAN, sync.land(LUONAN, "full"))
    before = warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page"))
    landed = sync.land(SHANGNAN, "full")
    filler = _fill(disk, 16 * 1024)

    with pytest.raises(ResourceError) as full:
        sync.merge(SHANGNAN, landed)
    message = str(full.value)
    assert SHANGNAN.name in message and str(disk / "hub.duckdb") in message, message
    assert "No space left on device" in message or "no space left" in message, message
    assert "no transaction is active" not in message and "rollback" not in message.lower()

    filler.unlink()
    assert warehouse_digest(("ops.watermark", "ops.sync_run", "raw.page")) == before
    sync.merge(SHANGNAN, landed)  # with space again, the same landing merges


def test_read_only_landing_disk_names_county_file_and_cause(
    world, hub_home, small_disk, monkeypatch
):
    """Root ignores file modes, so the permission-style fault is a read-only mount (EROFS)."""
    disk = small_disk("readonly", "1m")
    (disk / "landing").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    monkeypatch.setenv("HUB_HOME", str(disk))

    with pytest.raises(ResourceError) as refused:
        sync.land(LUONAN, "full")
    message = str(refused.value)
    assert LUONAN.name in message and str(disk / "landing" / "luonan") in message, message
    assert "read-only file system" in message, message
