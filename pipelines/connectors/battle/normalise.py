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
from datetime import datetime

import polars as pl

from pipelines import staging
from pipelines.connectors.battle.layout import FIELDS
from pipelines.connectors.parsing import (
    Fields,
    advance,
    birth_date_from_id,
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
)
from pipelines.staged import Staged
from seeds import codes

WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"
BEGIN = "params[beginUpdateTime]"
LEVELS = {"2": "county", "4": "town", "5": "village"}
HEAD_ID = "__head_id"  # v2: the household head's normalised ID number, until resolved


def _code(table: str) -> dict[str, str]:
    return codes.from_labels(table)


def _staging(f: Fields, key: pl.Expr) -> dict[str, pl.Expr]:
    return {"source_key": key, "source_updated_at": f.local_timestamp("updateTime")}


def _region(f: Fields) -> dict[str, pl.Expr]:
    code = f.text("areaCode")
    return {
        "code": code,
        "level": f.text("areaLevel").replace(LEVELS),  # an unknown level stays as sent
        "name": f.text("areaName"),
        "parent_code": f.text("parentCode"),
        "is_poor_village": f.boolean("sfpkc", "is_poor_village"),
        "poor_village_exit_year": f.year("pkctcnf", "poor_village_exit_year"),
        "is_statistical_unit": statistical_unit(code),
        **_staging(f, code),
    }


def _household(f: Fields) -> dict[str, pl.Expr]:
    household_no, village = f.text("hbh"), f.text("xzqh")
    return {
        "household_no": household_no,
        "town_code": village.str.slice(0, 9),
        "village_code": village,
        # v3 names the head's person number; v2 only the head's ID number (resolved later).
        "head_person_no": f.text("hzrybh"),
        "head_id_number": f.text("hzsfz"),
        "poverty_attribute": f.code("pkhsx", _code("poverty_attribute"), "poverty_attribute"),
        "poverty_status": f.code("tpzt", _code("poverty_status"), "poverty_status"),
        "main_cause": f.code("zyzpyy", _code("poverty_cause"), "main_cause"),
        "main_cause_label": f.variant_label("zyzpyy", "poverty_cause", "main_cause_label"),
        "other_causes": f.code_list("qtzpyy", _code("poverty_cause"), "other_causes"),
        "identified_year": f.year("sbnf", "identified_year"),
        "exit_year": f.year("tpnf", "exit_year"),
        "relapse_year": f.year("fpnf", "relapse_year"),
        "income_per_capita": f.number("rjcsr", "income_per_capita"),
        "member_count": f.integer("jtrk", "member_count"),
        "housing_safe": f.boolean("zfaq", "housing_safe"),
        "water_safe": f.boolean("yssaq", "water_safe"),
        "phone": f.text("lxdh"),
        **_staging(f, household_no),
    }


def _person(f: Fields) -> dict[str, pl.Expr]:
    person_no = f.text("rybh")
    return {
        "person_no": person_no,
        "household_no": f.text("hbh"),
        "name": f.text("xm"),
        "id_number": f.text("sfzh"),  # normalised below
        "id_upgraded": pl.lit(False),
        "sex": f.code("xb", _code("sex"), "sex"),
        "birth_date": f.date("csrq", "birth_date"),  # v2: filled from the ID number below
        "relation_to_head": f.code("yhzgx", _code("relation_to_head"), "relation_to_head"),
        "ethnicity": f.code("mz", _code("ethnicity"), "ethnicity"),
        "education": f.code("whcd", _code("education"), "education"),
        "school_status": f.code("zxsqk", _code("school_status"), "school_status"),
        "health": f.code_list("jkzk", _code("health"), "health"),
        "labor_skill": f.code("ldjn", _code("labor_skill"), "labor_skill"),
        # codes.md: work status "无 (or empty)" is not_working.
        "work_status": f.code("wgzk", _code("work_status"), "work_status").fill_null("not_working"),
        "work_months": f.integer("wgsj", "work_months"),
        "serious_illness_insured": f.boolean("cjdbyl", "serious_illness_insured"),
        **_staging(f, person_no),
    }


def _measure(f: Fields) -> dict[str, pl.Expr]:
    measure_id = f.text("csbh")
    return {
        "measure_id": measure_id,
        "household_no": f.text("hbh"),
        "category": f.code("cslb", _code("measure_category"), "category"),
        "year": f.year("nd", "year"),
        "amount": f.number("je", "amount"),
        "description": f.text("csms"),
        **_staging(f, measure_id),
    }


def _loan(f: Fields) -> dict[str, pl.Expr]:
    loan_id = f.text("dkbh")
    return {
        "loan_id": loan_id,
        "household_no": f.text("hbh"),
        "lender": f.text("dkyh"),
        "principal": f.number("dkje", "principal"),
        "issued_on": f.date("ffrq", "issued_on"),
        "term_months": f.integer("dkqx", "term_months"),
        "annual_rate": f.number("nll", "annual_rate"),  # "4.35%" → 0.0435
        "interest_subsidy": f.number("txje", "interest_subsidy"),
        "status": f.code("dkzt", _code("loan_status"), "status"),
        **_staging(f, loan_id),
    }


