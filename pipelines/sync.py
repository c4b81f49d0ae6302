"""One county's sync in two steps, independent of Dagster so it reads (and tests) on its own.

``land`` fetches every page from the county platform and stores it under the landing root
before anything parses it; it never opens the warehouse, so counties fetch in parallel.
``merge`` normalises, validates and merges one landed sync in a single DuckDB transaction; it
is the only step that opens the live warehouse and runs in the ``duckdb_warehouse`` pool.

Before it writes anything, ``merge`` checks what it is given: every landed page against its
sha256, every staged file against its checksum, every full listing against the platform's own
count, and the landing's starting cursors against the warehouse's (``warehouse.cursors``).
``replay`` merges an older landing again from its directory, recorded as a replay.
"""

from __future__ import annotations

import inspect
import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

import warehouse
from base import paths
from base.errors import (
    CursorMismatch,
    HubError,
    ListingIncomplete,
    RejectThresholdExceeded,
    ResourceError,
    SourceError,
    StaleReplay,
    resource_cause,
)
from pipelines import landing, notify, retention
from pipelines import staged as staged_io
from pipelines.landing import read_manifest
from pipelines.sources import client_for, normaliser_for
from pipelines.staging_alongside import LivePages, StagingAlongside
from schemas.validate import Validated, ValidationContext, load_poverty_lines, validate_county
from seeds import divisions
from seeds.registry import County
from warehouse import cursors, staged_rows
from warehouse import lock as warehouse_lock
from warehouse.batch import Batch, frame_of, load_frame
from warehouse.statements import run as run_sql
from warehouse.statements import sql as sql_text

log = logging.getLogger(__name__)

SYNC_SQL = "sync/sync.sql"

#: A share of a handful of records says nothing about the feed (one orphan in an incremental
#: batch of 13 is 7.7%); below this many records the rejects are quarantined but never refuse.
MIN_RECORDS_FOR_RATE = 200


@dataclass
class Landed:
    county_code: str
    sync_id: str
    mode: str
    manifest_path: str
    staged_path: str
    pages: int
    bytes: int
    seconds: float
    watermarks_before: dict[str, str]
    #: where the starting cursors came from: "cache", "warehouse", "none" or "replay"
    watermarks_source: str = ""
    #: merging an older landing again (``replay``): recorded under its own run id
    replay: bool = False


@dataclass
class Merged:
    county_code: str
    sync_id: str
    mode: str
    seconds: float
    counts: dict[str, dict[str, int]]  # entity -> fetched/accepted/rejected/findings/deleted
    top_reasons: list[dict] = field(default_factory=list)
    watermarks_before: dict[str, str] = field(default_factory=dict)
    watermarks_after: dict[str, str] = field(default_factory=dict)
    source_counts: dict[str, int] = field(default_factory=dict)
    source_lag_seconds: float | None = None
    #: the ops.sync_run id it was recorded under (the sync id, or ``<sync id>+replay<n>``)
    sync_run_id: str = ""


@notify.on_failure("land")
def land(county: County, mode: str = "incremental") -> Landed:
    """Fetch one sync's pages from the county platform into the landing area."""
    started = time.perf_counter()
    # The warehouse's committed cursors: the cache only when it is provably theirs.
    with warehouse_lock.working_for(county=county.slug):
        watermarks, source = cursors.starting_watermarks(county)
    if not watermarks:
        mode = "full"  # nothing committed yet: an incremental sync has nothing to resume from
    previous = _previous(mode, watermarks)
    # A normaliser that reads the pages once, in order, stages them as they land (issue 13).
    alongside = None
    if getattr(normaliser_for(county), "stages_while_landing", False):
        alongside = StagingAlongside(lambda path, live: stage(county, path, previous, live))
    # Pages are written as they arrive; a fetch that fails leaves them on disk in a manifest
    # marked incomplete, which is never merged (a partial full listing would look like deletions).
    try:
        manifest = landing.land(
            county,
            client_for(county),
            mode,
            watermarks if mode == "incremental" else {},
            sync={"watermarks_before": watermarks, "watermarks_source": source},
            on_page=alongside.add if alongside is not None else None,
        )
    except BaseException:
        if alongside is not None:
            alongside.abandon()
        raise
    sync_id, manifest_path = manifest.sync_id, manifest.path
    # Parse here, outside the warehouse pool, so counties normalise in parallel; the payloads
    # are already landed, so a page that fails to parse is kept for the engineer to inspect.
    staged_dir = alongside.finish() if alongside is not None else None
    if staged_dir is None:
        staged_dir = stage(county, Path(manifest_path), previous)
    return Landed(
        county_code=county.code,
        sync_id=sync_id,
        mode=mode,
        manifest_path=str(manifest_path),
        staged_path=str(staged_dir),
        pages=len(manifest.pages),
        bytes=sum(p.size for p in manifest.pages),
        seconds=time.perf_counter() - started,
        watermarks_before=watermarks,
        watermarks_source=source,
    )


