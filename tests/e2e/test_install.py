"""The project installs as a normal package and works from anywhere (issue 14, deliverable 3):
installed NON-editable into a fresh venv, the installed code finds its seeds and its SQL as
package data (never the checkout) and syncs a county from another directory, the demo
profile's simulator found through its entry point.

Fast: the fresh venv (no pip of its own) sees the dependencies of the project's own venv
through a ``.pth`` line (``.pth`` files of that directory, such as the editable install's
finder, are not run, so the checkout never leaks in), and this venv's pip installs only the
project into it (``--no-deps``, building the wheel the way ``make venv`` builds its install).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from base.paths import REPO

pytestmark = pytest.mark.e2e  # about 10 s (2 cores, scale 0.01)

#: The package that holds the warehouse SQL (migrations/, sql/) as package data.
SQL_PACKAGE = "warehouse"

CHECK = r"""
import json, sys
from importlib.metadata import entry_points
from importlib.resources import files
import pipelines, seeds
from pipelines.connections import DEMO_SOURCE_GROUP
from seeds.registry import counties

sql = files(sys.argv[1])
print("RESULT " + json.dumps({
    "pipelines": pipelines.__file__,
    "seeds": seeds.__file__,
    "counties": len(counties()),
    "migrations": sorted(p.name for p in sql.joinpath("migrations").iterdir() if p.name.endswith(".sql")),
    "sql_dirs": sorted(p.name for p in sql.joinpath("sql").iterdir() if p.is_dir()),
    "demo_source": [e.value for e in entry_points(group=DEMO_SOURCE_GROUP)],
}))
"""


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def _copy_source(dest: Path) -> Path:
    """The checkout without its venv, run-time files, git data or build leftovers (pip's build
    writes into the source tree; the checkout stays untouched)."""
    ignore = shutil.ignore_patterns(
        ".venv",
        "var",
        ".git",
        "build",
        "*.egg-info",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "bench",
        "docs",
        "tests",
    )
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def test_a_non_editable_install_syncs_a_county_from_another_directory(tmp_path):
    if not (REPO / SQL_PACKAGE / "__init__.py").exists():
        pytest.skip(
            f"the warehouse SQL is not a package yet ({SQL_PACKAGE}/__init__.py: issue 14, "
            "deliverable 3); a non-editable install would have no migrations"
        )
    source = _copy_source(tmp_path / "src")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    new_site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            tmp_path,
        ).stdout.strip()
    )
    # the dependencies of this venv, without its editable install of the project
    (new_site / "hub-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # this venv's pip installs into the new one, building a wheel as `make venv` builds the
    # editable install (same indexes, so offline where that is)
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    _run([*pip, "--no-deps", str(source)], tmp_path)
    shutil.rmtree(source)  # the installed copy must not need its source either

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUB_", "PYTHON", "DAGSTER_")) and k != "VIRTUAL_ENV"
    }
    home = tmp_path / "hub"
    env.update(
        HUB_HOME=str(home),
        HUB_PROFILE="demo",
        HUB_ENV_FILE=os.devnull,
        HUB_SIM_SCALE="0.01",
        HUB_SIM_SEED="7",
    )
    out = _run([str(python), "-c", CHECK, SQL_PACKAGE], elsewhere, env).stdout
    found = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    assert found["pipelines"].startswith(str(new_site)) and found["seeds"].startswith(str(new_site))
    assert found["counties"] == 7
    assert found["migrations"] and found["migrations"][0].startswith("001")
    assert {"merge", "marts"} <= set(found["sql_dirs"])
    assert found["demo_source"] == ["simulator.wiring:source"]

    hub = str(venv / "bin" / "hub")
    try:
        synced = _run([hub, "sync", "luonan", "--mode", "full"], elsewhere, env, timeout=600)
    finally:
        subprocess.run(
            [hub, "stop-simulator"], cwd=elsewhere, env=env, capture_output=True, timeout=60
        )
    assert "succeeded" in synced.stdout, synced.stdout[-3000:]
    assert (home / "warehouse" / "hub.duckdb").exists()
    assert (home / "warehouse" / "snapshot.duckdb").exists()
