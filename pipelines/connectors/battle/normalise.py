"""脱贫攻坚作战平台 (``shared/platforms/battle.md``, v3 and the older v2): landed pages →
canonical frames.

Lists answer ``{"total", "rows", "code": 200, "msg"}``. Fields are pinyin initials, coded values
Chinese labels as typed by clerks (mapped with ``codes.from_labels``), yes/no is "是"/"否",
numbers and dates are mostly strings in several spellings, and ``updateTime`` is Beijing local
time with second precision. The client lands a final ``listing`` page: per entity the
platform's ``total``, the distinct keys landed and whether the listing was full.

v2 (商州): households name their head by ID number (``hzsfz``), members have no ``csrq``
(birth date only from the ID number), and every sync is a full listing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

import polars as pl

from pipelines import staging
from pipelines.connectors.battle.layout import CANONICAL as LAYOUT
from pipelines.connectors.battle.layout import FIELDS
from pipelines.connectors.pages import (
    checked_envelope,
    concat,
    field_of,
    group_refs,
    page_rows,
    query_has,
    require_fields,
    source_error,
)
from pipelines.connectors.parsing import (
    birth_date_from_id,
    canonical_rows,
    layout_columns,
    max_timestamp,
    move_watermark,
    normalise_ids,
    staged_rows,
)
from pipelines.staged import Staged
from seeds import codes

WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"
BEGIN = "params[beginUpdateTime]"
HEAD_ID = "__head_id"  # v2: the household head's normalised ID number, until resolved


#: canonical entity -> its columns from the records (coded values are Chinese labels).
COLUMNS = {e: layout_columns(e, layout, codes.from_labels) for e, layout in LAYOUT.items()}


def _rows(county, page) -> pl.DataFrame:
    """The records of a list page; ``code`` must be 200. Without ``raw_ref``/``__order``: the
    page group adds them (``_builder``), one query per group instead of one per page (商州's
    v2 pages hold 200 rows: ~900 pages a sync at scale 1)."""
    env = checked_envelope(county, page, ok_code="200", message="msg", called="answer")
    return page_rows(county, page, field_of(env, ["rows"]), "rows")


#: per entity, the pages of its pending page group: (page id, order, rows), as added
PageRefs = dict[str, list[tuple[str, int, int]]]


def _listing(county, page) -> dict[str, dict]:
    try:
        listing = json.loads(page.body())
    except ValueError as exc:
        raise source_error(county, page.url, "listing page is not JSON") from exc
    if not isinstance(listing, dict) or not all(isinstance(v, dict) for v in listing.values()):
        raise source_error(county, page.url, "listing page is not {entity: {total, …}}")
    return listing


def _watermark_key(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")


def _builder(version: str, refs: PageRefs):
    """One page group of an entity → its canonical rows (a staging part). The rows get their
    ``raw_ref`` and ``__order`` from ``refs`` (the group's pages, in the order they were added).
    v2 members get their birth date from the ID number; v2 households keep their head's
    normalised ID number (``__head_id``), resolved once the members are staged
    (``staging.StagedParts.finish``)."""

    def built(entity: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
        rows = concat(frames)
        tags = group_refs(refs.pop(entity, []))
        if tags.height != rows.height:  # the pages and their refs are added together
            raise RuntimeError(f"{entity}: {rows.height} rows but {tags.height} row refs")
        # with_columns, as with_refs: a source field of the same name is replaced, as before
        df = canonical_rows(entity, [rows.with_columns(tags.get_columns())], COLUMNS[entity])
        if entity == "person" and version == "2":
            df = df.with_columns(birth_date_from_id().alias("birth_date"))
        if entity == "household" and version == "2":
            heads = normalise_ids(df.select("head_id_number"), col="head_id_number")
            df = df.with_columns(heads["id_number"].alias(HEAD_ID))
            return staged_rows(entity, df, HEAD_ID)
        return staged_rows(entity, df)

    return built


def normalise(
    county, manifest, previous_watermarks: dict[str, str] | None = None, workdir=None
) -> Staged:
    """All landed pages of one battle-platform sync → canonical frames, counts and watermarks.

    Page group by page group (``pipelines.staging``): the frames are written under ``workdir``
    (the staged directory) and never held whole; without ``workdir`` they are read back into
    ``Staged.frames``."""
    version = "2" if str(county.version) == "2" else "3"
    fields = FIELDS[version]
    incremental: set[str] = set()
    listing: dict[str, dict] = {}
    paged: set[str] = set()

    refs: PageRefs = defaultdict(list)
    with staging.open_parts(workdir) as parts:
        groups = staging.PageGroups(parts, _builder(version, refs))
        for order, page in enumerate(manifest.pages):
            if page.entity == "listing":
                listing.update(_listing(county, page))
            elif page.entity in COLUMNS:
                df = _rows(county, page)
                require_fields(county, page, df, fields[page.entity])
                refs[page.entity].append((page.page_id, order, df.height))
                groups.add(page.entity, df)
                paged.add(page.entity)
                if version != "2" and query_has(page.url, page.meta, BEGIN, "beginUpdateTime"):
                    incremental.add(page.entity)
        groups.flush()

        for entity, stats in listing.items():
            if stats.get("beginUpdateTime") or stats.get("mode") == "incremental":
                incremental.add(entity)
        listed = paged | {e for e in listing if e in COLUMNS}
        # Households last: v2 resolves their heads among the (deduplicated) members.
        newest: dict[str, str | None] = {}
        for entity in sorted(listed, key=lambda e: e == "household"):
            v2_heads = entity == "household" and version == "2"
            persons = parts.frame_path("person") if "person" in listed else None
            parts.finish(entity, heads=persons if v2_heads else None, no_heads=v2_heads)
            newest[entity] = max_timestamp(parts.frame(entity), WATERMARK_FORMAT)
        frames, files = parts.result(listed)

    full = listed - incremental
    watermarks = dict(previous_watermarks or {})
    for entity in listed:
        move_watermark(watermarks, entity, newest[entity], full=entity in full, key=_watermark_key)

    # The platform's total is the live count only when the listing was not filtered by time.
    source_counts = {
        e: int(s["total"])
        for e, s in listing.items()
        if e in full and isinstance(s.get("total"), int | float)
    }
    return Staged(
        frames=frames,
        files=files,
        deletions={},
        full_listing=full,
        source_counts=source_counts,
        watermarks=watermarks,
    )


#: Reads ``manifest.pages`` once, in order: ``sync.land`` stages each page as it is landed
#: (``pipelines.staging_alongside``), beside the fetch.
normalise.stages_while_landing = True  # type: ignore[attr-defined]