def _previous(mode: str, watermarks: dict[str, str]) -> dict[str, str]:
    """The cursors a normaliser builds on: an incremental sync moves its starting cursors
    forward; a full sync sets them from what it saw (issue 10), so it starts from none (now
    that landings start from the warehouse's own cursors, a poisoned one would otherwise
    survive a full listing that saw nothing)."""
    return watermarks if mode == "incremental" else {}


def stage(
    county: County, manifest_path: Path, watermarks: dict[str, str], live: LivePages | None = None
) -> Path:
    """Normalise a landed sync into canonical frames, saved beside the manifest. ``live``: its
    pages as they are landed (``pipelines.staging_alongside``) instead of its manifest."""
    manifest = live if live is not None else read_manifest(manifest_path)
    normalise = normaliser_for(county)
    target = manifest_path.parent / "staged"
    with landing.disk_errors(county.label, "staging the normalised frames", target):
        if "workdir" in inspect.signature(normalise).parameters:
            # a streaming normaliser writes its frames into the staged directory page group
            # by page group (pipelines.staging): the county is never held whole in memory
            target.mkdir(parents=True, exist_ok=True)
            (target / "staged.json").unlink(missing_ok=True)
            staged = normalise(county, manifest, watermarks, workdir=target)
        else:
            staged = normalise(county, manifest, watermarks)
        return staged_io.save(staged, target)


def replay(county: County, sync_id: str, root: Path | None = None) -> Landed:
    """A landed sync, read back from its directory to be merged again (``merge``): recorded in
    ops.sync_run under ``<sync id>+replay<n>`` with ``replay_of``, beside the original run."""
    sync_dir = (Path(root) if root is not None else paths.landing_dir()) / county.slug / sync_id
    manifest = read_manifest(sync_dir)
    started = manifest.sync
    if "mode" not in started:
        raise SourceError(
            county.label,
            manifest.path,
            "the manifest does not say how the landing started (mode, cursors): it predates "
            "verified replays and cannot be replayed safely; sync the county anew",
        )
    return Landed(
        county_code=county.code,
        sync_id=manifest.sync_id,
        mode=started["mode"],
        manifest_path=str(manifest.path),
        staged_path=str(sync_dir / "staged"),
        pages=len(manifest.pages),
        bytes=sum(p.size for p in manifest.pages),
        seconds=0.0,
        watermarks_before=dict(started.get("watermarks_before") or {}),
        watermarks_source="replay",
        replay=True,
    )


def check_listings(county: County, staged, where: object) -> None:
    """Refuse a full listing whose frame heights differ from the platform's own live counts:
    absence from a short listing would delete records that still exist (the safety stop only
    catches large shares)."""
    differences = {
        entity: (staged.height(entity), int(staged.source_counts[entity]))
        for entity in sorted(staged.full_listing)
        if staged.height(entity) is not None
        and staged.source_counts.get(entity) is not None
        and staged.height(entity) != int(staged.source_counts[entity])
    }
    if differences:
        raise ListingIncomplete(county.label, where, differences)


