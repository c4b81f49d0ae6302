"""The per-county merge (Contract 5): one sync into the warehouse in ONE transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from base.errors import SafetyStop, redact_url
from schemas.entities import CHILD_ENTITIES, HISTORY_ENTITIES
from schemas.sanity import watermark_in_future
from warehouse.batch import Batch
from warehouse.checkpoint import checkpoint_after
from warehouse.duckdb_bounds import (
    MERGE,
    SMALL_CHECKPOINT_MEMORY_LIMIT,
    SMALL_MERGE_ROWS,
    merge_write_limit,
    retry_out_of_memory,
    wide_statements,
)
from warehouse.entities import MergeEntity, merge_entities
from warehouse.keys import merge_scope
from warehouse.lake.retry import retry_conflicts
from warehouse.pii import _hmac_pads, pii_key
from warehouse.run_log import (
    _distinct_keys,
    _fetched,
    _record_issues,
    _record_quarantine,
    _run_entities,
    _write_runs,
    stage_quarantine,
    watermarks,
)
from warehouse.shared_keys import shared_person_keys
from warehouse.staged_rows import StagedDiff, diff_staged
from warehouse.statements import literal, run, sql
from warehouse.touch import finish_touches, record_same_rows
from warehouse.transaction import transaction

#: Default share of a county's live rows of an entity that one sync may soft-delete.
DEFAULT_SAFETY_SHARE = 0.2
#: Up to this many accepted persons the ID-number pairs group only the sync's own person_key
#: hashes (``60_conflicts.sql``, ``shared_person_keys_of_sync``: a semi-join whose hash table
#: is those hashes, ~10 MB here) instead of every live person of the city; above it, the
#: aggregate over every live person, which spills (a full load at scale 10).
PAIRS_OF_SYNC_ROWS = 400_000


@dataclass(frozen=True)
class MergeResult:
    """What one county merge wrote. ``counts``: entity -> fetched, accepted, rejected, findings,
    deleted, inserted, updated, unchanged (the ops.sync_run columns)."""

    sync_run_id: str
    county_code: str
    counts: dict[str, dict[str, int]]
    pages: int
    conflicts_open: int  # open ops.conflict rows involving this county after the merge
    finished_at: datetime

    def total(self, column: str) -> int:
        return sum(c[column] for c in self.counts.values())


def merge_county(
    con: duckdb.DuckDBPyConnection,
    county: Any,
    sync_run_id: str,
    mode: str,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any,
    started_at: datetime,
    *,
    safety_share: float = DEFAULT_SAFETY_SHARE,
    now: datetime | None = None,
    replay_of: str | None = None,
    diff: StagedDiff | None = None,
) -> MergeResult:
    """Merge one county sync into the warehouse in ONE transaction (Contract 5).

    ``staged`` is the normaliser's ``Staged``, ``validated`` maps entity -> ``Validated``
    (accepted / rejects / findings / conflicts), ``manifest`` has ``.pages``. Writes raw.page,
    ops.reject / ops.finding, the core upserts and history versions, soft deletes, ops.conflict,
    ops.watermark and ops.sync_run, or nothing: any error rolls everything back.

    - A row whose contract columns are unchanged (same ``row_hash``) only gets
      ``last_synced_at``/``sync_run_id``; a changed one is updated and, for household and
      person, its history version closed and a new one opened; a soft-deleted row that comes
      back is revived (``deleted_at`` cleared, new version).
    - Soft deletes come from ``staged.deletions`` and, for entities in ``staged.full_listing``,
      from absence (rejected rows count as listed). If more than ``safety_share`` of the
      county's live rows of an entity would disappear, :class:`SafetyStop` is raised and nothing
      is written. Members of a deleted household are deleted with it.
    - A key live in core under another county is not taken over: the claim is rejected
      (``key_owned_by_other_county``; its children ``parent_rejected``) and a household_no
      claim recorded in ops.conflict.
    - ID-number conflicts (validation's, and accepted persons whose ID number a live person with
      another person_no holds, in any county) go to ops.conflict, resolution ``keep_first_seen``:
      the record first seen wins, ties to the smaller person_no (see 60_conflicts.sql).

    ``now`` (default: the wall clock) stamps every row of the merge; tests pass it to place
    versions on chosen dates. ``replay_of``: the landing's sync id when this merge replays it
    under a new ``sync_run_id`` (ops.sync_run.replay_of), so the original run's audit stays.

    ``diff``: the row-hash diff computed before validation (``warehouse.staged_rows``); without
    it the merge computes it here. A ``Validated`` with ``rejected_rows`` has its accepted rows
    read from the staged rows (files or frames) by position; one without (a frame given as
    ``accepted``) is merged from that frame. Only rows that differ from core are staged with
    every column; the same rows are touched after the COMMIT, in pieces (``warehouse.touch``)."""
    now = now or datetime.now(UTC)
    batch = Batch(
        con,
        {
            "county": county.code,
            "platform": county.kind,
            "run": sync_run_id,
            "mode": mode,
            "now": now,
            "started": started_at,
            "replay_of": replay_of,
            **_hmac_pads(pii_key()),
        },
    )

    entities = merge_entities(con)  # the catalogue read once (duckdb_columns() is not free)

    def attempt() -> MergeResult:
        with transaction(con, merge_scope(sync_run_id, now)):  # keys: see warehouse.keys
            _diff_given(batch, staged, validated, entities, diff, now)
            return _merge(
                batch, county, staged, validated, manifest, safety_share, quarantine, entities
            )

    try:
        quarantine = stage_quarantine(batch, staged, validated)
        return _merge_then_touch(batch, county, attempt, entities)
    finally:
        batch.release()


def _diff_given(
    batch: Batch,
    staged: Any,
    validated: Mapping[str, Any],
    entities: dict[str, MergeEntity],
    diff: StagedDiff | None,
    now: datetime,
) -> None:
    """Entities validated elsewhere (their accepted frame given as is) are diffed here, inside
    the merge's transaction: a retried attempt builds its diff again."""
    given = {
        e: v.accepted for e, v in validated.items() if getattr(v, "rejected_rows", None) is None
    }
    if diff is None or any(e not in diff.sources for e in given):
        batch.params["now"] = now
        diff_staged(batch, staged, entities, given, now)


