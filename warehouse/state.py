"""The state file: a county's committed watermarks cached where the landing step reads them
without opening DuckDB."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from base import paths

log = logging.getLogger(__name__)


def _slug(county: Any) -> str:
    return getattr(county, "slug", None) or str(county)


def state_path(county: Any) -> Path:
    return paths.hub_home() / "state" / f"{_slug(county)}.json"


def write_state(county: Any, marks: Mapping[str, str], *, sync_run_id: str | None = None) -> Path:
    """Cache a county's committed watermarks where the landing step reads them without opening
    DuckDB. Write after the merge committed; the warehouse stays the source of truth:
    ``sync_run_id`` is the sync that committed them, which ``warehouse.cursors`` compares with
    the warehouse's before a landing trusts the cache."""
    target = state_path(county)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(
        json.dumps(
            {
                "county": _slug(county),
                "watermarks": dict(marks),
                "sync_run_id": sync_run_id,
                "written_at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    os.replace(tmp, target)
    return target


def read_state(county: Any) -> dict[str, str]:
    """The cached watermarks of a county; empty (→ a full sync) when missing or unreadable."""
    target = state_path(county)
    try:
        return dict(json.loads(target.read_text(encoding="utf-8"))["watermarks"])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("state file %s unreadable (%s); treating as empty", target, exc)
        return {}
