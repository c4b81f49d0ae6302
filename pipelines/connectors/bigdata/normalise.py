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
from pipelines.connectors.bigdata.layout import ENTITIES
from pipelines.connectors.bigdata.layout import FIELDS as API_FIELDS
from pipelines.connectors.parsing import (
    Fields,
    advance,
    build,
    concat,
    field_of,
    max_timestamp,
    normalise_ids,
    query_has,
    read_json_envelope,
    records,
    require_fields,
    source_error,
    staged_rows,
    statistical_unit,
    text_of,
)
from pipelines.staged import DELETION_SCHEMA, Staged, empty_deletions
from seeds import codes

#: The platform's entity path names → canonical entity names.
PLATFORM_ENTITIES = ENTITIES

#: Documented record fields per canonical entity: a page whose records lack one has changed layout.
FIELDS = {ENTITIES[api]: fields for api, fields in API_FIELDS.items()}

#: How the platform expects ``updatedAfter`` / ``deletedAfter`` back.
WATERMARK_FORMAT = "%Y-%m-%dT%H:%M:%S%.3f+08:00"


def _code(table: str) -> dict[str, str]:
    return codes.from_bigdata(table)


def _staging(f: Fields) -> dict[str, pl.Expr]:
    return {
        "source_key": f.text("id"),
        "source_updated_at": f.iso_timestamp("updatedAt"),
    }


def _region(f: Fields) -> dict[str, pl.Expr]:
    code = f.text("code")
    return {
        "code": code,
        "level": f.text("level"),
        "name": f.text("name"),
        "parent_code": f.text("parentCode"),
        "is_poor_village": f.boolean("poorVillage", "is_poor_village"),
        "poor_village_exit_year": f.integer("poorVillageExitYear", "poor_village_exit_year"),
        "is_statistical_unit": statistical_unit(code),
        **_staging(f),
    }


def _household(f: Fields) -> dict[str, pl.Expr]:
    village = f.text("villageCode")
    return {
        "household_no": f.text("householdNo"),
        "town_code": village.str.slice(0, 9),
        "village_code": village,
        "head_person_no": f.text("headMemberNo"),
        "poverty_attribute": f.code("attribute", _code("poverty_attribute"), "poverty_attribute"),
        "poverty_status": f.code("status", _code("poverty_status"), "poverty_status"),
        "main_cause": f.code("mainCause", _code("poverty_cause"), "main_cause"),
        # Codes carry no label variants (因婚/因丧 only occur in label-based exports).
        "main_cause_label": pl.lit(None, dtype=pl.String),
        "other_causes": f.code_list("otherCauses", _code("poverty_cause"), "other_causes"),
        "identified_year": f.integer("identifiedYear", "identified_year"),
        "exit_year": f.integer("exitYear", "exit_year"),
        "relapse_year": f.integer("relapseYear", "relapse_year"),
        "income_per_capita": f.number("incomePerCapita", "income_per_capita"),
        "member_count": f.integer("memberCount", "member_count"),
        "housing_safe": f.boolean("housingSafe", "housing_safe"),
        "water_safe": f.boolean("waterSafe", "water_safe"),
        "phone": f.text("phone"),
        **_staging(f),
    }


def _person(f: Fields) -> dict[str, pl.Expr]:
    return {
        "person_no": f.text("memberNo"),
        "household_no": f.text("householdNo"),
        "name": f.text("name"),
        "id_number": f.text("idNo"),  # normalised below
        "id_upgraded": pl.lit(False),
        "sex": f.code("sex", _code("sex"), "sex"),
        "birth_date": f.date("birthDate", "birth_date"),
        "relation_to_head": f.code("relation", _code("relation_to_head"), "relation_to_head"),
        "ethnicity": f.code("ethnicity", _code("ethnicity"), "ethnicity"),
        "education": f.code("education", _code("education"), "education"),
        "school_status": f.code("schoolStatus", _code("school_status"), "school_status"),
        "health": f.code_list("health", _code("health"), "health"),
        "labor_skill": f.code("laborSkill", _code("labor_skill"), "labor_skill"),
        # codes.md: work status "无 (or empty)" is not_working.
        "work_status": f.code("workStatus", _code("work_status"), "work_status").fill_null(
            "not_working"
        ),
        "work_months": f.integer("workMonths", "work_months"),
        "serious_illness_insured": f.boolean("seriousIllnessInsured", "serious_illness_insured"),
        **_staging(f),
    }