def _merge_then_touch(
    batch: Batch,
    county: Any,
    attempt: Callable[[], MergeResult],
    entities: dict[str, MergeEntity],
) -> MergeResult:
    """A touch an interrupted run left pending first (so this merge writes after it), then the
    merge's one transaction, then the touch of its unchanged rows, piece by piece."""
    con = batch.con
    finish_touches(con, county, entities, left_by_earlier=True)
    # DuckDB's checkpoint once the merge's temp tables are dropped, not at its COMMIT
    with checkpoint_after(con, merge_write_limit(con)) as after:  # the touch at the write limit
        # on DuckLake a commit conflict runs the whole merge again (warehouse.lake.retry)
        merged = retry_conflicts(lambda: retry_out_of_memory(con, MERGE, attempt), _label(county))
        batch.release()  # the touch after the COMMIT needs none of the merge's temp tables
        if small_merge(merged):
            after.memory_limit = SMALL_CHECKPOINT_MEMORY_LIMIT
    if batch.touch_after_commit:  # else every same row was touched in the transaction
        finish_touches(con, county, entities)
    return merged


def small_merge(merged: MergeResult) -> bool:
    """Did the merge write few rows (``duckdb_bounds.SMALL_MERGE_ROWS``: a one-day incremental)?
    Its checkpoint then runs with more memory than a large one's, which fills its limit."""
    rows = sum(merged.total(c) for c in ("inserted", "updated", "deleted", "unchanged"))
    return rows <= SMALL_MERGE_ROWS


def _label(county: Any) -> str:
    return f"merge of {getattr(county, 'label', county.code)}"


