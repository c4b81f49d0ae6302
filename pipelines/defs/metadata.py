"""What a county admin sees on each asset in the Dagster UI after a sync."""

from __future__ import annotations

import dagster as dg

from pipelines.registry import County
from pipelines.sync import Landed, Merged
from schemas.columns import ENTITIES


def frame_markdown(df) -> str:
    """A small polars frame as a markdown table (asset metadata renders markdown)."""
    header = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = [
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows()
    ]
    return "\n".join([header, rule, *body])


def landing_metadata(county: County, landed: Landed) -> dict:
    return {
        "county": f"{county.name} ({county.code})",
        "mode": landed.mode,
        "sync_run_id": landed.sync_id,
        "pages": landed.pages,
        "bytes": dg.MetadataValue.int(landed.bytes),
        "duration_s": round(landed.seconds, 2),
        "manifest": dg.MetadataValue.path(landed.manifest_path),
    }


def _reasons_table(merged: Merged, entity: str) -> str:
    rows = [r for r in merged.top_reasons if r.get("entity") == entity]
    if not rows:
        return "No rejected records."
    lines = ["| rule | column | records | example |", "|---|---|---|---|"]
    lines += [
        f"| `{r['rule']}` | {r.get('column_name') or ''} | {r['records']} | {r.get('message', '')} |"
        for r in rows
    ]
    return "\n".join(lines)


def _watermarks_of(entity: str, marks: dict[str, str]) -> dict[str, str]:
    """The cursors that concern ``entity``: its own (``household``, ``deletions:household``) and
    the county-wide ones (a workbook's ``file``)."""

    def about(name: str) -> str:
        return name.split(":")[-1]

    return {k: v for k, v in marks.items() if about(k) == entity or about(k) not in ENTITIES}


def merge_metadata(county: County, entity: str, merged: Merged) -> dict:
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
        "sync_run_id": merged.sync_id,
        "fetched": counts.get("fetched", 0),
        "accepted": counts.get("accepted", 0),
        "rejected": counts.get("rejected", 0),
        "findings": counts.get("findings", 0),
        "deleted": counts.get("deleted", 0),
        "source_count": merged.source_counts.get(entity, -1),
        "top_reject_reasons": dg.MetadataValue.md(_reasons_table(merged, entity)),
        "watermark_before": dg.MetadataValue.json(before),
        "watermark_after": dg.MetadataValue.json(after),
        "duration_s": round(merged.seconds, 2),
        "rejects_sql": dg.MetadataValue.md(f"```sql\n{reject_sql};\n```"),
        "dagster/row_count": counts.get("accepted", 0),
    }
    if merged.source_lag_seconds is not None:
        meta["source_lag_hours"] = round(merged.source_lag_seconds / 3600, 2)
    return meta
