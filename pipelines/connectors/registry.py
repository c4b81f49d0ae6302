"""The connector registry: one :class:`Connector` spec per platform kind, registered once.

Each kind is a package ``pipelines/connectors/<kind>/`` (``client.py``, ``normalise.py``,
``layout.py``) whose ``__init__.py`` calls :func:`register` with its spec. This module never
imports a kind: :func:`connector_for` discovers them by importing the subpackages of
``pipelines.connectors`` on first use (as dlt's ``PAGINATOR_MAP``/``register_paginator``: the
base knows no subclass). Everything that used to switch on ``county.kind`` asks the spec.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

#: How a kind's counties are launched besides the nightly full sync.
SCHEDULE = "schedule"  # hourly incremental (an API that can be polled)
NEW_FILE = "new_file"  # a sensor per county: the client's ``export_names()`` grew


@dataclass(frozen=True)
class Connector:
    """What the hub knows about one platform kind, in one place."""

    kind: str  # the registry's ``kind`` column
    client: type  # a ``pipelines.http.PlatformClient`` subclass: ``fetch(mode, watermarks)``
    normalise: Callable[..., Any]  # (county, manifest, previous_watermarks) -> Staged
    entities: tuple[str, ...]  # the canonical entities its counties deliver, parents first
    label: str  # shown in the UI: "脱贫攻坚作战平台 (battle)"
    freshness_warn: timedelta  # no success for this long: late (warn) …
    freshness_fail: timedelta  # … and stale (fail; the clerks are told)
    trigger: str = SCHEDULE  # SCHEDULE or NEW_FILE
    #: Versions whose API has no "changed since" filter: an incremental sync re-reads all.
    versions_without_time_filter: frozenset[str] = field(default_factory=frozenset)
    #: Whether a county at a real URL also needs ``HUB_<SLUG>_KEY`` and ``_SECRET``.
    credentials_required: bool = True
    #: What the clerks should check when the county goes stale (Chinese).
    stale_hint_zh: str = "请检查县平台是否正常、接口是否可以访问"

    def filters_by_time(self, version: str) -> bool:
        """Whether this platform version can deliver only the records changed since a time."""
        return str(version) not in self.versions_without_time_filter

    @property
    def hourly(self) -> bool:
        return self.trigger == SCHEDULE


class UnknownKind(ValueError):
    """A county names a platform kind no connector is registered for."""


_CONNECTORS: dict[str, Connector] = {}


def register(connector: Connector) -> Connector:
    """Register ``connector`` for its kind (a kind's package does this once, on import)."""
    existing = _CONNECTORS.get(connector.kind)
    if existing is not None and existing != connector:
        raise ValueError(f"platform kind {connector.kind!r} is registered twice")
    _CONNECTORS[connector.kind] = connector
    return connector


def _discover() -> None:
    """Import every kind package under ``pipelines.connectors`` (each registers itself)."""
    package = importlib.import_module("pipelines.connectors")
    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            importlib.import_module(f"{package.__name__}.{module.name}")


def connectors() -> dict[str, Connector]:
    """Every registered kind."""
    _discover()
    return dict(_CONNECTORS)


def connector_for(county_or_kind: Any) -> Connector:
    """The spec of a county's platform kind (or of a kind named directly)."""
    kind = getattr(county_or_kind, "kind", county_or_kind)
    if kind not in _CONNECTORS:
        _discover()
    try:
        return _CONNECTORS[kind]
    except KeyError:
        who = getattr(county_or_kind, "label", None)
        raise UnknownKind(
            f"{who + ': ' if who else ''}no connector for platform kind {kind!r} "
            f"(known: {', '.join(sorted(_CONNECTORS))}; a kind is a package under "
            "pipelines/connectors/ that calls register())"
        ) from None
