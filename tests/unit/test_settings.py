"""base.settings: .env loading (the environment wins), profiles, the PII key, file modes;
and the warehouse's profile guard."""

from __future__ import annotations

import os
import stat

import pytest

import warehouse
from base import settings
from pipelines import sources
from seeds.registry import county

LUONAN = county("luonan")
GOOD_KEY = "0123456789abcdef" * 4  # 32 bytes, hex


@pytest.fixture
def environ(monkeypatch):
    """Restore os.environ exactly (load() writes .env values into it) and forget what
    settings.load() cached."""
    saved = dict(os.environ)
    monkeypatch.setattr(settings, "_loaded", None)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def test_dotenv_fills_the_environment_and_the_environment_wins(environ, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "HUB_LUONAN_URL=https://fp.luonan.example/\nHUB_HTTP_RETRIES=2\n# a comment\n",
        encoding="utf-8",
    )
    environ["HUB_ENV_FILE"] = str(env_file)
    environ["HUB_HTTP_RETRIES"] = "9"
    environ.pop("HUB_LUONAN_URL", None)
    added = settings.load()
    assert added == {"HUB_LUONAN_URL": "https://fp.luonan.example/"}
    assert environ["HUB_LUONAN_URL"] == "https://fp.luonan.example/"
    assert environ["HUB_HTTP_RETRIES"] == "9"
    assert settings.county_configured(LUONAN)
    # and the umask is owner-only from now on
    probe = tmp_path / "probe"
    probe.write_text("x")
    assert stat.S_IMODE(probe.stat().st_mode) == 0o600


def test_profile_defaults_to_production_and_rejects_unknown_names(environ):
    environ.pop("HUB_PROFILE", None)
    assert settings.profile() == "production" and not settings.is_demo()
    environ["HUB_PROFILE"] = "Demo "
    assert settings.is_demo()
    environ["HUB_PROFILE"] = "staging"
    with pytest.raises(settings.SettingsError, match=r"'production' .* or 'demo'"):
        settings.load()


def test_hub_demo_refuses_an_explicit_production_profile(environ):
    environ["HUB_PROFILE"] = "production"
    with pytest.raises(settings.SettingsError, match="HUB_PROFILE=production is set"):
        settings.use_demo_profile()
    environ.pop("HUB_PROFILE")
    settings.use_demo_profile()
    assert environ["HUB_PROFILE"] == "demo"


@pytest.mark.parametrize(
    "profile, key, problem",
    [
        ("production", None, "not set"),
        ("production", settings.DEV_PII_KEY, "development key"),
        ("production", "ab" * 31, "31 bytes, shorter than 32"),
        ("production", "zz" * 40, "not hex-encoded"),
        ("production", GOOD_KEY, None),
        ("demo", None, None),  # the development key, with a warning from hub demo
        ("demo", "zz" * 40, "not hex-encoded"),
        ("demo", "abcd", None),
    ],
)
def test_pii_key_rules(environ, profile, key, problem):
    environ["HUB_PROFILE"] = profile
    if key is None:
        environ.pop("HUB_PII_KEY", None)
    else:
        environ["HUB_PII_KEY"] = key
    if problem is None:
        assert settings.pii_key_problem() is None
        expected = bytes.fromhex(key) if key else bytes.fromhex(settings.DEV_PII_KEY)
        assert settings.pii_key() == expected == warehouse.pii_key()
    else:
        assert problem in settings.pii_key_problem()
        with pytest.raises(settings.SettingsError, match="token_hex") as raised:
            warehouse.pii_key()  # a merge in production computes nothing with a bad key
        if key:
            assert key not in str(raised.value)


