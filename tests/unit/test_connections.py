"""Connection settings come from a source chosen per profile (pipelines/connections.py): the
county's own settings in every profile; in the demo profile, for a county without them, the
demo source the simulator registers through its entry point (or one a caller installs);
production never asks a demo source, whatever is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from base import settings
from pipelines import connections, sources
from seeds.registry import county

LUONAN = county("luonan")


class FixedSource:
    """A demo source of its own: every county at one URL (what a test platform would do)."""

    name = "fixed"

    def __init__(self) -> None:
        self.asked: list[tuple[str, Path]] = []

    def settings(self, county, state_dir: Path) -> dict[str, str]:
        self.asked.append((county.slug, state_dir))
        return {"url": f"http://127.0.0.1:9/{county.slug}", "key": "k", "secret": "s"}

    def start(self, state_dir: Path) -> dict:
        return {"url": "http://127.0.0.1:9"}


@pytest.fixture
def unset(monkeypatch, hub_home):
    for name in ("URL", "KEY", "SECRET"):
        monkeypatch.delenv(LUONAN.env_prefix + name, raising=False)
    yield monkeypatch
    connections.use_demo_source(None)


def test_the_simulator_is_the_installed_demo_source():
    (entry,) = [e for e in connections.entry_points(group=connections.DEMO_SOURCE_GROUP)]
    assert entry.value == "simulator.wiring:source"
    assert entry.load().name == "simulator"


def test_the_demo_profile_asks_the_demo_source_for_a_county_without_settings(unset, hub_home):
    unset.setenv("HUB_PROFILE", "demo")
    fixed = FixedSource()
    connections.use_demo_source(fixed)
    assert sources.connection_settings(LUONAN)["url"] == "http://127.0.0.1:9/luonan"
    assert fixed.asked == [("luonan", hub_home.resolve() / "simulator")]
    client = sources.client_for(LUONAN)
    assert type(client).__name__ == "BigdataClient" and client.base_url.endswith("/luonan")
    asked = len(fixed.asked)  # 2: the settings, then the client's
    # a county with its own settings is synced from them, in the demo profile too
    unset.setenv("HUB_LUONAN_URL", "https://fp.luonan.example")
    assert sources.connection_settings(LUONAN)["url"] == "https://fp.luonan.example"
    assert len(fixed.asked) == asked


def test_production_never_asks_a_demo_source(unset):
    unset.setenv("HUB_PROFILE", "production")
    fixed = FixedSource()
    connections.use_demo_source(fixed)
    with pytest.raises(settings.NotConfigured):
        sources.connection_settings(LUONAN)
    with pytest.raises(settings.SettingsError, match="demo profile"):
        connections.demo_source()
    assert fixed.asked == []
