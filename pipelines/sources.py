"""Which connector serves a county: chosen by its platform kind in the registry.

A county is synced from the platform its ``HUB_<SLUG>_URL/_KEY/_SECRET`` name (environment or
``.env``, read by :mod:`pipelines.settings`). Without them, the demo profile serves it from the
bundled simulator (started on loopback on first use and shared by every process of this hub
home), so the demo and the tests run the same connector code as production; the production
profile reports it as not configured (:class:`~base.settings.NotConfigured`) and never
simulates it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from base import settings
from base.paths import hub_home
from pipelines import http
from seeds.registry import County


def simulator_settings(county: County) -> dict[str, str]:
    """URL and credentials of the embedded simulator for ``county`` (starting it if needed)."""
    from simulator import embedded

    info = start_embedded_simulator()
    return {"url": f"{info['url']}/{county.slug}", **embedded.credentials(county.slug)}


def start_embedded_simulator() -> dict:
    """The bundled simulator recorded under ``HUB_HOME``, started detached if not running.
    Demo profile only: a production process never starts it."""
    from simulator import embedded

    if not settings.is_demo():
        raise settings.SettingsError(
            "the simulator runs only in the demo profile (HUB_PROFILE=demo; `make demo`, `make ui`)"
        )
    return embedded.ensure_running(
        hub_home() / "simulator",
        seed=int(os.environ.get("HUB_SIM_SEED", "7")),
        scale=float(os.environ.get("HUB_SIM_SCALE", "1.0")),
    )


def connection_settings(county: County) -> dict[str, str]:
    """``HUB_<SLUG>_URL/_KEY/_SECRET`` from the environment (or .env); else the embedded
    simulator's in the demo profile; else :class:`~base.settings.NotConfigured`."""
    settings.load()
    if county.setting("URL"):
        return {
            "url": county.setting("URL") or "",
            "key": county.setting("KEY") or "",
            "secret": county.setting("SECRET") or "",
        }
    if settings.is_demo():
        return simulator_settings(county)
    raise settings.NotConfigured(county)


def client_for(county: County):
    """The platform client of ``county``, connected per its settings (or the simulator's)."""
    return http.client_for(county, connection_settings(county))


def normaliser_for(county: County) -> Callable:
    if county.kind == "bigdata":
        from pipelines.defs.bigdata.normalise import normalise
    elif county.kind == "battle":
        from pipelines.defs.battle.normalise import normalise
    else:
        from pipelines.defs.workbook.normalise import normalise
    return normalise
