"""How long landed payloads are kept.

Every page a county sends is landed under ``landing/<slug>/<sync_id>/`` before anything parses
it, so a sync can be replayed without the source. That is only needed until a later **full**
sync of the county has succeeded: the latest state can then be rebuilt from that full landing
and the incremental landings after it. Older landings are pruned once they are older than
``HUB_LANDING_KEEP_DAYS`` (default 30; ``forever`` keeps everything), right after a full sync
of the county merges (``pipelines.sync.merge``).

Never pruned: the full landing that succeeded, anything landed after it (its incremental
successors, a landing not merged yet), and anything younger than the retention age.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from base.paths import landing_dir

log = logging.getLogger(__name__)

DEFAULT_KEEP_DAYS = 30


def keep_days() -> float | None:
    """``HUB_LANDING_KEEP_DAYS``: days to keep landings older than the latest full sync;
    None = forever."""
    raw = (os.environ.get("HUB_LANDING_KEEP_DAYS") or str(DEFAULT_KEEP_DAYS)).strip().lower()
    if raw in ("forever", "never", "none", "inf"):
        return None
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if days < 0:
        raise ValueError(
            f"HUB_LANDING_KEEP_DAYS={raw!r}: a number of days (e.g. 30, 365) or 'forever'"
        )
    return days


def landed_at(sync_id: str) -> datetime | None:
    """When a sync was landed, from its id (``20261201T063033.224709Z-8e8ed4``)."""
    try:
        return datetime.strptime(sync_id.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Pruned:
    county: str
    sync_ids: tuple[str, ...]
    bytes: int


def prune_landing(
    county: object,
    full_sync_id: str,
    *,
    days: float | None = None,
    now: datetime | None = None,
    root: Path | None = None,
) -> Pruned:
    """Remove ``county``'s landings older than ``full_sync_id`` (a full sync that has just
    succeeded) and older than ``days`` (default :func:`keep_days`)."""
    slug = getattr(county, "slug", str(county))
    days = keep_days() if days is None else days
    base = (root or landing_dir()) / slug
    if days is None or not base.is_dir():
        return Pruned(slug, (), 0)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    removed, size = [], 0
    for sync_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        sync_id = sync_dir.name
        if sync_id >= full_sync_id:  # ids sort in landing order: this one or a later one
            continue
        when = landed_at(sync_id)
        if when is None:  # not a landing of ours: leave it alone
            continue
        if when > cutoff:
            continue
        size += sum(f.stat().st_size for f in sync_dir.rglob("*") if f.is_file())
        shutil.rmtree(sync_dir)
        removed.append(sync_id)
    if removed:
        log.info(
            "%s: pruned %d landed syncs older than %g days (%d bytes), kept from %s on",
            slug,
            len(removed),
            days,
            size,
            full_sync_id,
        )
    return Pruned(slug, tuple(removed), size)