def _context(con, county: County, staged) -> ValidationContext:
    """What validation needs from the warehouse that one batch cannot know, read for this county
    only (a county's records reference its own households, villages and cadres). The staged
    rows are read lazily, only the key columns these look-ups need."""

    def query(name: str, **views: pl.DataFrame) -> pl.DataFrame:
        # temp tables and results through the Arrow C stream: no pyarrow in the step (~60 MB)
        for view, frame in views.items():
            load_frame(con, view, frame)
        try:
            text = sql_text(SYNC_SQL, name, **{v: v for v in views})
            params = {"county": county.code} if "$county" in text else None
            return frame_of(con.sql(text, params=params))
        finally:
            for view in views:
                con.execute(f"DROP TABLE IF EXISTS temp.{view}")

    existing_members = None
    if "person" not in staged.full_listing:  # a full listing carries every member itself
        touched = pl.concat(
            [
                staged.scan(e, ["household_no"]).collect()
                for e in ("household", "person")
                if e in staged.entities()
            ]
            or [pl.DataFrame(schema={"household_no": pl.String})]
        ).unique()
        existing_members = query("existing_members", touched=touched)
        deleted = staged.deletions.get("person")
        if deleted is not None and deleted.height:
            # members who left at the source no longer count for their household's rules
            existing_members = existing_members.filter(
                ~pl.col("person_no").is_in(deleted["source_key"].implode())
            )
    poor_id_numbers = None
    if staged.height("cadre"):
        # only the poor people (of any county) who share an ID number with one of these cadres
        cadres = staged.scan("cadre", ["id_number"]).collect()
        poor_id_numbers = query("poor_id_numbers", cadres=cadres)
    known = divisions.known_for(county.code)
    return ValidationContext(
        existing_households=query("existing_households"),
        existing_villages=query("existing_villages"),
        existing_cadres=query("existing_cadres"),
        existing_members=existing_members,
        poor_id_numbers=poor_id_numbers,
        poverty_lines=load_poverty_lines(),
        as_of=staged.as_of,
        full_listing=staged.full_listing,
        known_towns=known[0] if known else None,
        known_villages=known[1] if known else None,
    )


