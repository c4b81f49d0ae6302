"""洛南 big-data platform (API v2, ``shared/platforms/bigdata.md``): landed pages → canonical frames.

Pages are JSON envelopes ``{"code": 0, "data": {"items": [...]}}``. Records carry the
platform's two-digit codes (mapped with ``codes.from_bigdata``), real JSON booleans and arrays,
and ``updatedAt`` in ISO-8601 with an offset.
"""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl

from pipelines import staging
from pipelines.connectors.bigdata.layout import CANONICAL as LAYOUT
from pipelines.connectors.bigdata.layout import ENTITIES
from pipelines.connectors.bigdata.layout import FIELDS as API_FIELDS
from pipelines.connectors.pages import (
    checked_envelope,
    field_of,
    query_has,
    records,
    require_fields,
    source_error,
)
from pipelines.connectors.parsing import (
    Fields,
    canonical_rows,
    layout_columns,
    max_timestamp,
    move_watermark,
    staged_rows,
    text_of,
)
from pipelines.staged import DELETION_SCHEMA, Staged, empty_deletions
from seeds import codes

#: Documented record fields per canonical entity: a page whose records lack one has changed layout.
FIELDS = {ENTITIES[api]: fields for api, fields in API_FIELDS.items()}

#: How the platform expects ``updatedAfter`` / ``deletedAfter`` back.
WATERMARK_FORMAT = "%Y-%m-%dT%H:%M:%S%.3f+08:00"


#: canonical entity -> its columns from the records (coded values are two-digit codes).
COLUMNS = {e: layout_columns(e, layout, codes.from_bigdata) for e, layout in LAYOUT.items()}


def _items(county, page, order: int) -> pl.DataFrame:
    """The records of a page; the envelope's ``code`` must be 0."""
    env = checked_envelope(county, page, ok_code="0", message="message", called="envelope")
    return records(county, page, field_of(env, ["data", "items"]), "data.items", order)


def _stats(county, page) -> dict[str, int]:
    """``GET /stats`` → the platform's count of live records per canonical entity."""
    try:
        counts = json.loads(page.body())["data"]["counts"]
        return {ENTITIES.get(k, k): int(v) for k, v in counts.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise source_error(county, page.url, "stats body has no `data.counts`") from exc


def _deletions(county, page, entity: str, order: int) -> pl.DataFrame:
    df = _items(county, page, order)
    if df.height == 0:
        return pl.DataFrame(schema={**DELETION_SCHEMA, "entity": pl.String()})
    require_fields(county, page, df, ("id", "deletedAt"))
    f = Fields(df.schema)
    out = df.select(
        f.text("id").alias("source_key"),
        f.iso_timestamp("deletedAt", "deleted_at"),
        (text_of(pl.col("entity")).replace(ENTITIES) if "entity" in df.columns else pl.lit(entity))
        .fill_null(entity)
        .alias("entity"),
    )
    if out["deleted_at"].null_count() or out["source_key"].null_count():
        raise source_error(county, page.url, "deletion records without `id` or a valid `deletedAt`")
    # the entity names files in staging: only the contract's entities may pass (a "/" crashed it)
    unknown = out.filter(~pl.col("entity").is_in(list(ENTITIES.values())))["entity"]
    if unknown.len():
        shown = ", ".join(repr(v[:40]) for v in unknown.unique().head(3).to_list())
        raise source_error(county, page.url, f"deletion records name no documented entity: {shown}")
    return out


def _watermark_key(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _staged_deletions(
    frames: list[pl.DataFrame],
    entities: set[str],
    incremental: set[str],
    watermarks: dict[str, str],
) -> dict[str, pl.DataFrame]:
    """The deletion feeds' pages → per entity the latest deletion of each key; moves the
    ``deletions:<entity>`` watermarks in ``watermarks``."""
    deletions: dict[str, pl.DataFrame] = {e: empty_deletions() for e in entities}
    if frames:
        all_deleted = pl.concat(frames, how="diagonal_relaxed")
        for (entity,), group in all_deleted.group_by("entity", maintain_order=True):
            latest_first = group.sort("deleted_at").unique("source_key", keep="last")
            deletions[entity] = latest_first.select(DELETION_SCHEMA.keys()).sort("source_key")
            newest = max_timestamp(
                latest_first.rename({"deleted_at": "source_updated_at"}), WATERMARK_FORMAT
            )
            full = entity not in incremental
            move_watermark(watermarks, f"deletions:{entity}", newest, full=full, key=_watermark_key)

    for entity in entities - incremental:
        if deletions[entity].height == 0:  # a full feed with nothing in it: no watermark to keep
            watermarks.pop(f"deletions:{entity}", None)

    return deletions


def _built(entity: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One page group of ``entity`` → its canonical rows (a staging part)."""
    return staged_rows(entity, canonical_rows(entity, frames, COLUMNS[entity]))


def normalise(
    county, manifest, previous_watermarks: dict[str, str] | None = None, workdir=None
) -> Staged:
    """All landed pages of one 洛南 sync → canonical frames, deletions, counts and watermarks.

    Page group by page group (``pipelines.staging``): the frames are written under ``workdir``
    (the staged directory) and never held whole; without ``workdir`` they are read back into
    ``Staged.frames``."""
    deletion_frames: list[pl.DataFrame] = []
    deletion_entities: set[str] = set()
    listed: set[str] = set()
    incremental: set[str] = set()
    incremental_deletions: set[str] = set()
    source_counts: dict[str, int] = {}

    with staging.open_parts(workdir) as parts:
        groups = staging.PageGroups(parts, _built)
        for order, page in enumerate(manifest.pages):
            kind = page.entity
            if kind == "stats":
                source_counts.update(_stats(county, page))
            elif kind.startswith("deletions:"):
                entity = kind.split(":", 1)[1]
                entity = ENTITIES.get(entity, entity)
                deletion_entities.add(entity)
                if query_has(page.url, page.meta, "deletedAfter"):
                    incremental_deletions.add(entity)
                deletion_frames.append(_deletions(county, page, entity, order))
            elif kind in COLUMNS:
                df = _items(county, page, order)
                require_fields(county, page, df, FIELDS[kind])
                groups.add(kind, df)
                listed.add(kind)
                if query_has(page.url, page.meta, "updatedAfter"):
                    incremental.add(kind)
            # Other page kinds (none documented) carry nothing to normalise.
        groups.flush()

        watermarks = dict(previous_watermarks or {})
        for entity in listed:
            parts.finish(entity)
            newest = max_timestamp(parts.frame(entity), WATERMARK_FORMAT)
            full = entity not in incremental
            move_watermark(watermarks, entity, newest, full=full, key=_watermark_key)
        frames, files = parts.result(listed)

    deletions = _staged_deletions(
        deletion_frames, deletion_entities, incremental_deletions, watermarks
    )

    return Staged(
        frames=frames,
        files=files,
        deletions=deletions,
        full_listing=listed - incremental,
        source_counts=source_counts,
        watermarks=watermarks,
    )
