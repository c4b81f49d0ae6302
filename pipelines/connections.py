"""Where a county's connection settings come from, chosen per profile.

Like dagster's ``project_fully_featured`` (one client interface, a live and a snapshot
implementation picked per deployment), the hub asks a :class:`ConnectionSource` for a county's
``url``/``key``/``secret``:

* :data:`ENVIRONMENT` (every profile): ``HUB_<SLUG>_URL/_KEY/_SECRET`` from the environment or
  ``.env``. A county with settings is always synced from them.
* the **demo source** (demo profile only, for a county without settings): supplied from outside
  this package. Product code never imports the simulator; the simulator registers itself as
  the demo source through the packaging entry point group :data:`DEMO_SOURCE_GROUP`
  (``pyproject.toml``: ``simulator = "simulator.wiring:source"``), or a caller installs one
  with :func:`use_demo_source`. In production no demo source is ever consulted: the county is
  :class:`~base.settings.NotConfigured`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from base import settings
from base.paths import hub_home
from base.settings import connection_state  # noqa: F401  (re-exported beside the sources)

#: The entry point group a package uses to offer itself as the demo profile's source.
DEMO_SOURCE_GROUP = "shangluo_hub.demo_source"


class ConnectionSource(Protocol):
    """Connection settings for counties; ``state_dir`` is where a source may keep its files."""

    name: str

    def settings(self, county: Any, state_dir: Path) -> dict[str, str]:
        """``{"url", "key", "secret"}`` of ``county``'s platform."""
        ...

    def start(self, state_dir: Path) -> dict:
        """Make sure the platforms it names are reachable (e.g. start a local service); returns
        what it started (``url`` at least)."""
        ...


class EnvironmentSource:
    """Production's source: the county's own ``HUB_<SLUG>_URL/_KEY/_SECRET``."""

    name = "environment"

    def settings(self, county: Any, state_dir: Path | None = None) -> dict[str, str]:
        settings.load()
        if not county.setting("URL"):
            raise settings.NotConfigured(county)
        return {
            "url": county.setting("URL") or "",
            "key": county.setting("KEY") or "",
            "secret": county.setting("SECRET") or "",
        }

    def start(self, state_dir: Path | None = None) -> dict:
        return {}


ENVIRONMENT = EnvironmentSource()
_demo_source: ConnectionSource | None = None


def use_demo_source(source: ConnectionSource | None) -> None:
    """Install ``source`` as the demo profile's (None: back to the installed entry point)."""
    global _demo_source
    _demo_source = source


def demo_source() -> ConnectionSource:
    """The demo profile's source; refused in production (it never simulates a county)."""
    global _demo_source
    if not settings.is_demo():
        raise settings.SettingsError(
            "the simulator runs only in the demo profile (HUB_PROFILE=demo; `make demo`, `make ui`)"
        )
    if _demo_source is None:
        found = sorted(entry_points(group=DEMO_SOURCE_GROUP), key=lambda e: e.name)
        if not found:
            raise settings.SettingsError(
                f"the demo profile needs a demo connection source (entry point group "
                f"{DEMO_SOURCE_GROUP!r}) and none is installed: reinstall the project "
                "(`make venv`, or pip install -e .)"
            )
        _demo_source = found[0].load()
    return _demo_source


def state_dir() -> Path:
    """Where the demo source keeps its files: ``<HUB_HOME>/simulator``."""
    return hub_home() / "simulator"


def connection_settings(county: Any) -> dict[str, str]:
    """The county's own settings; else the demo source's in the demo profile; else
    :class:`~base.settings.NotConfigured`."""
    settings.load()
    if county.setting("URL") or not settings.is_demo():
        return ENVIRONMENT.settings(county)
    return demo_source().settings(county, state_dir())


def start_demo_source() -> dict:
    """Start the demo source (``hub demo``, ``hub ui``): the bundled simulator."""
    return demo_source().start(state_dir())