def test_production_never_simulates_a_county_without_settings(environ):
    environ["HUB_PROFILE"] = "production"
    for name in ("URL", "KEY", "SECRET"):
        environ.pop(LUONAN.env_prefix + name, None)
    with pytest.raises(settings.NotConfigured) as raised:
        sources.connection_settings(LUONAN)
    assert "not configured" in str(raised.value) and "HUB_LUONAN_URL" in str(raised.value)
    assert settings.connection_state(LUONAN) == "not configured"
    with pytest.raises(settings.SettingsError, match="demo profile"):
        sources.start_embedded_simulator()
    environ["HUB_LUONAN_URL"] = "https://fp.luonan.example"
    assert sources.connection_settings(LUONAN)["url"] == "https://fp.luonan.example"
    assert settings.connection_state(LUONAN) == "configured"
    environ.pop("HUB_LUONAN_URL")
    environ["HUB_PROFILE"] = "demo"
    assert settings.connection_state(LUONAN) == "simulated"


def test_the_warehouse_refuses_the_other_profile(environ, tmp_path):
    db = tmp_path / "hub.duckdb"
    environ["HUB_PROFILE"] = "demo"
    with warehouse.connect(db):
        pass
    assert warehouse.recorded_profile(db) == "demo"
    environ["HUB_PROFILE"] = "production"
    environ["HUB_PII_KEY"] = GOOD_KEY
    with (
        pytest.raises(warehouse.ProfileMismatch, match="created by the demo profile"),
        warehouse.connect(db),
    ):
        pass
    with warehouse.connect(db, read_only=True) as con:  # reading it is fine
        assert con.execute("SELECT profile FROM ops.hub_profile").fetchall() == [("demo",)]


def test_snapshot_mode(environ):
    environ.pop("HUB_SNAPSHOT_MODE", None)
    assert settings.snapshot_mode() == 0o600
    environ["HUB_SNAPSHOT_MODE"] = "0640"
    assert settings.snapshot_mode() == 0o640
    for bad in ("0666", "0620", "0400", "rw"):
        environ["HUB_SNAPSHOT_MODE"] = bad
        with pytest.raises(settings.SettingsError):
            settings.snapshot_mode()


def test_secure_home_makes_an_old_home_owner_only(environ, tmp_path):
    home = tmp_path / "hub"
    (home / "landing" / "luonan").mkdir(parents=True, mode=0o755)
    (home / "landing" / "luonan").chmod(0o755)
    home.chmod(0o755)
    page = home / "landing" / "luonan" / "00001-household.json"
    page.write_text("{}")
    page.chmod(0o644)
    environ["HUB_HOME"] = str(home)
    settings.secure_home()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "landing" / "luonan").stat().st_mode) == 0o700
    assert stat.S_IMODE(page.stat().st_mode) == 0o600


def test_duckdb_bound_settings(environ):
    for step in ("MERGE", "CITY"):
        environ.pop(f"HUB_{step}_MEMORY_LIMIT", None)
        environ.pop(f"HUB_{step}_THREADS", None)
        assert settings.duckdb_memory_limit(step, "128MB") == "128MB"
        assert settings.duckdb_threads(step, 1) == 1
        environ[f"HUB_{step}_MEMORY_LIMIT"] = " 300MB "
        environ[f"HUB_{step}_THREADS"] = "2"
        assert settings.duckdb_memory_limit(step, "128MB") == "300MB"
        assert settings.duckdb_threads(step, 1) == 2
        for bad in ("0", "-1", "two", "1.5"):
            environ[f"HUB_{step}_THREADS"] = bad
            with pytest.raises(settings.SettingsError, match=f"HUB_{step}_THREADS"):
                settings.duckdb_threads(step, 1)


def test_merge_touch_rows_setting(environ):
    environ.pop("HUB_MERGE_TOUCH_ROWS", None)
    assert settings.merge_touch_rows(250_000) == 250_000
    environ["HUB_MERGE_TOUCH_ROWS"] = " 1000 "
    assert settings.merge_touch_rows(250_000) == 1000
    for bad in ("0", "-5", "many", "1e5"):
        environ["HUB_MERGE_TOUCH_ROWS"] = bad
        with pytest.raises(settings.SettingsError, match="HUB_MERGE_TOUCH_ROWS"):
            settings.merge_touch_rows(250_000)