def _merge(
    batch: Batch,
    county: Any,
    staged: Any,
    validated: Mapping[str, Any],
    manifest: Any,
    safety_share: float,
    quarantine: int,
    entities: dict[str, MergeEntity],
) -> MergeResult:
    con = batch.con
    marks_before = watermarks(con, county.code)
    live_before = _live_counts(con, county.code, entities)

    pages = _pages_frame(manifest)
    if pages.height:
        batch.run("70_bookkeeping.sql", "pages", pages=batch.register("_pages", pages))

    run(con, "ops/run_log.sql", "merge_reject_table", table=batch.temp("_merge_reject"))

    # Upserts, parents first so a rejected household claim rejects its children.
    change_counts: dict[str, dict[str, int]] = {}
    for entity in entities:
        result = validated.get(entity)
        if result is None:
            continue
        rejected = getattr(result, "rejected_rows", None)
        change_counts[entity] = _upsert_entity(batch, entities[entity], rejected)

    gone = _soft_delete(batch, county, staged, validated, entities, live_before, safety_share)
    _record_conflicts(batch, staged, validated, "person" in change_counts)
    _record_issues(batch, validated)
    _record_quarantine(batch, quarantine)
    merge_rejects = dict(run(con, "ops/run_log.sql", "merge_reject_counts").fetchall())
    batch.run("70_bookkeeping.sql", "merge_rejects")

    _drop_stale_watermarks(con, county, staged)
    # a time in the future never becomes a watermark, even from a landing staged by older code
    believable = {k: str(v) for k, v in staged.watermarks.items() if not watermark_in_future(v)}
    if believable:
        marks = pl.DataFrame({"name": list(believable), "value": list(believable.values())})
        batch.run("70_bookkeeping.sql", "watermarks", marks=batch.register("_marks", marks))

    counts = {}
    for entity in _run_entities(staged, validated):
        v = validated.get(entity)
        changes = change_counts.get(entity, {"inserted": 0, "updated": 0, "unchanged": 0})
        counts[entity] = {
            "fetched": _fetched(staged, v, entity),
            "accepted": sum(changes.values()),
            "rejected": (_distinct_keys(v.rejects) if v is not None else 0)
            + merge_rejects.get(entity, 0),
            "findings": v.findings.height if v is not None else 0,
            "deleted": gone.get(entity, 0),
            **changes,
        }
    finished = datetime.now(UTC)
    _write_runs(batch, county, staged, counts, marks_before, "succeeded", None, finished)
    open_conflicts = run(con, "ops/run_log.sql", "open_conflicts", batch.params).fetchone()[0]
    return MergeResult(
        sync_run_id=batch.params["run"],
        county_code=county.code,
        counts=counts,
        pages=pages.height,
        conflicts_open=open_conflicts,
        finished_at=finished,
    )


def _upsert_entity(batch: Batch, spec: MergeEntity, rejected: pl.Series | None) -> dict[str, int]:
    """Pick the accepted rows (``rejected``: validation's rejected positions) of the diffed
    source, stage the changed ones, screen claims, version and upsert them; the rows the diff
    found the same only record that this sync saw them (``warehouse.touch``)."""
    ids = spec.identifiers()
    if rejected is not None and rejected.len():
        batch.register(ids["rejected"], pl.DataFrame({"_row": rejected.cast(pl.Int64)}))
        batch.run("10_stage.sql", "drop_rejected", **ids)
    batch.temp(ids["stage"])
    (repeated,) = batch.run("10_stage.sql", "repeated_keys", **ids).fetchone()
    if repeated:
        batch.run("10_stage.sql", "drop_older", **ids)
    with wide_statements(batch.con):
        batch.run("10_stage.sql", "stage", **ids)
    # the statements below that read only the stage do nothing when it is empty (every row the
    # same as core, or none delivered: most entities of an incremental), so they are skipped
    staged = _row_count(batch.con, ids["stage"]) > 0
    same = {**ids, "stage": ids["diff"]}  # the same rows stay in the diff
    if staged:
        batch.run("20_claims.sql", "claims", **ids)  # a same row's key is this county's: no claim
    # no claim rejected so far in this merge (parents come first): no parent claim, nothing to drop
    if _row_count(batch.con, "_merge_reject"):
        if spec.name in CHILD_ENTITIES:
            if staged:
                batch.run("20_claims.sql", "parent_claims", **ids)
            batch.run("20_claims.sql", "parent_claims", **same)
        if staged:
            batch.run("20_claims.sql", "drop_claims", **ids)
        batch.run("20_claims.sql", "drop_claims", **same)
    if spec.name == "household" and staged:  # claims of staged households only
        batch.run("20_claims.sql", "household_conflicts", **ids)
    inserted, updated, unchanged, matched = batch.run("10_stage.sql", "counts", **ids).fetchone()
    if staged and spec.name in HISTORY_ENTITIES:
        if matched:  # a staged key in core may have an open version to close
            batch.run("30_history.sql", "close_changed", **ids)
        batch.run("30_history.sql", "open_versions" if matched else "open_new", **ids)
    if staged:  # every staged key new to core (a first load): the insert branch alone, no join
        batch.run("40_upsert.sql", "upsert" if matched else "insert_new", **ids)
    record_same_rows(batch, spec)  # the same rows: touched now if few, else after the COMMIT
    _release_staged(batch, spec)
    return {"inserted": inserted, "updated": updated, "unchanged": unchanged}


