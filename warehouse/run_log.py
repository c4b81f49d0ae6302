"""The run log: ops.sync_run rows of merged, refused and failed syncs, the failure queue
sensors write instead of opening the warehouse, ops.reject / ops.finding / ops.quarantine, and
the committed watermarks."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from base import paths
from base.errors import redact_text, redact_url
from schemas.columns import ENTITY_ORDER
from schemas.entities import ISSUE_COLUMNS, ISSUE_LEVELS
from warehouse.batch import Batch
from warehouse.keys import KeyScope
from warehouse.statements import run
from warehouse.transaction import transaction


def _issues(validated: Mapping[str, Any], attribute: str) -> pl.DataFrame:
    frames = [
        getattr(v, attribute).select(pl.col(c).cast(pl.String) for c in ISSUE_COLUMNS)
        for v in validated.values()
        if getattr(v, attribute) is not None and getattr(v, attribute).height
    ]
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema=dict.fromkeys(ISSUE_COLUMNS, pl.String))
    )


def stage_quarantine(batch: Batch, staged: Any, validated: Mapping[str, Any]) -> int:
    """The rejected records themselves (as normalised, JSON) into the temp table
    ``QUARANTINE_TABLE``, each with its piece (``_piece``); returns the number of pieces (0: no
    reject). Called before the merge's transaction: the polars frames that read them from the
    staged files and the transaction's DuckDB buffers are then never held at once (at scale 10
    they were the merge step's peak, 40-50 MB above the rest of the transaction:
    bench/profiles/merge.md, "The quarantine before the transaction")."""
    parts = []
    for entity, v in validated.items():
        frame = staged.scan(entity)  # the staged rows, read lazily: only the rejected ones load
        if frame is None or v.rejects.height == 0:
            continue
        keys = v.rejects["source_key"].unique().implode()
        rejected = frame.filter(pl.col("source_key").is_in(keys)).select(
            pl.lit(entity).alias("entity"),
            "source_key",
            "raw_ref",
            pl.struct(pl.all()).struct.json_encode().alias("record"),
        )
        parts.append(rejected.collect(engine="streaming"))
    if not parts:
        return 0
    records = pl.concat(parts)
    # in pieces of about QUARANTINE_ROWS records, every row of a key in the same piece (the
    # statement's NOT EXISTS then sees exactly what it saw in one piece): a county's rejects at
    # once did not fit the merge's DuckDB memory at scale 5 (bench/profiles/merge.md)
    pieces = -(-records.height // QUARANTINE_ROWS)
    piece = pl.col("source_key").cast(pl.String).hash(seed=11) % pieces
    batch.register(QUARANTINE_TABLE, records.with_columns(piece.alias("_piece")))
    return pieces


def _record_quarantine(batch: Batch, pieces: int) -> None:
    """Keep every rejected record itself in ops.quarantine, from ``stage_quarantine``'s table,
    one piece per statement."""
    for number in range(pieces):
        batch.run("70_bookkeeping.sql", "quarantine", rows=QUARANTINE_TABLE, piece=str(number))


#: Rejected records per quarantine statement (``_record_quarantine``).
QUARANTINE_ROWS = 5_000
#: The temp table of the rejected records (``stage_quarantine``).
QUARANTINE_TABLE = "_quarantine"


def _record_issues(batch: Batch, validated: Mapping[str, Any], findings: bool = True) -> None:
    """Validation's issues into their ops tables, every level alike (``ISSUE_LEVELS``);
    ``findings=False`` (a refused sync) records the rejects only."""
    for level in ISSUE_LEVELS.values():
        if level.level == "finding" and not findings:
            continue
        issues = _issues(validated, level.attribute)
        if issues.height:
            view = batch.register(f"_{level.attribute}", issues)
            batch.run("70_bookkeeping.sql", "issues", issues=view, target=level.table)


def _write_runs(
    batch: Batch,
    county: Any,
    staged: Any,
    counts: Mapping[str, Mapping[str, int]],
    marks_before: Mapping[str, str],
    status: str,
    error: str | None,
    finished: datetime,
) -> None:
    columns = ("fetched", "accepted", "rejected", "findings", "deleted")
    columns += ("inserted", "updated", "unchanged")
    rows = [
        {
            "entity": entity,
            **{c: int(n.get(c, 0)) for c in columns},
            "source_count": staged.source_counts.get(entity),
            "watermark_before": _watermark_for(entity, marks_before),
            "watermark_after": _watermark_for(entity, staged.watermarks)
            if status == "succeeded"
            else None,
        }
        for entity, n in counts.items()
    ]
    schema = {
        "entity": pl.String,
        **dict.fromkeys(columns, pl.Int64),
        "source_count": pl.Int64,
        "watermark_before": pl.String,
        "watermark_after": pl.String,
    }
    runs = pl.DataFrame(rows, schema=schema)
    batch.params.update(status=status, error=error, finished=finished)
    batch.run("70_bookkeeping.sql", "sync_runs", runs=batch.register("_runs", runs))


def _watermark_for(entity: str, marks: Mapping[str, str]) -> str | None:
    """The watermark of ``entity``: named ``<entity>`` or ``<anything>:<entity>``."""
    found = {k: v for k, v in marks.items() if k.split(":")[-1] == entity}
    if not found:
        return None
    return next(iter(found.values())) if len(found) == 1 else json.dumps(found, sort_keys=True)


def _run_entities(staged: Any, validated: Mapping[str, Any]) -> list[str]:
    seen = set(staged.entities()) | set(validated) | set(staged.deletions)
    return [e for e in ENTITY_ORDER if e in seen]


def _fetched(staged: Any, v: Any, entity: str) -> int:
    height = staged.height(entity)
    if height is not None:
        return height
    return (v.accepted.height + _distinct_keys(v.rejects)) if v is not None else 0


def _distinct_keys(issues: pl.DataFrame | None) -> int:
    return issues["source_key"].n_unique() if issues is not None and issues.height else 0


def reject_counts(validated: Mapping[str, Any]) -> tuple[int, int]:
    """(rejected, total) records of a sync, counting distinct source keys."""
    rejected = sum(_distinct_keys(v.rejects) for v in validated.values())
    return rejected, rejected + sum(v.accepted.height for v in validated.values())


def reject_rate(validated: Mapping[str, Any]) -> float:
    """Share of the records of a sync that validation rejected (distinct source keys)."""
    rejected, total = reject_counts(validated)
    return rejected / total if total else 0.0


def top_reasons(validated: Mapping[str, Any], n: int = 5) -> list[dict]:
    """The ``n`` most frequent reject reasons: dicts with entity, rule, column_name, records
    (distinct rejected records) and message (one example), most frequent first."""
    issues = _issues(validated, "rejects")
    if not issues.height:
        return []
    top = (
        issues.group_by("entity", "rule", "column_name")
        .agg(records=pl.col("source_key").n_unique(), message=pl.col("message").first())
        .sort(["records", "entity", "rule"], descending=[True, False, False])
        .head(n)
    )
    return top.to_dicts()


def refuse_sync(
    con: duckdb.DuckDBPyConnection,
    county: Any,
    sync_run_id: str,
    mode: str,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any = None,
    started_at: datetime | None = None,
    *,
    reason: str | None = None,
    replay_of: str | None = None,
) -> None:
    """Record a sync refused for its reject rate: its ops.sync_run rows (status ``refused``) and
    ops.reject rows, nothing else; the county's data and watermarks stay as they were.
    ``accepted`` in those rows counts what passed validation (and was not written)."""
    now = datetime.now(UTC)
    if reason is None:
        rate = reject_rate(validated)
        threshold = getattr(county, "reject_threshold", None)
        reasons = ", ".join(
            f"{r['entity']}.{r['rule']} ×{r['records']}" for r in top_reasons(validated)
        )
        limit = f" above the threshold of {threshold:.1%}" if threshold is not None else ""
        reason = f"refused: reject rate {rate:.1%}{limit}; top reasons: {reasons or 'none'}"
    batch = Batch(
        con,
        {
            "county": county.code,
            "run": sync_run_id,
            "mode": mode,
            "now": now,
            "replay_of": replay_of,
        },
    )
    batch.params["started"] = started_at or now
    try:
        # the runs' rows are the one keyed table it writes (warehouse.keys)
        runs = KeyScope({"ops.sync_run": "sync_run_id = $run"}, {"run": sync_run_id})
        with transaction(con, runs):
            marks_before = watermarks(con, county.code)
            _record_issues(batch, validated, findings=False)
            counts = {
                entity: {
                    "fetched": _fetched(staged, validated.get(entity), entity),
                    "accepted": validated[entity].accepted.height if entity in validated else 0,
                    "rejected": _distinct_keys(validated[entity].rejects)
                    if entity in validated
                    else 0,
                }
                for entity in _run_entities(staged, validated)
            }
            _write_runs(batch, county, staged, counts, marks_before, "refused", reason, now)
    finally:
        batch.release()


_URL = re.compile(r"https?://\S+")


def _clean_error(error: str, limit: int = 4000) -> str:
    """An error message safe to store: URLs lose credentials, bearer tokens are masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), redact_text(str(error)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_failure(
    con: duckdb.DuckDBPyConnection,
    sync_run_id: str,
    county_code: str | None,
    error: str,
    *,
    entity: str = "*",
    when: datetime | None = None,
) -> None:
    """Record a failed run in ops.sync_run (entity ``*``: the whole run), for the run-failure
    sensor. A county the run cannot be tied to is recorded as ``*``."""
    when = when or datetime.now(UTC)
    run(
        con,
        "ops/run_log.sql",
        "record_failure",
        {
            "run": sync_run_id,
            "county": county_code or "*",
            "entity": entity,
            "when": when,
            "error": _clean_error(error),
        },
    )


def _failure_queue() -> Path:
    return paths.hub_home() / "state" / "failures.jsonl"


def queue_failure(run_id: str, job: str | None, county: str | None, error: str) -> None:
    """Queue a failed run for ops.sync_run without opening the warehouse (sensors must not:
    it is single-writer). The next read-write :func:`connect` on the live file records it."""
    queue = _failure_queue()
    queue.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "run_id": run_id,
            "job": job,
            "county": county,
            "error": _clean_error(error),
            "at": datetime.now(UTC).isoformat(),
        },
        ensure_ascii=False,
    )
    with queue.open("a", encoding="utf-8") as f:  # one short append: atomic enough (O_APPEND)
        f.write(line + "\n")