def _measure(f: Fields) -> dict[str, pl.Expr]:
    return {
        "measure_id": f.text("id"),
        "household_no": f.text("householdNo"),
        "category": f.code("category", _code("measure_category"), "category"),
        "year": f.integer("year", "year"),
        "amount": f.number("amount", "amount"),
        "description": f.text("description"),
        **_staging(f),
    }


def _loan(f: Fields) -> dict[str, pl.Expr]:
    return {
        "loan_id": f.text("id"),
        "household_no": f.text("householdNo"),
        "lender": f.text("lender"),
        "principal": f.number("principal", "principal"),
        "issued_on": f.date("issuedOn", "issued_on"),
        "term_months": f.integer("termMonths", "term_months"),
        "annual_rate": f.number("annualRate", "annual_rate"),
        "interest_subsidy": f.number("interestSubsidy", "interest_subsidy"),
        "status": f.code("status", _code("loan_status"), "status"),
        **_staging(f),
    }


def _project(f: Fields) -> dict[str, pl.Expr]:
    return {
        "project_id": f.text("id"),
        "village_code": f.text("villageCode"),
        "category": f.code("category", _code("project_category"), "category"),
        "name": f.text("name"),
        "budget": f.number("budget", "budget"),
        "disbursed": f.number("disbursed", "disbursed"),
        "status": f.code("status", _code("project_status"), "status"),
        "start_on": f.date("startOn", "start_on"),
        "end_on": f.date("endOn", "end_on"),
        "households_benefited": f.integer("householdsBenefited", "households_benefited"),
        **_staging(f),
    }


def _cadre(f: Fields) -> dict[str, pl.Expr]:
    return {
        "cadre_id": f.text("id"),
        "name": f.text("name"),
        "id_number": f.text("idNo"),
        "sex": f.code("sex", _code("sex"), "sex"),
        "phone": f.text("phone"),
        "unit_name": f.text("unitName"),
        "unit_type": f.code("unitType", _code("unit_type"), "unit_type"),
        "is_first_secretary": f.boolean("firstSecretary", "is_first_secretary"),
        "is_resident_team": f.boolean("residentTeam", "is_resident_team"),
        **_staging(f),
    }


def _household_cadre(f: Fields) -> dict[str, pl.Expr]:
    return {
        "household_no": f.text("householdNo"),
        "cadre_id": f.text("cadreId"),
        "since": f.date("since", "since"),
        **_staging(f),
    }


BUILDERS = {
    "region": _region,
    "household": _household,
    "person": _person,
    "measure": _measure,
    "loan": _loan,
    "project": _project,
    "cadre": _cadre,
    "household_cadre": _household_cadre,
}


def _data(county, page) -> pl.DataFrame:
    """The checked envelope of a page: ``code`` 0 (the gateway answers errors with HTTP 200)."""
    env = read_json_envelope(county, page)
    code = field_of(env, ["code"])
    if code is None:
        raise source_error(county, page.url, "the body is not a platform envelope (no `code`)")
    if code.cast(pl.String).item() != "0":
        message = field_of(env, ["message"])
        detail = message.cast(pl.String).item() if message is not None else ""
        raise source_error(county, page.url, f"platform error code {code.item()} {detail}".strip())
    return env


