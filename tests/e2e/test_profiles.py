"""Profiles and settings as a user meets them: a git-ignored ``.env`` naming a county's URL is
honoured by ``hub sync``, ``hub demo`` and Dagster alike; production never simulates a county,
refuses a missing or weak PII key, and a warehouse refuses the other profile; everything under
HUB_HOME is owner-only.

The "county platform" is a loopback server that records every request and forwards it to a real
simulator, so each test knows exactly which process talked to the county's URL. Every command
runs as a subprocess with an environment of its own (no HUB_PROFILE, no county settings): what
it knows comes from its ``.env``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from base import settings
from tests.conftest import TEST_DEFECT_RATE, TEST_SCALE
from tests.recording import RecordingProxy

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("profiles")]

BIN = Path(sys.executable).parent
PII_KEY = secrets.token_hex(32)


@dataclass
class Setup:
    home: Path
    env_file: Path
    proxy: RecordingProxy

    @property
    def luonan_url(self) -> str:
        return f"{self.proxy.url}/luonan"

    def write_env(self, **values: str) -> None:
        """The ``.env`` a deployment would have: luonan's URL and credentials, the PII key."""
        lines = {
            "HUB_LUONAN_URL": self.luonan_url,
            "HUB_LUONAN_KEY": "luonan-app",
            "HUB_LUONAN_SECRET": "sim-luonan-secret",
            "HUB_PII_KEY": PII_KEY,
            **values,
        }
        self.env_file.write_text(
            "".join(f"{k}={v}\n" for k, v in lines.items() if v is not None), encoding="utf-8"
        )

    def run(self, *args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        """A command as an operator runs it: a clean environment (default umask, no profile, no
        county settings) whose only configuration is the ``.env``."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HUB_") and k not in ("DAGSTER_HOME",)
        }
        env.update(HUB_HOME=str(self.home), HUB_ENV_FILE=str(self.env_file), **extra)
        return subprocess.run(
            list(args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=lambda: os.umask(0o022),  # what a login shell has: the hub must fix it
        )

    def hub(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "hub"), *args, **kw)

    def live(self) -> Path:
        return self.home / "warehouse" / "hub.duckdb"

    def query(self, db: Path, sql: str) -> list[tuple]:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture
def setup(tmp_path) -> Iterator[Setup]:
    from simulator import embedded

    handle = embedded.start_in_thread(seed=7, scale=TEST_SCALE, defect_rate=TEST_DEFECT_RATE)
    try:
        with RecordingProxy(handle.url) as proxy:
            yield Setup(home=tmp_path / "hub", env_file=tmp_path / "deploy.env", proxy=proxy)
    finally:
        handle.stop()


def _not_owner_only(home: Path) -> list[str]:
    """Every directory not 0700 and file not 0600 under ``home`` (home included)."""
    wrong = []
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        expected = 0o700 if path.is_dir() else 0o600
        if mode != expected:
            wrong.append(f"{oct(mode)} {path.relative_to(home)}")
    return wrong


# --------------------------------------------------------------------------------------------
# production: hub sync and Dagster read .env; nothing is simulated


def test_hub_sync_reads_dotenv_and_never_simulates_in_production(setup):
    setup.write_env()
    synced = setup.hub("sync", "luonan", "--mode", "full")
    assert synced.returncode == 0, synced.stderr + synced.stdout
    paths_seen = setup.proxy.paths()
    assert paths_seen and all(p.startswith("/luonan/") for p in paths_seen), paths_seen[:5]
    live = setup.live()
    assert setup.query(live, "SELECT profile FROM ops.hub_profile") == [("production",)]
    pages = setup.query(live, "SELECT DISTINCT split_part(url, '/luonan/', 1) FROM raw.page")
    assert pages == [(setup.proxy.url,)]
    # person_key is keyed with the .env's key (hex), not the development key
    id_number, key = setup.query(
        setup.home / "restricted" / "pii-snapshot.duckdb",
        "SELECT id_number, person_key FROM core.person LIMIT 1",
    )[0]
    assert key == hmac.new(bytes.fromhex(PII_KEY), id_number.encode(), hashlib.sha256).hexdigest()
    assert not (setup.home / "simulator").exists()

    # a county without settings is not configured, and is not simulated
    before = len(setup.proxy.requests)
    other = setup.hub("sync", "shangnan")
    assert other.returncode == 1
    assert "not configured" in other.stderr and "HUB_SHANGNAN_URL" in other.stderr
    assert "Traceback" not in other.stderr
    assert len(setup.proxy.requests) == before and not (setup.home / "simulator").exists()
    assert not (setup.home / "landing" / "shangnan").exists()

    # the analyst snapshot says which counties are configured
    status = dict(
        setup.query(
            setup.home / "warehouse" / "snapshot.duckdb",
            "SELECT slug, connection FROM mart.sync_status",
        )
    )
    assert status["luonan"] == "configured"
    assert {v for k, v in status.items() if k != "luonan"} == {"not configured"}

    # files are owner-only although the command started with umask 022
    assert _not_owner_only(setup.home) == []

    # the production warehouse refuses the demo
    demo = setup.hub("demo", timeout=120)
    assert demo.returncode == 1
    assert "created by the production profile" in demo.stderr, demo.stderr
    assert not (setup.home / "simulator").exists()


def test_dagster_reads_dotenv_in_production(setup):
    setup.write_env()
    dagster_home = setup.home / "dagster"
    dagster_home.mkdir(parents=True)
    ran = setup.run(
        str(BIN / "dagster"),
        "job",
        "execute",
        "-m",
        "pipelines.definitions",
        "-j",
        "sync_luonan",
        DAGSTER_HOME=str(dagster_home),
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert any(p.startswith("/luonan/") for p in setup.proxy.paths())
    assert setup.query(setup.live(), "SELECT profile FROM ops.hub_profile") == [("production",)]
    assert setup.query(
        setup.live(), "SELECT count(*) > 0 FROM core.household WHERE county_code = '611021'"
    ) == [(True,)]
    assert not (setup.home / "simulator").exists()
    assert _not_owner_only(setup.home) == []


SENSOR_TICKS = """
import dagster as dg
from pipelines.definitions import defs

for name in ("zhashui_new_export", "danfeng_new_export"):
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral()) as context:
        result = defs.get_sensor_def(name).evaluate_tick(context)
    print(name, len(result.run_requests or []), result.skip_message or "")
