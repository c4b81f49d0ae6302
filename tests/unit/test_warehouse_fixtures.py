"""Shared builders for the warehouse tests: tiny canonical frames, stand-ins for Validated and
the landing manifest, and a merge helper. (No tests here; imported by test_warehouse_*.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

import polars as pl

import warehouse
from pipelines.staged import Staged
from schemas.columns import ENTITIES, conform, empty_frame, frame_schema
from seeds.registry import County

LUONAN = County("611021", "洛南县", "Luonan County", "luonan", "bigdata", "2", 0.05, "")
SHANGNAN = County("611023", "商南县", "Shangnan County", "shangnan", "battle", "3", 0.05, "")

ISSUE_SCHEMA = {
    c: pl.String
    for c in ("entity", "source_key", "rule", "column_name", "value", "message", "raw_ref")
}
CONFLICT_SCHEMA = {"id_number": pl.String, "source_key": pl.String, "other_source_key": pl.String}


def when(day: str, hour: int = 12) -> datetime:
    """A merge time on a calendar day (UTC noon: the same day in Asia/Shanghai)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def frame(entity: str, rows: list[dict]) -> pl.DataFrame:
    """A canonical frame from partial rows: missing columns null, source_key = the key."""
    if not rows:
        return empty_frame(entity)
    key = {"household_cadre": None}.get(entity, next(iter(ENTITIES[entity])))
    full = []
    for i, row in enumerate(rows):
        r = dict.fromkeys(ENTITIES[entity])
        r.update(row)
        if key is not None:
            r.setdefault("source_key", r[key])
        else:
            r.setdefault("source_key", f"{r['household_no']}:{r['cadre_id']}")
        r.setdefault("source_updated_at", None)
        r.setdefault("raw_ref", f"p:{entity}#{i}")
        r["parse_errors"] = []
        full.append(r)
    return conform(entity, pl.DataFrame(full, schema_overrides=frame_schema(entity), strict=False))


def household(no: str, **kw) -> dict:
    row = {
        "household_no": no,
        "town_code": no[:9],
        "village_code": no[:12],
        "head_person_no": no + "01",
        "poverty_attribute": "general",
        "poverty_status": "not_exited",
        "main_cause": "illness",
        "other_causes": [],
        "identified_year": 2014,
        "income_per_capita": 2500.0,
        "member_count": 1,
        "housing_safe": True,
        "water_safe": True,
        "phone": "13912345678",
    }
    row.update(kw)
    return row


def person(no: str, id_number: str, **kw) -> dict:
    row = {
        "person_no": no,
        "household_no": no[:16],
        "name": "王秀英",
        "id_number": id_number,
        "id_upgraded": False,
        "sex": "female",
        "birth_date": datetime(1970, 5, 1).date(),
        "relation_to_head": "head",
        "ethnicity": "01",
        "education": "primary",
        "school_status": "not_in_school",
        "health": ["healthy"],
        "labor_skill": "ordinary",
        "work_status": "not_working",
        "work_months": 0,
        "serious_illness_insured": True,
    }
    row.update(kw)
    return row


@dataclass
class V:
    """Stand-in for schemas.validate.Validated."""

    accepted: pl.DataFrame
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ISSUE_SCHEMA))
    findings: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ISSUE_SCHEMA))
    conflicts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CONFLICT_SCHEMA))


def issues(entity: str, rows: list[tuple[str, str]], column: str = "x") -> pl.DataFrame:
    """Issue rows (source_key, rule) of one entity."""
    return pl.DataFrame(
        [
            {
                "entity": entity,
                "source_key": k,
                "rule": rule,
                "column_name": column,
                "value": "v",
                "message": f"{rule} broken",
                "raw_ref": f"p:{entity}#9",
            }
            for k, rule in rows
        ],
        schema=ISSUE_SCHEMA,
    )


def manifest(slug: str, run: str, entities=("household", "person")) -> SimpleNamespace:
    pages = [
        SimpleNamespace(
            page_id=f"{slug}:{run}:{i}",
            entity=e,
            url=f"http://127.0.0.1:9/api/{e}?page=1&token=s3cret",
            path=f"/var/landing/{slug}/{run}/{i:05d}-{e}.json",
            sha256="ab" * 32,
            size=123,
            content_type="application/json",
            meta={"pageNum": 1},
            fetched_at="2016-07-01T10:00:00.000Z",
        )
        for i, e in enumerate(entities, start=1)
    ]
    return SimpleNamespace(pages=pages)


def merge(
    con,
    county: County,
    run: str,
    *,
    day: str = "2016-07-01",
    mode: str = "full",
    households: list[dict] | None = None,
    persons: list[dict] | None = None,
    validated: dict | None = None,
    deletions: dict | None = None,
    full_listing: set | None = None,
    watermarks: dict | None = None,
    source_counts: dict | None = None,
    other: dict[str, list[dict]] | None = None,
    **kw,
):
    """Merge households/persons and ``other`` entities' rows (all accepted unless ``validated``
    is given) as one sync."""
    frames = {e: frame(e, r) for e, r in (other or {}).items()}
    if households is not None:
        frames["household"] = frame("household", households)
    if persons is not None:
        frames["person"] = frame("person", persons)
    validated = validated if validated is not None else {e: V(f) for e, f in frames.items()}
    staged = Staged(
        frames=frames,
        deletions=deletions or {},
        full_listing=full_listing if full_listing is not None else set(),
        source_counts=source_counts or {},
        watermarks=watermarks or {},
    )
    return warehouse.merge_county(
        con,
        county,
        run,
        mode,
        staged,
        validated,
        manifest(county.slug, run),
        when(day, 11),
        now=when(day),
        **kw,
    )
