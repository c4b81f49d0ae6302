"""What a normaliser hands to validation and the merge (architecture.md, Contract 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

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
