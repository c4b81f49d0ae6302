"""The county registry (``seeds/counties.csv``): one row per county, read once."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from seeds import SEEDS

#: A platform kind names a connector package (pipelines/connectors/<kind>/): a lowercase name.
KIND_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class County:
    code: str  # 6-digit NBS code, e.g. "611021"
    name: str  # 洛南县
    name_en: str
    slug: str  # luonan: Dagster group, env-var infix, file names
    kind: str  # the platform kind: a connector under pipelines/connectors/ (bigdata, battle, …)
    version: str  # bigdata "2"; battle "3" or "2"; workbook "xlsx" or "csv"
    reject_threshold: float  # share of rejected records above which the sync refuses to merge
    owner: str

    @property
    def env_prefix(self) -> str:
        return f"HUB_{self.slug.upper()}_"

    def setting(self, name: str) -> str | None:
        """``HUB_<SLUG>_<NAME>`` from the environment (URL, KEY, SECRET)."""
        return os.environ.get(self.env_prefix + name) or None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.code}, {self.slug})"


def registry_path() -> Path:
    return Path(os.environ.get("HUB_REGISTRY", SEEDS / "counties.csv"))


@cache
def _load(path: Path) -> tuple[County, ...]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    counties = []
    for row in rows:
        if not KIND_NAME.fullmatch(row["kind"] or ""):
            raise ValueError(f"{path}: county {row['slug']} has invalid kind {row['kind']!r}")
        counties.append(
            County(
                code=row["code"],
                name=row["name"],
                name_en=row["name_en"],
                slug=row["slug"],
                kind=row["kind"],
                version=row["version"],
                reject_threshold=float(row.get("reject_threshold") or 0.05),
                owner=row.get("owner") or "",
            )
        )
    return tuple(counties)


def counties() -> tuple[County, ...]:
    return _load(registry_path())


def county(slug_or_code: str) -> County:
    for c in counties():
        if slug_or_code in (c.slug, c.code):
            return c
    raise KeyError(f"no county {slug_or_code!r} in {registry_path()}")