def record_queued_failures(con: duckdb.DuckDBPyConnection) -> int:
    """Move queued failures into ops.sync_run; returns how many. The queue file is renamed
    before it is read, so a failure queued meanwhile waits for the next call."""
    from seeds.registry import county as find_county

    queue = _failure_queue()
    if queue.exists():
        os.replace(queue, queue.with_name(f"failures.{uuid.uuid4().hex}.taken"))
    recorded = 0
    for taken in sorted(queue.parent.glob("failures.*.taken")):
        entries = [json.loads(line) for line in taken.read_text("utf-8").splitlines() if line]
        for entry in entries:
            code = None
            if entry.get("county"):
                try:
                    code = find_county(entry["county"]).code
                except KeyError:
                    code = None
            record_failure(
                con,
                entry["run_id"],
                code,
                entry.get("error") or "run failed",
                when=datetime.fromisoformat(entry["at"]) if entry.get("at") else None,
            )
            recorded += 1
        taken.unlink()
    return recorded


def latest_reject_rate(con: duckdb.DuckDBPyConnection, county_code: str) -> float:
    """Reject rate of the county's latest merged or refused sync (0.0 before the first)."""
    rejected, total = latest_reject_counts(con, county_code)
    return rejected / total if total else 0.0


def latest_reject_counts(con: duckdb.DuckDBPyConnection, county_code: str) -> tuple[int, int]:
    """(rejected, total) records of the county's latest merged or refused sync."""
    params = {"county": county_code}
    row = run(con, "ops/run_log.sql", "latest_reject_counts", params).fetchone()
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


# --------------------------------------------------------------------------------------------
# watermarks and the state file


def watermarks(con: duckdb.DuckDBPyConnection, county_code: str) -> dict[str, str]:
    """The committed watermarks of a county: ``{name: value}``."""
    return dict(run(con, "ops/run_log.sql", "watermarks", {"county": county_code}).fetchall())