def _stats(county, page) -> dict[str, int]:
    """``GET /stats`` → the platform's count of live records per canonical entity."""
    try:
        counts = json.loads(page.body())["data"]["counts"]
        return {PLATFORM_ENTITIES.get(k, k): int(v) for k, v in counts.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise source_error(county, page.url, "stats body has no `data.counts`") from exc


def _deletions(county, page, entity: str, order: int) -> pl.DataFrame:
    env = _data(county, page)
    df = records(county, page, field_of(env, ["data", "items"]), "data.items", order)
    if df.height == 0:
        return pl.DataFrame(schema={**DELETION_SCHEMA, "entity": pl.String()})
    require_fields(county, page, df, ("id", "deletedAt"))
    f = Fields(df.schema)
    out = df.select(
        f.text("id").alias("source_key"),
        f.iso_timestamp("deletedAt", "deleted_at"),
        (
            text_of(pl.col("entity")).replace(PLATFORM_ENTITIES)
            if "entity" in df.columns
            else pl.lit(entity)
        )
        .fill_null(entity)
        .alias("entity"),
    )
    if out["deleted_at"].null_count() or out["source_key"].null_count():
        raise source_error(county, page.url, "deletion records without `id` or a valid `deletedAt`")
    # the entity names files in staging: only the contract's entities may pass (a "/" crashed it)
    unknown = out.filter(~pl.col("entity").is_in(list(PLATFORM_ENTITIES.values())))["entity"]
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
    previous: dict[str, str],
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
            key = f"deletions:{entity}"
            full = entity not in incremental
            best = advance(previous.get(key), newest, full=full, key=_watermark_key)
            if best:
                watermarks[key] = best
            else:
                watermarks.pop(key, None)

    for entity in entities - incremental:
        if deletions[entity].height == 0:  # a full feed with nothing in it: no watermark to keep
            watermarks.pop(f"deletions:{entity}", None)

    return deletions


def _built(entity: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One page group of ``entity`` → its canonical rows (a staging part)."""
    df = build(concat(frames), BUILDERS[entity])
    if entity in ("person", "cadre"):
        df = normalise_ids(df)
    return staged_rows(entity, df)


def normalise(
    county, manifest, previous_watermarks: dict[str, str] | None = None, workdir=None
) -> Staged:
    """All landed pages of one 洛南 sync → canonical frames, deletions, counts and watermarks.

    Page group by page group (``pipelines.staging``): the frames are written under ``workdir``
    (the staged directory) and never held whole; without ``workdir`` they are read back into
    ``Staged.frames``."""
    previous = dict(previous_watermarks or {})
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
                entity = PLATFORM_ENTITIES.get(entity, entity)
                deletion_entities.add(entity)
                if query_has(page.url, page.meta, "deletedAfter"):
                    incremental_deletions.add(entity)
                deletion_frames.append(_deletions(county, page, entity, order))
            elif kind in BUILDERS:
                env = _data(county, page)
                df = records(county, page, field_of(env, ["data", "items"]), "data.items", order)
                require_fields(county, page, df, FIELDS[kind])
                groups.add(kind, df)
                listed.add(kind)
                if query_has(page.url, page.meta, "updatedAfter"):
                    incremental.add(kind)
            # Other page kinds (none documented) carry nothing to normalise.
        groups.flush()

        watermarks = dict(previous)
        for entity in listed:
            parts.finish(entity)
            newest = max_timestamp(parts.frame(entity), WATERMARK_FORMAT)
            best = advance(
                previous.get(entity), newest, full=entity not in incremental, key=_watermark_key
            )
            if best:
                watermarks[entity] = best
            else:  # a full listing that saw no valid time: resume from scratch next time
                watermarks.pop(entity, None)
        frames, files = parts.result(listed)

    deletions = _staged_deletions(
        deletion_frames, deletion_entities, incremental_deletions, previous, watermarks
    )

    return Staged(
        frames=frames,
        files=files,
        deletions=deletions,
        full_listing=listed - incremental,
        source_counts=source_counts,
        watermarks=watermarks,
    )
