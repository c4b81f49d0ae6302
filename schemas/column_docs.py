"""Column documentation of the entities: Dagster ``TableSchema`` and descriptions with the
Chinese labels, from the pandera field titles."""

from __future__ import annotations

from schemas.columns import STAGING, frame_schema
from schemas.failures import MODELS

_STAGING_DESCRIPTIONS = {
    "source_key": "来源主键 — the platform's own key as text ('<hh>:<cadre>' for pairs)",
    "source_updated_at": "来源更新时间 — when the source last changed the record (UTC)",
    "raw_ref": "原始数据位置 — '<page_id>#<row>' of the landed payload",
    "parse_errors": "解析错误 — values the connector could not parse: {rule, column, value}",
}


def column_schema(entity: str) -> list[tuple[str, str, str]]:
    """(name, dtype, description with the Chinese label) for every column of the staged frame."""
    columns = MODELS[entity].to_schema().columns
    out = []
    for name, dtype in frame_schema(entity).items():
        if name in STAGING:
            description = _STAGING_DESCRIPTIONS[name]
        else:
            col = columns[name]
            description = f"{col.title} — {col.description}"
        out.append((name, str(dtype), description))
    return out


#: Columns the warehouse adds to every core table (city-standard.md, "Every core table also has").
CORE_LINEAGE: tuple[tuple[str, str, str], ...] = (
    ("county_code", "String", "县区代码 — county whose platform sent the record"),
    ("source_platform", "String", "来源平台 — bigdata / battle / workbook"),
    ("first_seen_at", "Datetime(UTC)", "首次同步 — when the warehouse first saw the record"),
    ("last_synced_at", "Datetime(UTC)", "最近同步 — the last sync that saw it"),
    ("sync_run_id", "String", "同步批次 — that sync's id"),
    (
        "deleted_at",
        "Datetime(UTC)",
        "删除时间 — set when the source deleted it; rows are never removed",
    ),
    ("row_hash", "String", "行哈希 — MD5 of the contract columns, for change detection"),
)


def table_schema(entity: str):
    """The ``core.<entity>`` table as a Dagster ``TableSchema`` (the ``dagster/column_schema``
    metadata key): the pandera model's columns, the lineage columns, and for persons the
    ``person_key`` pseudonym; the staging-only ``parse_errors`` is not a core column."""
    import dagster as dg  # only the orchestration layer needs dagster

    columns = [c for c in column_schema(entity) if c[0] != "parse_errors"]
    if entity == "person":
        columns.append(
            ("person_key", "String", "人员假名 — HMAC-SHA256 of id_number keyed by HUB_PII_KEY")
        )
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, dtype, description=description)
            for name, dtype, description in [*columns, *CORE_LINEAGE]
        ]
    )