"""


def test_dagster_sensors_read_dotenv_in_production(setup):
    setup.write_env(
        HUB_ZHASHUI_URL=f"{setup.proxy.url}/zhashui",
        HUB_ZHASHUI_KEY="zhashui-app",
        HUB_ZHASHUI_SECRET="sim-zhashui-secret",
    )
    ticked = setup.run(sys.executable, "-c", SENSOR_TICKS, timeout=300)
    assert ticked.returncode == 0, ticked.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in ticked.stdout.strip().splitlines())
    assert lines["zhashui_new_export"].startswith("1")  # a new export: one run requested
    assert "/zhashui/exports/index.json" in setup.proxy.paths()
    assert lines["danfeng_new_export"].startswith("0")
    assert "not configured" in lines["danfeng_new_export"]
    assert not any(p.startswith("/danfeng") for p in setup.proxy.paths())


@pytest.mark.parametrize(
    "key, problem",
    [
        (None, "HUB_PII_KEY is not set"),
        (settings.DEV_PII_KEY, "published development key"),
        ("ab" * 16, "shorter than 32"),
        ("not-hex-" * 8, "not hex-encoded"),
    ],
)
def test_production_refuses_to_start_without_a_proper_pii_key(setup, key, problem):
    setup.write_env(HUB_PII_KEY=key)
    synced = setup.hub("sync", "luonan")
    assert synced.returncode == 1
    assert problem in synced.stderr and "token_hex(32)" in synced.stderr, synced.stderr
    assert "Traceback" not in synced.stderr
    assert setup.proxy.requests == [] and not setup.live().exists()
    if key is None:  # and the Dagster code location does not load
        loaded = setup.run(
            str(BIN / "dagster"), "definitions", "validate", "-m", "pipelines.definitions"
        )
        assert loaded.returncode != 0
        assert problem in loaded.stdout + loaded.stderr
    if key is not None:
        assert key not in synced.stderr + synced.stdout  # the key itself is never shown


# --------------------------------------------------------------------------------------------
# demo: hub demo reads .env too; simulates only the others


def test_hub_demo_reads_dotenv_and_simulates_only_the_others(setup):
    setup.write_env()
    try:
        demo = setup.hub("demo", timeout=900, HUB_SIM_SCALE="0.01")
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert any(p.startswith("/luonan/") for p in setup.proxy.paths())
        assert all(p.startswith("/luonan/") for p in setup.proxy.paths())
        live = setup.live()
        assert setup.query(live, "SELECT profile FROM ops.hub_profile") == [("demo",)]
        urls = dict(
            setup.query(
                live,
                "SELECT split_part(page_id, ':', 1), min(url) FROM raw.page GROUP BY 1",
            )
        )
        assert urls["luonan"].startswith(setup.luonan_url)
        assert len(urls) == 7 and not any(
            u.startswith(setup.proxy.url) for k, u in urls.items() if k != "luonan"
        )
        status = dict(
            setup.query(
                setup.home / "warehouse" / "snapshot.duckdb",
                "SELECT slug, connection FROM mart.sync_status",
            )
        )
        assert status["luonan"] == "configured"
        assert {v for k, v in status.items() if k != "luonan"} == {"simulated"}
        # warehouse, snapshots, landing, state, Dagster home, simulator: owner-only
        assert (setup.home / "dagster").is_dir()
        assert _not_owner_only(setup.home) == []
        # the demo warehouse refuses production
        synced = setup.hub("sync", "luonan")
        assert synced.returncode == 1
        assert "created by the demo profile" in synced.stderr, synced.stderr
    finally:
        setup.hub("stop-simulator", timeout=60)
