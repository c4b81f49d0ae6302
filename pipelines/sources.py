"""Which connector serves a county, connected where: the registry's platform kind picks the
connector (:func:`pipelines.connectors.registry.connector_for`), the profile picks where its
settings come from (:mod:`pipelines.connections`: the county's own ``HUB_<SLUG>_*`` settings,
or in the demo profile the bundled simulator for a county without them; production never
simulates), so the demo and the tests run the same connector code as production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pipelines.connections import connection_settings, connection_state, start_demo_source
from pipelines.connectors.registry import connector_for
from pipelines.http import PlatformClient
from seeds.registry import County

__all__ = [
    "client_for",
    "connection_settings",
    "connection_state",
    "normaliser_for",
    "start_embedded_simulator",
]


def client_for(county: County, settings: Mapping[str, str] | None = None) -> PlatformClient:
    """The client of ``county``'s platform kind, connected per ``settings`` (keys ``url``,
    ``key``, ``secret`` or ``HUB_<SLUG>_*``, plus ``HUB_HTTP_*`` knobs); without them, per
    :func:`~pipelines.connections.connection_settings`."""
    if settings is None:
        settings = connection_settings(county)
    return connector_for(county).client.from_county(county, settings)


def normaliser_for(county: County) -> Callable:
    """``normalise(county, manifest, previous_watermarks) -> Staged`` of the county's kind."""
    return connector_for(county).normalise


def start_embedded_simulator() -> dict:
    """Start the demo profile's connection source (the bundled simulator) if it is not running.
    Demo profile only: a production process never starts it."""
    return start_demo_source()