def _release_staged(batch: Batch, spec: MergeEntity) -> None:
    """The entity's rows are in core now: free what DuckDB holds of them, so the merge's working
    set is one entity's and not the county's (``duckdb_bounds.MERGE``). Only the persons'
    keys are read again, by the ID-number pairs (``60_conflicts.sql``, ``id_pairs_core``)."""
    ids = spec.identifiers()
    if spec.name == "person":
        for table, columns in (
            (ids["stage"], "person_key, person_no, source_key"),
            (ids["diff"], "core_person_key, person_no, source_key, same"),
        ):
            batch.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM {table}"
            )
        return
    for table in (ids["stage"], ids["diff"]):
        batch.con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _soft_delete(
    batch: Batch,
    county: Any,
    staged: Any,
    validated: Mapping[str, Any],
    entities: Mapping[str, MergeEntity],
    live_before: Mapping[str, int],
    safety_share: float,
) -> dict[str, int]:
    """Find the rows that disappear (feed, absence), apply the safety stop, then delete them
    and the members of deleted households. Returns entity -> rows deleted."""
    con = batch.con
    candidates: dict[str, int] = {}
    for entity, spec in entities.items():
        ids = spec.identifiers()
        batch.temp(f"_gone_{entity}")
        batch.run("50_soft_delete.sql", "gone_table", **ids)
        feed = staged.deletions.get(entity)
        if feed is not None and feed.height:
            feed = feed.select(
                pl.col("source_key").cast(pl.String), pl.col("deleted_at").cast(pl.String)
            )
            view = batch.register(f"_deletions_{entity}", feed)
            batch.run("50_soft_delete.sql", "by_feed", deletions=view, **ids)
        if entity in staged.full_listing:
            view = _listing(batch, staged, validated, entity)
            batch.run("50_soft_delete.sql", "by_absence", listing=view, **ids)
        candidates[entity] = _row_count(con, f"_gone_{entity}")
        live = live_before.get(entity, 0)
        if live and candidates[entity] / live > safety_share:
            raise SafetyStop(county.label, entity, candidates[entity], live, safety_share)
    if candidates.get("household") and "person" in entities:
        batch.run("50_soft_delete.sql", "cascade_persons")
    gone = {}
    for entity, spec in entities.items():
        n = _row_count(con, f"_gone_{entity}")
        if not n:
            continue
        ids = spec.identifiers()
        batch.run("50_soft_delete.sql", "apply", **ids)
        if entity in HISTORY_ENTITIES:
            batch.run("50_soft_delete.sql", "close_history", **ids)
        gone[entity] = n
    return gone


def _listing(batch: Batch, staged: Any, validated: Mapping[str, Any], entity: str) -> str:
    """``_listing_<entity>``: every key a full listing delivered, accepted and rejected rows
    alike (the rejected ones are staged rows too), read set-based from the staged files."""
    name = f"_listing_{entity}"
    files = getattr(staged, "parts", {}).get(entity)
    if files:
        paths = ", ".join(map(literal, files))
        batch.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT DISTINCT CAST(source_key AS VARCHAR)"
            f" AS source_key FROM read_parquet([{paths}]) WHERE source_key IS NOT NULL"
        )
        return batch.temp_view(name)
    return batch.register(name, _listed_keys(staged, validated, entity))


