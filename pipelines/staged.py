"""What a normaliser hands to validation and the merge (architecture.md, Contract 3)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

#: Layout of a deletion frame: the platform's key of the deleted record and when it went.
DELETION_SCHEMA: dict[str, pl.DataType] = {
    "source_key": pl.String(),
    "deleted_at": pl.Datetime("us", "UTC"),
}


@dataclass
class Staged:
    """The canonical content of one county sync, ready for validation.

    - ``frames``: entity -> canonical frame (``schemas.columns.conform``ed), one row per key.
    - ``deletions``: entity -> ``{source_key, deleted_at}`` (the bigdata deletion feed).
    - ``full_listing``: entities listed in full in this sync: a key absent from such a listing
      has been deleted at the source.
    - ``source_counts``: the source's own count of live records per entity (bigdata ``stats``,
      battle listing totals of full listings, workbook rows).
    - ``watermarks``: the cursors to commit in the same transaction as the merge.
    - ``as_of``: the export date of a workbook snapshot (None for the live platforms).
    """

    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    deletions: dict[str, pl.DataFrame] = field(default_factory=dict)
    full_listing: set[str] = field(default_factory=set)
    source_counts: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, str] = field(default_factory=dict)
    as_of: date | None = None


def empty_deletions() -> pl.DataFrame:
    return pl.DataFrame(schema=DELETION_SCHEMA)


def save(staged: Staged, directory: Path) -> Path:
    """Write a staged sync beside its landed pages (Parquet frames + a JSON header), so the
    merge step — the only one holding the warehouse — does not parse payloads itself."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind, frames in (("frame", staged.frames), ("deletions", staged.deletions)):
        for entity, df in frames.items():
            df.write_parquet(directory / f"{kind}.{entity}.parquet", compression="lz4")
    header = {
        "entities": sorted(staged.frames),
        "deletions": sorted(staged.deletions),
        "full_listing": sorted(staged.full_listing),
        "source_counts": staged.source_counts,
        "watermarks": staged.watermarks,
        "as_of": staged.as_of.isoformat() if staged.as_of else None,
    }
    (directory / "staged.json").write_text(json.dumps(header, ensure_ascii=False, indent=1))
    return directory


def load(directory: Path) -> Staged:
    header = json.loads((directory / "staged.json").read_text())
    return Staged(
        frames={e: pl.read_parquet(directory / f"frame.{e}.parquet") for e in header["entities"]},
        deletions={
            e: pl.read_parquet(directory / f"deletions.{e}.parquet") for e in header["deletions"]
        },
        full_listing=set(header["full_listing"]),
        source_counts=header["source_counts"],
        watermarks=header["watermarks"],
        as_of=date.fromisoformat(header["as_of"]) if header["as_of"] else None,
    )
