"""Sync modes, and what an "incremental" sync really is on each platform.

``incremental`` asks the platform only for what changed since the committed watermarks. A
platform that cannot filter by time (商州's battle v2) answers it with everything: the hub
re-reads every record and applies only the changes. Calling that "incremental" in the UI, the
run report or the docs would hide a full read of the county every hour, so it is labelled
"full re-read, changes applied" wherever a mode is shown.
"""

from __future__ import annotations

from enum import StrEnum

from pipelines.connectors.registry import connector_for


class Mode(StrEnum):
    incremental = "incremental"
    full = "full"


MODES: tuple[str, ...] = tuple(m.value for m in Mode)

FULL_REREAD = "full re-read, changes applied"
FULL_REREAD_ZH = "全量重读，仅应用变化"
MODE_ZH = {"incremental": "增量", "full": "全量"}


def filters_by_time(county) -> bool:
    """Whether the county's platform can deliver only the records changed since a time (its
    connector's ``versions_without_time_filter``)."""
    return connector_for(county).filters_by_time(county.version)


def mode_label(county, mode: str) -> str:
    """What a sync of ``county`` in ``mode`` really does, in English (the report, metadata)."""
    if mode == Mode.incremental and not filters_by_time(county):
        return FULL_REREAD
    return mode


def mode_label_zh(county, mode: str) -> str:
    """The same in Chinese, for county admins."""
    if mode == Mode.incremental and not filters_by_time(county):
        return FULL_REREAD_ZH
    return MODE_ZH.get(mode, mode)
