"""One county's sync in two steps, independent of Dagster so it reads (and tests) on its own.

``land`` fetches every page from the county platform and stores it under the landing root
before anything parses it; it never opens the warehouse, so counties fetch in parallel.
``merge`` normalises, validates and merges one landed sync in a single DuckDB transaction; it
is the only step that opens the live warehouse and runs in the ``duckdb_warehouse`` pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines import divisions, landing, notify, retention, warehouse
from pipelines import staged as staged_io
from pipelines.errors import RejectThresholdExceeded, SourceError, StaleReplay
from pipelines.landing import read_manifest
from pipelines.registry import County
from pipelines.sources import client_for, normaliser_for
from schemas.validate import Validated, ValidationContext, load_poverty_lines, validate_county

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


@notify.on_failure("land")
def land(county: County, mode: str = "incremental") -> Landed:
    """Fetch one sync's pages from the county platform into the landing area."""
    started = time.perf_counter()
    watermarks = warehouse.read_state(county)
    if not watermarks:
        mode = "full"  # nothing committed yet: an incremental sync has nothing to resume from
    # Pages are written as they arrive; a fetch that fails leaves them on disk in a manifest
    # marked incomplete, which is never merged (a partial full listing would look like deletions).
    manifest = landing.land(
        county, client_for(county), mode, watermarks if mode == "incremental" else {}
    )
    sync_id, manifest_path = manifest.sync_id, manifest.path
    # Parse here, outside the warehouse pool, so counties normalise in parallel; the payloads
    # are already landed, so a page that fails to parse is kept for the engineer to inspect.
    staged_dir = stage(county, Path(manifest_path), watermarks)
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
    )


def stage(county: County, manifest_path: Path, watermarks: dict[str, str]) -> Path:
    """Normalise a landed sync into canonical frames, saved beside the manifest."""
    manifest = read_manifest(manifest_path)
    staged = normaliser_for(county)(county, manifest, watermarks)
    return staged_io.save(staged, manifest_path.parent / "staged")


def _context(con, county: County, staged) -> ValidationContext:
    """What validation needs from the warehouse that one batch cannot know, read for this county
    only (a county's records reference its own households, villages and cadres)."""
    frames = staged.frames

    def query(sql: str, **views: pl.DataFrame) -> pl.DataFrame:
        for name, frame in views.items():
            con.register(name, frame.to_arrow())
        try:
            params = {"county": county.code} if "$county" in sql else {}
            return con.execute(sql, params).pl()
        finally:
            for name in views:
                con.unregister(name)

    existing_members = None
    if "person" not in staged.full_listing:  # a full listing carries every member itself
        touched = pl.concat(
            [frames[e].select("household_no") for e in ("household", "person") if e in frames]
            or [pl.DataFrame(schema={"household_no": pl.String})]
        ).unique()
        existing_members = query(
            """
            SELECT p.household_no, p.person_no, p.relation_to_head, p.sex, p.birth_date,
                   p.health, p.labor_skill
            FROM core.person p JOIN touched USING (household_no)
            WHERE p.deleted_at IS NULL
            """,
            touched=touched,
        )
        deleted = staged.deletions.get("person")
        if deleted is not None and deleted.height:
            # members who left at the source no longer count for their household's rules
            existing_members = existing_members.filter(
                ~pl.col("person_no").is_in(deleted["source_key"].implode())
            )
    poor_id_numbers = None
    cadres = frames.get("cadre")
    if cadres is not None and cadres.height:
        # only the poor people (of any county) who share an ID number with one of these cadres
        poor_id_numbers = query(
            """
            SELECT DISTINCT p.id_number FROM core.person p
            JOIN (SELECT DISTINCT id_number FROM cadres WHERE id_number IS NOT NULL) c USING (id_number)
            WHERE p.deleted_at IS NULL
            """,
            cadres=cadres.select("id_number"),
        )
    live = "county_code = $county AND deleted_at IS NULL"
    known = divisions.known_for(county.code)
    return ValidationContext(
        existing_households=query(f"SELECT household_no FROM core.household WHERE {live}"),
        existing_villages=query(f"SELECT code FROM core.region WHERE level = 'village' AND {live}"),
        existing_cadres=query(f"SELECT cadre_id FROM core.cadre WHERE {live}"),
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
) -> Merged:
    """Validate and merge one landed sync; the warehouse changes all or nothing.

    ``safety_share``: the largest share of a county's live records of one entity that may be
    deleted at once (raise it to accept a real mass deletion that the safety stop refused)."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    manifest = read_manifest(Path(landed.manifest_path))
    if not manifest.complete:
        raise SourceError(
            county.label, landed.manifest_path, "the landing did not complete; it is never merged"
        )
    staged_dir = Path(landed.staged_path)
    if not (staged_dir / "staged.json").exists():  # a replay of an older landing
        stage(county, Path(landed.manifest_path), landed.watermarks_before)
    staged = staged_io.load(staged_dir)
    with warehouse.connect(db_path) as con:
        latest = con.execute(
            "SELECT max(sync_run_id) FROM ops.sync_run WHERE county_code = ? AND status = 'succeeded'",
            [county.code],
        ).fetchone()[0]
        if latest is not None and landed.sync_id < latest:  # sync ids sort by landing time
            raise StaleReplay(county.label, landed.sync_id, latest)
        before = warehouse.watermarks(con, county.code)
        context = _context(con, county, staged)
        validated: dict[str, Validated] = validate_county(staged.frames, context)
        rejected, total = warehouse.reject_counts(validated)
        rate = rejected / total if total else 0.0
        reasons = warehouse.top_reasons(validated)
        # the UI shows each entity's own top reasons, not the sync's overall top five
        reasons_by_entity = [r for e in validated for r in warehouse.top_reasons({e: validated[e]})]
        if total >= MIN_RECORDS_FOR_RATE and rate > county.reject_threshold:
            warehouse.refuse_sync(
                con, county, landed.sync_id, landed.mode, staged, validated, manifest, started_at
            )
            raise RejectThresholdExceeded(
                county.label, rate, county.reject_threshold, reasons, rejected=rejected, total=total
            )
        result = warehouse.merge_county(
            con,
            county,
            landed.sync_id,
            landed.mode,
            staged,
            validated,
            manifest,
            started_at,
            safety_share=safety_share,
        )
        after = warehouse.watermarks(con, county.code)
        spike = notify.reject_spike(con, county, landed.sync_id, rejected, total)
    warehouse.write_state(county, after)
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
        source_lag_seconds=_source_lag(staged.frames),
    )


def _source_lag(frames: dict[str, pl.DataFrame]) -> float | None:
    """Seconds between the newest source change we hold and now (None for workbooks)."""
    newest = [
        f["source_updated_at"].max()
        for f in frames.values()
        if f.height and "source_updated_at" in f.columns
    ]
    newest = [n for n in newest if n is not None]
    if not newest:
        return None
    return (datetime.now(UTC) - max(newest)).total_seconds()
