"""Where the hub keeps things. Everything at run time lives under ``HUB_HOME`` (default ``var/``)."""

from __future__ import annotations

import os
from pathlib import Path

from seeds import DIVISIONS, SEEDS  # noqa: F401  (re-exported: where the reference data lives)

REPO = Path(__file__).resolve().parent.parent


def hub_home() -> Path:
    return Path(os.environ.get("HUB_HOME", REPO / "var")).resolve()


def duckdb_spill_dir() -> Path:
    """Where the hub's in-memory DuckDB instances (the lake's) spill what does not fit their
    memory limit. DuckDB's own default is ``.tmp`` in the working directory: rows of the
    warehouse, identifiers included, would land in whatever folder the hub was started from."""
    return hub_home() / "tmp" / "duckdb"


def live_db() -> Path:
    """The live warehouse: opened only by pipeline ops in the ``duckdb_warehouse`` pool."""
    return Path(os.environ.get("HUB_WAREHOUSE", hub_home() / "warehouse" / "hub.duckdb"))


def snapshot_db() -> Path:
    """The published read-only copy every analyst opens: no direct identifiers."""
    return Path(os.environ.get("HUB_SNAPSHOT", hub_home() / "warehouse" / "snapshot.duckdb"))


def pii_snapshot_db() -> Path:
    """The restricted copy with names, ID numbers and phones, for the few with PII rights
    (owner-only, in its own directory)."""
    return Path(
        os.environ.get("HUB_PII_SNAPSHOT", hub_home() / "restricted" / "pii-snapshot.duckdb")
    )


def landing_dir() -> Path:
    """Raw payloads exactly as received, one file per page under ``<slug>/<sync_id>/`` with a
    manifest (sha256 per page); indexed by ``raw.page`` once merged."""
    return hub_home() / "landing"