def _listed_keys(staged: Any, validated: Mapping[str, Any], entity: str) -> pl.DataFrame:
    parts = [pl.DataFrame(schema={"source_key": pl.String})]
    if (frame := staged.frames.get(entity)) is not None:
        parts.append(frame.select(pl.col("source_key").cast(pl.String)))
    if (v := validated.get(entity)) is not None:
        parts.append(v.rejects.select(pl.col("source_key").cast(pl.String)))
    return pl.concat(parts).drop_nulls().unique()


def _record_conflicts(
    batch: Batch, staged: Any, validated: Mapping[str, Any], persons_staged: bool
) -> None:
    listed = "household" in staged.full_listing
    if not listed:  # the household-claim resolution reads this view in every merge
        batch.register("_listing_household", pl.DataFrame(schema={"source_key": pl.String}))
    batch.params["household_listed"] = listed
    batch.run("60_conflicts.sql", "resolve_id_conflicts")
    batch.run("60_conflicts.sql", "resolve_household_conflicts")
    batch.temp("_id_pair")
    batch.run("60_conflicts.sql", "id_pairs_table")
    person = validated.get("person")
    conflicts = getattr(person, "conflicts", None) if person is not None else None
    if conflicts is not None and conflicts.height:
        view = batch.register(
            "_conflicts",
            conflicts.select(
                pl.col(c).cast(pl.String) for c in ("id_number", "source_key", "other_source_key")
            ),
        )
        batch.run("60_conflicts.sql", "id_pairs_validated", conflicts=view)
    if persons_staged:
        batch.temp("_shared_person_key")
        (accepted,) = batch.run("60_conflicts.sql", "accepted_persons").fetchone()
        if accepted <= PAIRS_OF_SYNC_ROWS:  # the same set for what id_pairs_core reads
            batch.run("60_conflicts.sql", "shared_person_keys_of_sync")
        else:
            shared_person_keys(batch)  # in pieces: it reads every live person of the city
        if _row_count(batch.con, "_shared_person_key"):  # else no accepted person can pair
            batch.temp("_pairable_person")
            batch.run("60_conflicts.sql", "pairable_persons")
            batch.run("60_conflicts.sql", "id_pairs_core")
    if _row_count(batch.con, "_id_pair"):  # no pair: the MERGE has nothing to write
        batch.run("60_conflicts.sql", "record_id_conflicts")


def _drop_stale_watermarks(con: duckdb.DuckDBPyConnection, county: Any, staged: Any) -> None:
    """An entity listed in full whose sync set no watermark (it saw no believable time) starts
    afresh: its old watermark, possibly poisoned, must not survive the full listing."""
    gone = [e for e in staged.full_listing if e not in staged.watermarks]
    if gone:
        params = {"county": county.code, "names": gone}
        run(con, "ops/run_log.sql", "drop_watermarks", params)


def _live_counts(
    con: duckdb.DuckDBPyConnection, county_code: str, entities: Iterable[str]
) -> dict[str, int]:
    union = " UNION ALL ".join(
        sql("ops/run_log.sql", "live_count", entity=e).rstrip(";") for e in entities
    )
    return dict(con.execute(union, {"county": county_code}).fetchall())


def _row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return run(con, "ops/run_log.sql", "row_count", table=table).fetchone()[0]


def _pages_frame(manifest: Any) -> pl.DataFrame:
    """raw.page rows of a manifest (one per landed page: a few hundred, not records)."""
    schema = {
        "page_id": pl.String,
        "entity": pl.String,
        "url": pl.String,
        "fetched_at": pl.String,
        "sha256": pl.String,
        "size": pl.Int64,
        "content_type": pl.String,
        "path": pl.String,
        "meta": pl.String,
    }
    pages = getattr(manifest, "pages", None) or ()
    rows = [
        {
            "page_id": p.page_id,
            "entity": p.entity,
            "url": redact_url(p.url),
            "fetched_at": str(p.fetched_at),
            "sha256": p.sha256,
            "size": p.size,
            "content_type": p.content_type,
            "path": str(p.path),
            "meta": json.dumps(p.meta or {}, ensure_ascii=False, default=str),
        }
        for p in pages
    ]
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------------------------
# refused and failed syncs