def _project(f: Fields) -> dict[str, pl.Expr]:
    project_id = f.text("xmbh")
    return {
        "project_id": project_id,
        "village_code": f.text("xzqh"),  # "" (county-wide) → null
        "category": f.code("xmlb", _code("project_category"), "category"),
        "name": f.text("xmmc"),
        "budget": f.number("ysje", "budget"),
        "disbursed": f.number("bfje", "disbursed"),
        "status": f.code("xmzt", _code("project_status"), "status"),
        "start_on": f.date("kgrq", "start_on"),
        "end_on": f.date("wgrq", "end_on"),
        "households_benefited": f.integer("syhs", "households_benefited"),
        **_staging(f, project_id),
    }


def _cadre(f: Fields) -> dict[str, pl.Expr]:
    cadre_id = f.text("bfrbh")
    return {
        "cadre_id": cadre_id,
        "name": f.text("xm"),
        "id_number": f.text("sfzh"),
        "sex": f.code("xb", _code("sex"), "sex"),
        "phone": f.text("lxdh"),
        "unit_name": f.text("dwmc"),
        "unit_type": f.code("dwlx", _code("unit_type"), "unit_type"),
        "is_first_secretary": f.boolean("sfdysj", "is_first_secretary"),
        "is_resident_team": f.boolean("sfzcdy", "is_resident_team"),
        **_staging(f, cadre_id),
    }


def _household_cadre(f: Fields) -> dict[str, pl.Expr]:
    household_no, cadre_id = f.text("hbh"), f.text("bfrbh")
    return {
        "household_no": household_no,
        "cadre_id": cadre_id,
        "since": f.date("bfkssj", "since"),
        **_staging(f, pl.concat_str(household_no, pl.lit(":"), cadre_id)),
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


def _rows(county, page, order: int) -> pl.DataFrame:
    """The records of a list page; ``code`` must be 200 (errors come with HTTP 200 too)."""
    env = read_json_envelope(county, page)
    code = field_of(env, ["code"])
    if code is None:
        raise source_error(county, page.url, "the body is not a platform answer (no `code`)")
    if code.cast(pl.String).item() != "200":
        msg = field_of(env, ["msg"])
        detail = msg.cast(pl.String).item() if msg is not None else ""
        raise source_error(county, page.url, f"platform error code {code.item()} {detail}".strip())
    return records(county, page, field_of(env, ["rows"]), "rows", order)


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


def _builder(version: str):
    """One page group of an entity → its canonical rows (a staging part). v2 members get their
    birth date from the ID number; v2 households keep their head's normalised ID number
    (``__head_id``), resolved once the members are staged (``staging.StagedParts.finish``)."""

    def built(entity: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
        df = build(concat(frames), BUILDERS[entity])
        if entity in ("person", "cadre"):
            df = normalise_ids(df)
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
    previous = dict(previous_watermarks or {})
    version = "2" if str(county.version) == "2" else "3"
    fields = FIELDS[version]
    incremental: set[str] = set()
    listing: dict[str, dict] = {}
    paged: set[str] = set()

    with staging.open_parts(workdir) as parts:
        groups = staging.PageGroups(parts, _builder(version))
        for order, page in enumerate(manifest.pages):
            if page.entity == "listing":
                listing.update(_listing(county, page))
            elif page.entity in BUILDERS:
                df = _rows(county, page, order)
                require_fields(county, page, df, fields[page.entity])
                groups.add(page.entity, df)
                paged.add(page.entity)
                if version != "2" and query_has(page.url, page.meta, BEGIN, "beginUpdateTime"):
                    incremental.add(page.entity)
        groups.flush()

        for entity, stats in listing.items():
            if stats.get("beginUpdateTime") or stats.get("mode") == "incremental":
                incremental.add(entity)
        listed = paged | {e for e in listing if e in BUILDERS}
        # Households last: v2 resolves their heads among the (deduplicated) members.
        newest: dict[str, str | None] = {}
        for entity in sorted(listed, key=lambda e: e == "household"):
            v2_heads = entity == "household" and version == "2"
            persons = parts.frame_path("person") if "person" in listed else None
            parts.finish(entity, heads=persons if v2_heads else None, no_heads=v2_heads)
            newest[entity] = max_timestamp(parts.frame(entity), WATERMARK_FORMAT)
        frames, files = parts.result(listed)

    full = listed - incremental
    watermarks = dict(previous)
    for entity in listed:
        best = advance(
            previous.get(entity), newest[entity], full=entity in full, key=_watermark_key
        )
        if best:
            watermarks[entity] = best
        else:  # a full listing that saw no valid time: resume from scratch next time
            watermarks.pop(entity, None)

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
