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
from warehouse.statements import run as run_sql

CHECKS_SQL = "checks/asset_checks.sql"


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
    params = {"county": county.code, "entity": entity}
    row = run_sql(con, CHECKS_SQL, "latest_source_count", params).fetchone()
    live = run_sql(con, CHECKS_SQL, "live_rows", params, entity=entity).fetchone()[0]
    rejected_live = run_sql(con, CHECKS_SQL, "quarantined_live", params, entity=entity)
    rejected_live = rejected_live.fetchone()[0]
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
    refs = {"column": column, "parent": parent, "parent_column": parent_column}
    orphans = run_sql(con, CHECKS_SQL, "orphans", {"county": county.code}, entity=entity, **refs)
    orphans = orphans.fetchone()[0]
    return dg.AssetCheckResult(
        check_name="references_resolve",
        asset_key=entity_key(county, entity),
        passed=orphans == 0,
        metadata={"orphans": orphans, "references": f"{column} → {parent}.{parent_column}"},
    )


def _household_checks(con, county: County) -> list[dg.AssetCheckResult]:
    rejected, total = warehouse.latest_reject_counts(con, county.code)
    rate, threshold = (rejected / total if total else 0.0), county.reject_threshold
    params = {"county": county.code}
    conflicts = run_sql(con, CHECKS_SQL, "new_conflicts", params).fetchone()[0]
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


def evaluate(county: County, con=None) -> list[dg.AssetCheckResult]:
    """Every check of ``county`` against the live warehouse; call only from a pool step. ``con``:
    the step's open connection (the merge step reads its rejects and checks through one)."""
    if con is None:
        with warehouse.connect() as own:
            return evaluate(county, own)
    entities = entities_of(county)
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
