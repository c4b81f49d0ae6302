"""Asset checks per county, evaluated against the live warehouse (so in the DuckDB pool).

They do not gate the merge — the merge step validates before writing (DESIGN decision 2) — they
tell the county admin, after the fact, whether what the warehouse holds agrees with the source.
"""

from dataclasses import dataclass

import dagster as dg

import warehouse
from pipelines.defs.keys import entities_of, entity_key
from pipelines.sync import MIN_RECORDS_FOR_RATE
from schemas.entities import references
from seeds.registry import County


@dataclass(frozen=True)
class Check:
    name: str  # the stable key (Dagster check name)
    label_zh: str  # what county admins read first
    description: str  # English


#: Every check with its Chinese label (docs/county-admins.md explains what to do when it fails).
CHECKS = {
    c.name: c
    for c in (
        Check(
            "count_matches_source",
            "条数与平台一致：仓库有效记录 + 隔离记录 = 平台报告的总数",
            "Live rows + quarantined = the source's own count.",
        ),
        Check(
            "references_resolve",
            "引用有效：每条记录的上级（户、行政村）都存在",
            "Every reference points at a live parent row.",
        ),
        Check(
            "reject_rate_below_threshold",
            "拒收率不超过本县阈值",
            "Rejected share of the latest sync ≤ the county's threshold.",
        ),
        Check(
            "no_new_conflicts",
            "最近一次同步没有新的冲突（身份证号、户编号）",
            "The latest sync recorded no ID-number or household-number conflict.",
        ),
    )
}


def _describe(name: str, detail: str | None = None) -> str:
    check = CHECKS[name]
    return f"{check.label_zh} — {detail or check.description}"


#: child entity: (child key column, parent table, parent key column), from the entity specs
REFERENCES = references()


def _count_check(con, county: County, entity: str) -> dg.AssetCheckResult:
    row = con.execute(
        """
        SELECT source_count, accepted FROM ops.sync_run
        WHERE county_code = ? AND entity = ? AND status = 'succeeded'
        ORDER BY finished_at DESC LIMIT 1
        """,
        [county.code, entity],
    ).fetchone()
    live = con.execute(
        f"SELECT count(*) FROM core.{entity} WHERE county_code = ? AND deleted_at IS NULL",
        [county.code],
    ).fetchone()[0]
    # Records the source holds but the warehouse quarantined: rejected by a merged sync and
    # never accepted since (an incremental sync does not resend what it rejected before).
    rejected_live = con.execute(
        f"""
        SELECT count(DISTINCT r.source_key) FROM ops.reject r
        WHERE r.county_code = $county AND r.entity = $entity
          AND r.sync_run_id IN (SELECT sync_run_id FROM ops.sync_run
                                WHERE county_code = $county AND status = 'succeeded')
          AND NOT EXISTS (SELECT 1 FROM core.{entity} c
                          WHERE c.county_code = r.county_code AND c.source_key = r.source_key)
        """,
        {"county": county.code, "entity": entity},
    ).fetchone()[0]
    source = row[0] if row else None
    if source is None or source < 0:
        return dg.AssetCheckResult(
            check_name="count_matches_source",
            asset_key=entity_key(county, entity),
            passed=True,
            metadata={"warehouse": live, "source": "not reported by this platform"},
        )
    # The source counts what it holds; we hold what it holds minus what we quarantined.
    return dg.AssetCheckResult(
        check_name="count_matches_source",
        asset_key=entity_key(county, entity),
        passed=live + rejected_live == source,
        metadata={"warehouse": live, "quarantined": rejected_live, "source": source},
    )


def _reference_check(con, county: County, entity: str) -> dg.AssetCheckResult:
    column, parent, parent_column = REFERENCES[entity]
    orphans = con.execute(
        f"""
        SELECT count(*) FROM core.{entity} c
        WHERE c.county_code = ? AND c.deleted_at IS NULL AND c.{column} IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {parent} p
                          WHERE p.{parent_column} = c.{column} AND p.deleted_at IS NULL)
        """,
        [county.code],
    ).fetchone()[0]
    return dg.AssetCheckResult(
        check_name="references_resolve",
        asset_key=entity_key(county, entity),
        passed=orphans == 0,
        metadata={"orphans": orphans, "references": f"{column} → {parent}.{parent_column}"},
    )