@notify.on_failure("merge")
def merge(
    county: County,
    landed: Landed,
    db_path: Path | None = None,
    safety_share: float = warehouse.DEFAULT_SAFETY_SHARE,
    orchestrator_run: str | None = None,
) -> Merged:
    """Validate and merge one landed sync; the warehouse changes all or nothing.

    ``safety_share``: the largest share of a county's live records of one entity that may be
    deleted at once (raise it to accept a real mass deletion that the safety stop refused).
    ``orchestrator_run``: the Dagster run id, named to whoever waits for the warehouse lock."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    manifest = read_manifest(Path(landed.manifest_path))
    if not manifest.complete:
        raise SourceError(
            county.label, landed.manifest_path, "the landing did not complete; it is never merged"
        )
    # every page as landed: a truncated or altered page is refused
    landing.verify(manifest, county.label)
    staged_dir = Path(landed.staged_path)
    if not (staged_dir / "staged.json").exists():  # a replay of an older landing
        stage(county, Path(landed.manifest_path), _previous(landed.mode, landed.watermarks_before))
    staged = staged_io.open_verified(staged_dir, county.label)  # frames stay on disk
    check_listings(county, staged, staged_dir)
    db = Path(db_path) if db_path is not None else paths.live_db()
    with warehouse_lock.working_for(
        county=county.slug, run=orchestrator_run or landed.sync_id, purpose="merge"
    ):
        try:
            with warehouse.county_lock(county.code):  # DuckLake: one merge of a county at a time
                return _merge_checked(
                    county, landed, staged, manifest, db, safety_share, started, started_at
                )
        except warehouse_lock.WarehouseBusy as busy:
            # the warehouse is what we could not get: queue the failure for ops.sync_run
            warehouse.queue_failure(landed.sync_id, None, county.slug, str(busy))
            raise
        except HubError:
            raise
        except (duckdb.Error, OSError) as exc:
            cause = resource_cause(exc)
            if cause is None:
                raise
            raise ResourceError(county.label, db, "merging into the warehouse", cause) from exc


def _merge_checked(
    county: County,
    landed: Landed,
    staged,
    manifest,
    db: Path,
    safety_share: float,
    started: float,
    started_at: datetime,
) -> Merged:
    with warehouse.connect(db) as con:
        params = {"county": county.code}
        latest = run_sql(con, SYNC_SQL, "latest_merged_sync", params).fetchone()[0]
        if latest is not None and landed.sync_id < latest:  # sync ids sort by landing time
            raise StaleReplay(county.label, landed.sync_id, latest)
        before = warehouse.watermarks(con, county.code)
        if landed.mode == "incremental" and before != landed.watermarks_before:
            # the landing resumed from cursors the warehouse never committed: refuse, and make
            # the next landing start from the warehouse's own
            _refresh_cache(county, before, cursors.owners(con).get(county.code))
            raise CursorMismatch(county.label, landed.sync_id, landed.watermarks_before, before)
        run_id, replay_of = _run_id(con, county, landed)
        context = _context(con, county, staged)
        staged_rows.limit_memory(con)
        # the row-hash diff first: rows the same as core skip validation's per-row checks
        diff = staged_rows.diff_staged(
            Batch(con, {"county": county.code}), staged, warehouse.merge_entities(con)
        )
        try:
            result, reasons_by_entity, spike = _validate_and_merge(
                con,
                county,
                landed,
                staged,
                manifest,
                safety_share,
                started_at,
                run_id,
                replay_of,
                context,
                diff,
            )
        finally:
            diff.release()
        after = warehouse.watermarks(con, county.code)
        owner = cursors.owners(con).get(county.code)
    _refresh_cache(county, after, owner)
    if landed.mode == "full":  # the latest state is now replayable from this landing on
        retention.prune_landing(county, landed.sync_id)
    if spike is not None:  # sent outside the pool: a slow robot never holds the warehouse
        notify.send(spike)
    return Merged(
        county_code=county.code,
        sync_id=landed.sync_id,
        mode=landed.mode,
        seconds=time.perf_counter() - started,
        counts=result.counts,
        top_reasons=reasons_by_entity,
        watermarks_before=before,
        watermarks_after=after,
        source_counts=staged.source_counts,
        source_lag_seconds=_source_lag(staged),
        sync_run_id=run_id,
    )


def _validate_and_merge(
    con,
    county: County,
    landed: Landed,
    staged,
    manifest,
    safety_share: float,
    started_at: datetime,
    run_id: str,
    replay_of: str | None,
    context: ValidationContext,
    diff: staged_rows.StagedDiff,
):
    """Validate the staged rows (lazily; the diff's unchanged rows skip the per-row checks),
    then refuse the sync on its reject rate or merge it. Returns the merge result, each
    entity's top reasons and the reject-spike notice to send (if any)."""
    lazy = {e: staged.scan(e) for e in staged.entities()}
    # the diff's temp tables out of memory while polars works; validation's temporary files in
    # DuckDB's temp directory
    with staged_rows.spilled(con) as temp:
        validated: dict[str, Validated] = validate_county(
            lazy, context, unchanged=diff.unchanged, workdir=temp
        )
    rejected, total = warehouse.reject_counts(validated)
    rate = rejected / total if total else 0.0
    reasons = warehouse.top_reasons(validated)
    # the UI shows each entity's own top reasons, not the sync's overall top five
    reasons_by_entity = [r for e in validated for r in warehouse.top_reasons({e: validated[e]})]
    if total >= MIN_RECORDS_FOR_RATE and rate > county.reject_threshold:
        warehouse.refuse_sync(
            con,
            county,
            run_id,
            landed.mode,
            staged,
            validated,
            manifest,
            started_at,
            replay_of=replay_of,
        )
        raise RejectThresholdExceeded(
            county.label, rate, county.reject_threshold, reasons, rejected=rejected, total=total
        )
    result = warehouse.merge_county(
        con,
        county,
        run_id,
        landed.mode,
        staged,
        validated,
        manifest,
        started_at,
        safety_share=safety_share,
        replay_of=replay_of,
        diff=diff,
    )
    spike = notify.reject_spike(con, county, run_id, rejected, total)
    return result, reasons_by_entity, spike


def _refresh_cache(county: County, marks: dict[str, str], owner: str | None) -> None:
    """Cache the committed cursors for the next landing. The merge has committed: a cache that
    cannot be written (disk full) is dropped, not fatal; the next landing reads the warehouse."""
    try:
        warehouse.write_state(county, marks, sync_run_id=owner)
    except OSError as exc:
        log.warning(
            "%s: cursor cache not written (%s); the next landing reads the warehouse",
            county.slug,
            exc,
        )
        with suppress(OSError):
            warehouse.state_path(county).unlink(missing_ok=True)


def _run_id(con, county: County, landed: Landed) -> tuple[str, str | None]:
    """The ops.sync_run id of this merge: the landing's sync id, or, for a replay (asked for,
    or a sync id the warehouse already recorded), ``<sync id>+replay<n>`` so the original
    run's audit rows stay as they were."""
    params = {"id": landed.sync_id, "county": county.code}
    recorded, replays = run_sql(con, SYNC_SQL, "recorded_runs", params).fetchone()
    if not landed.replay and not recorded and not replays:
        return landed.sync_id, None
    return f"{landed.sync_id}+replay{replays + 1}", landed.sync_id


def _source_lag(staged) -> float | None:
    """Seconds between the newest source change we hold and now (None for workbooks)."""
    newest = []
    for entity in staged.entities():
        frame = staged.scan(entity)
        if "source_updated_at" in frame.collect_schema().names():
            newest.append(frame.select(pl.col("source_updated_at").max()).collect().item())
    newest = [n for n in newest if n is not None]
    if not newest:
        return None
    return (datetime.now(UTC) - max(newest)).total_seconds()
