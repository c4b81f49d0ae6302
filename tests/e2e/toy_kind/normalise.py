"""The toy platform's pages -> canonical frames (Contract 3), vectorised with polars."""

from __future__ import annotations

import json

import polars as pl

from pipelines.staged import Staged
from schemas.columns import conform, frame_schema

#: The toy platform's field names -> canonical columns.
FIELDS = {
    "region": {"code": "code", "level": "level", "name": "name", "parent": "parent_code"},
    "project": {
        "id": "project_id",
        "village": "village_code",
        "category": "category",
        "name": "name",
        "status": "status",
    },
}
KEY = {"region": "code", "project": "project_id"}


def normalise(county, manifest, previous_watermarks=None) -> Staged:
    frames, counts = {}, {}
    for entity, fields in FIELDS.items():
        (page,) = manifest.entity_pages(entity)
        rows = pl.DataFrame(json.loads(page.body()), schema=dict.fromkeys(fields, pl.String))
        frame = (
            rows.rename(fields)
            .with_row_index("row")
            .with_columns(
                source_key=pl.col(KEY[entity]),
                source_updated_at=pl.lit(None, pl.Datetime("us", "UTC")),
                raw_ref=pl.lit(page.page_id + "#") + pl.col("row").cast(pl.String),
                parse_errors=pl.lit(
                    [],
                    pl.List(
                        pl.Struct({"rule": pl.String, "column": pl.String, "value": pl.String})
                    ),
                ),
            )
        )
        frames[entity] = conform(entity, frame.with_columns(_missing(entity, frame)))
        counts[entity] = page.meta.get("total", frame.height)
    return Staged(frames=frames, full_listing=set(FIELDS), source_counts=counts)


def _missing(entity: str, frame: pl.DataFrame) -> list[pl.Expr]:
    """The canonical columns the toy platform does not send, as nulls of their type."""
    return [
        pl.lit(None, t).alias(c) for c, t in frame_schema(entity).items() if c not in frame.columns
    ]