def _household_checks(con, county: County) -> list[dg.AssetCheckResult]:
    rejected, total = warehouse.latest_reject_counts(con, county.code)
    rate, threshold = (rejected / total if total else 0.0), county.reject_threshold
    conflicts = con.execute(
        """
        SELECT count(*) FROM ops.conflict
        WHERE (county_code_a = ? OR county_code_b = ?) AND sync_run_id = (
            SELECT max(sync_run_id) FROM ops.sync_run
            WHERE county_code = ? AND status = 'succeeded')
        """,
        [county.code, county.code, county.code],
    ).fetchone()[0]
    key = entity_key(county, "household")
    return [
        dg.AssetCheckResult(
            check_name="reject_rate_below_threshold",
            asset_key=key,
            # same rule as the merge: a batch this small is quarantined but never judged by rate
            passed=rate <= threshold or total < MIN_RECORDS_FOR_RATE,
            metadata={
                "reject_rate": round(rate, 4),
                "threshold": threshold,
                "records": total,
                "rejected": rejected,
                "min_records_for_rate": MIN_RECORDS_FOR_RATE,
            },
        ),
        dg.AssetCheckResult(
            check_name="no_new_conflicts",
            asset_key=key,
            passed=conflicts == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "new_conflicts": conflicts,
                "sql": dg.MetadataValue.md(
                    f"```sql\nSELECT * FROM ops.conflict WHERE '{county.code}' IN (county_code_a, county_code_b);\n```"
                ),
            },
        ),
    ]


def check_specs(county: County) -> list[dg.AssetCheckSpec]:
    entities = entities_of(county)
    specs = [
        dg.AssetCheckSpec(
            "count_matches_source",
            asset=entity_key(county, e),
            description=_describe("count_matches_source"),
        )
        for e in entities
        if e != "region"
    ]
    specs += [
        dg.AssetCheckSpec(
            "references_resolve",
            asset=entity_key(county, e),
            description=_describe("references_resolve"),
        )
        for e in entities
        if e in REFERENCES
    ]
    specs += [
        dg.AssetCheckSpec(
            "reject_rate_below_threshold",
            asset=entity_key(county, "household"),
            description=_describe(
                "reject_rate_below_threshold",
                f"Rejected share of the latest sync ≤ {county.reject_threshold:.0%}.",
            ),
        ),
        dg.AssetCheckSpec(
            "no_new_conflicts",
            asset=entity_key(county, "household"),
            description=_describe("no_new_conflicts"),
        ),
    ]
    return specs


def evaluate(county: County) -> list[dg.AssetCheckResult]:
    """Every check of ``county`` against the live warehouse; call only from a pool step."""
    entities = entities_of(county)
    with warehouse.connect() as con:
        results = [_count_check(con, county, e) for e in entities if e != "region"]
        results += [_reference_check(con, county, e) for e in entities if e in REFERENCES]
        results += _household_checks(con, county)
    return results


def refused_check(county: County, refused, rejects_csv: str | None = None) -> dg.AssetCheckResult:
    """The reject-rate check of a sync that refused to merge (``RejectThresholdExceeded``)."""
    metadata = {
        "reject_rate": round(refused.rate, 4),
        "threshold": county.reject_threshold,
        "records": refused.total or 0,
        "rejected": refused.rejected or 0,
    }
    if rejects_csv:
        metadata["rejects_csv"] = dg.MetadataValue.path(rejects_csv)
    return dg.AssetCheckResult(
        check_name="reject_rate_below_threshold",
        asset_key=entity_key(county, "household"),
        passed=False,
        metadata=metadata,
        description=CHECKS["reject_rate_below_threshold"].label_zh + "：本次同步被拒绝，未合并",
    )
