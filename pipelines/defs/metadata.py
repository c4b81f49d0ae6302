"""What a county admin sees on each asset in the Dagster UI after a sync."""

from __future__ import annotations

import dagster as dg

from pipelines.modes import mode_label, mode_label_zh
from pipelines.sync import Landed, Merged
from schemas.columns import ENTITIES
from schemas.rules import label_zh
from seeds.registry import County

#: Chinese label of every metadata key the county assets show (the English key stays, so
#: queries and tests keep working); rendered as the first entry, ``标签 labels``.
LABELS_ZH = {
    "county": "县区",
    "mode": "同步方式（full 全量 / incremental 增量）",
    "mode_label": "实际做法（不能按时间筛选的平台：全量重读，仅应用变化）",
    "sync_run_id": "同步批次号",
    "pages": "页数",
    "bytes": "字节数",
    "duration_s": "耗时（秒）",
    "manifest": "原始报文清单文件",
    "fetched": "取回记录数",
    "accepted": "通过校验的记录数（= 新增 + 更新 + 未变）",
    "inserted": "新增记录数",
    "updated": "有变化、已更新的记录数",
    "unchanged": "无变化的记录数（只更新同步时间）",
    "rejected": "拒收记录数",
    "findings": "警告条数",
    "deleted": "删除记录数",
    "source_count": "平台报告的总数（-1：平台不提供）",
    "top_reject_reasons": "最常见的拒收原因",
    "watermark_before": "同步前断点",
    "watermark_after": "同步后断点",
    "rejects_csv": "本次拒收清单（CSV，Excel 可直接打开）",
    "rejects_sql": "列出本次全部拒收记录的 SQL",
    "source_lag_hours": "平台最新变更距今（小时）",
}


def labels_markdown(keys) -> dg.MetadataValue:
    rows = [f"| `{k}` | {LABELS_ZH[k]} |" for k in keys if k in LABELS_ZH]
    return dg.MetadataValue.md("\n".join(["| 键 key | 含义 |", "|---|---|", *rows]))


def frame_markdown(df) -> str:
    """A small polars frame as a markdown table (asset metadata renders markdown)."""
    header = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = [
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows()
    ]
    return "\n".join([header, rule, *body])


def landing_metadata(county: County, landed: Landed) -> dict:
    meta = {
        "county": f"{county.name} ({county.code})",
        "mode": landed.mode,
        "mode_label": f"{mode_label_zh(county, landed.mode)} {mode_label(county, landed.mode)}",
        "sync_run_id": landed.sync_id,
        "pages": landed.pages,
        "bytes": dg.MetadataValue.int(landed.bytes),
        "duration_s": round(landed.seconds, 2),
        "manifest": dg.MetadataValue.path(landed.manifest_path),
    }
    return {"labels_zh": labels_markdown(meta), **meta}


def _reasons_table(merged: Merged, entity: str) -> str:
    rows = [r for r in merged.top_reasons if r.get("entity") == entity]
    if not rows:
        return "无拒收记录 No rejected records."
    lines = ["| 规则 rule | 字段 column | 记录数 records | 示例 example |", "|---|---|---|---|"]
    lines += [
        f"| {label_zh(r['rule'])} `{r['rule']}` | {r.get('column_name') or ''} | {r['records']} "
        f"| {r.get('message', '')} |"
        for r in rows
    ]
    return "\n".join(lines)


def _watermarks_of(entity: str, marks: dict[str, str]) -> dict[str, str]:
    """The cursors that concern ``entity``: its own (``household``, ``deletions:household``) and
    the county-wide ones (a workbook's ``file``)."""

    def about(name: str) -> str:
        return name.split(":")[-1]

    return {k: v for k, v in marks.items() if about(k) == entity or about(k) not in ENTITIES}


def merge_metadata(
    county: County, entity: str, merged: Merged, rejects_csv: str | None = None
) -> dict:
    counts = merged.counts.get(entity, {})
    before = _watermarks_of(entity, merged.watermarks_before)
    after = _watermarks_of(entity, merged.watermarks_after)
    reject_sql = (
        "SELECT source_key, rule, column_name, value, message, raw_ref FROM ops.reject "
        f"WHERE sync_run_id = '{merged.sync_id}' AND entity = '{entity}' ORDER BY source_key"
    )
    meta = {
        "county": f"{county.name} ({county.code})",
        "mode": merged.mode,
        "mode_label": f"{mode_label_zh(county, merged.mode)} {mode_label(county, merged.mode)}",
        "sync_run_id": merged.sync_id,
        "fetched": counts.get("fetched", 0),
        "accepted": counts.get("accepted", 0),
        # accepted = inserted + updated + unchanged: an unchanged record is not news
        "inserted": counts.get("inserted", 0),
        "updated": counts.get("updated", 0),
        "unchanged": counts.get("unchanged", 0),
        "rejected": counts.get("rejected", 0),
        "findings": counts.get("findings", 0),
        "deleted": counts.get("deleted", 0),
        "source_count": merged.source_counts.get(entity, -1),
        "top_reject_reasons": dg.MetadataValue.md(_reasons_table(merged, entity)),
        "watermark_before": dg.MetadataValue.json(before),
        "watermark_after": dg.MetadataValue.json(after),
        "duration_s": round(merged.seconds, 2),
        "rejects_sql": dg.MetadataValue.md(f"```sql\n{reject_sql};\n```"),
        **({"rejects_csv": dg.MetadataValue.path(rejects_csv)} if rejects_csv else {}),
        "dagster/row_count": counts.get("accepted", 0),
    }
    if merged.source_lag_seconds is not None:
        meta["source_lag_hours"] = round(merged.source_lag_seconds / 3600, 2)
    return {"labels_zh": labels_markdown(meta), **meta}
