"""The touch of unchanged rows: ``last_synced_at`` / ``sync_run_id`` of the rows a sync found the
same as core, written after the merge's COMMIT in bounded pieces.

The contract keeps on every core row the last sync that saw it, so a full re-read writes those
two columns into nearly every row of the county. DuckDB keeps the new values of the rows a
transaction UPDATEs in memory until COMMIT (they do not spill): inside the county's one merge
transaction that grew with the county and ran out of the merge's 128 MB at 洛南 scale 10
(bench/profiles/merge.md). So:

1. inside the merge's transaction, :func:`record_same_rows` writes the keys of the same rows
   to ``ops.touch_pending_key`` (an INSERT: written out as it grows) and one row per entity to
   ``ops.touch_pending``, committed with everything else or rolled back with it: a crash after
   the COMMIT loses nothing;
2. after the COMMIT, :func:`finish_touches` touches them piece by piece (``piece`` = hash of
   the key modulo the number of pieces, about ``touch_rows()`` rows each), each piece in its
   own transaction that also deletes the piece's keys, the last one the ``ops.touch_pending``
   row;
3. :func:`finish_touches` runs first in every merge of the county too (``merge_county``), so a
   touch that an interrupted run left pending is done before any later sync of the county
   writes a row: the touch never overwrites what a later sync wrote (a key live under one
   county is never taken over by another county's merge, ``20_claims.sql``, and the touch only
   writes that county's rows).

A small touch (at most :func:`small_touch_rows` rows of an entity: a one-day incremental's few
dozen) is made inside the merge's transaction instead, by the same two UPDATEs reading the diff
(``touch_same``, ``touch_same_platform``): what DuckDB holds of it until the COMMIT is a
fiftieth of one piece's, and the pending rows, their keys and a transaction per entity after
the COMMIT cost a small merge more than the touch itself (bench/profiles/merge.md, "The fixed
cost of a small merge"). The rows end the same: ``last_synced_at`` = the merge's ``now``,
``sync_run_id`` = its run, ``source_platform`` = its platform.

``ops.sync_run`` says ``succeeded`` from the COMMIT on: its counts are true (the rows are
unchanged); what may lag is only those rows' ``last_synced_at`` / ``sync_run_id``, and
``ops.touch_pending`` says so while it does (logged as a warning when a merge finds one left).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from base import settings
from base.errors import HubError
from warehouse.batch import Batch
from warehouse.duckdb_bounds import MERGE, retry_out_of_memory
from warehouse.entities import MergeEntity
from warehouse.keys import NO_KEYED_TABLE
from warehouse.lake.retry import retry_conflicts
from warehouse.statements import q, run
from warehouse.transaction import transaction

log = logging.getLogger(__name__)

#: Rows per touch transaction (``HUB_MERGE_TOUCH_ROWS``). What DuckDB holds of a piece until its
#: COMMIT does not grow with the county: at 250,000 person rows ~14 MB of new values
#: (``ALLOCATOR``) and ~62 MB of undo (``TRANSACTION``) of the merge's 128 MB. Smaller pieces
#: bought little: at 100,000 the undo stayed at ~62 MB and the touch cost 7.9 CPU-s instead of
#: 4.1-4.9 at 洛南 scale 10, each piece scanning the county's core rows once
#: (bench/profiles/merge.md).
TOUCH_ROWS = 250_000


class TouchPending(HubError):
    """The merge committed, but the touch of its unchanged rows did not finish: it stays in
    ``ops.touch_pending`` and the county's next merge finishes it first."""


def touch_rows() -> int:
    return settings.merge_touch_rows(TOUCH_ROWS)


#: The largest touch of one entity made inside the merge's transaction, as a share of a piece.
SMALL_TOUCH_SHARE = 50


def small_touch_rows() -> int:
    """Same rows of one entity touched inside the merge's transaction (``touch_same``) rather
    than recorded for pieces after the COMMIT: a fiftieth of a piece (5,000 rows by default; 0,
    none, when pieces are as small as the fault tests make them)."""
    return touch_rows() // SMALL_TOUCH_SHARE


def _key_identifiers(spec: MergeEntity) -> dict[str, str]:
    """``{key_1}``, ``{key_2}`` (the entity's key columns in the diff ``s``; NULL for a missing
    second one) and ``{key_join_cp}`` (core ``c`` against a pending key ``p``)."""
    if len(spec.keys) > 2:
        raise ValueError(f"{spec.name}: ops.touch_pending_key holds keys of at most 2 columns")
    keys = [f"s.{q(k)}" for k in spec.keys] + ["NULL::VARCHAR"]
    join = " AND ".join(f"c.{q(k)} = p.key_{n}" for n, k in enumerate(spec.keys, start=1))
    return {"key_1": keys[0], "key_2": keys[1], "key_join_cp": join}


def record_same_rows(batch: Batch, spec: MergeEntity) -> int:
    """Inside the merge's transaction: record the rows of ``spec``'s diff found the same as core
    for the touch after the COMMIT, or touch them now when they are few
    (:func:`small_touch_rows`). Returns how many (0: nothing to touch)."""
    ids = {**spec.identifiers(), **_key_identifiers(spec)}
    (rows,) = batch.run("45_touch.sql", "same_rows", **ids).fetchone()
    if not rows:
        return 0
    if rows <= small_touch_rows():
        batch.run("45_touch.sql", "touch_same", **ids)
        batch.run("45_touch.sql", "touch_same_platform", **ids)
        return rows
    params = {**batch.params, "entity": spec.name, "rows": rows, "pieces": -(-rows // touch_rows())}
    run(batch.con, "45_touch.sql", "record_keys", params, **ids)
    run(batch.con, "45_touch.sql", "record_pending", params)
    batch.touch_after_commit = True
    return rows


@dataclass(frozen=True)
class Pending:
    """One ``ops.touch_pending`` row: a sync's unchanged rows of one entity still to touch."""

    sync_run_id: str
    entity: str
    synced_at: datetime
    source_platform: str
    row_count: int
    pieces: int
    recorded_at: datetime


def pending(con: duckdb.DuckDBPyConnection, county_code: str) -> list[Pending]:
    """The county's pending touches, oldest first."""
    rows = run(con, "45_touch.sql", "pending_of_county", {"county": county_code}).fetchall()
    return [Pending(*row) for row in rows]


def finish_touches(
    con: duckdb.DuckDBPyConnection,
    county: Any,
    entities: dict[str, MergeEntity],
    *,
    left_by_earlier: bool = False,
) -> int:
    """Touch every pending row of ``county``, oldest sync first, piece by piece. Returns the rows
    touched. ``left_by_earlier``: called before a merge, so whatever is pending was left by a
    run interrupted after its COMMIT (logged as a warning). A failure raises
    :class:`TouchPending`; what is not done stays recorded."""
    todo = pending(con, county.code)
    touched = 0
    for item in todo:
        if left_by_earlier:
            log.warning(
                "%s: sync %s committed but the touch of %d unchanged %s rows (last_synced_at, "
                "sync_run_id) did not finish (interrupted after its commit?); finishing it "
                "before this merge",
                _label(county),
                item.sync_run_id,
                item.row_count,
                item.entity,
            )
        try:
            touched += _finish_one(con, county, entities[item.entity], item)
        except (duckdb.Error, OSError) as exc:
            raise TouchPending(
                f"{_label(county)}: sync {item.sync_run_id} committed, but the touch of its "
                f"unchanged {item.entity} rows (last_synced_at, sync_run_id) failed: {exc}. It "
                "stays in ops.touch_pending; the county's next merge finishes it first"
            ) from exc
    return touched


def _finish_one(
    con: duckdb.DuckDBPyConnection, county: Any, spec: MergeEntity, item: Pending
) -> int:
    ids = _key_identifiers(spec) | {"entity": spec.name}
    params = {
        "run": item.sync_run_id,
        "entity": item.entity,
        "county": county.code,
        "synced_at": item.synced_at,
        "platform": item.source_platform,
    }
    # one piece: its keys are all in piece 0 until the transaction that touches them forgets
    # them with the pending row itself, so there is nothing to look up
    pieces = (
        [0]
        if item.pieces == 1
        else [p for (p,) in run(con, "45_touch.sql", "pending_pieces", params).fetchall()]
    )
    touched = 0
    for number, piece in enumerate(pieces, start=1):
        last = number == len(pieces)

        def one_piece(piece: int = piece, last: bool = last) -> int:
            # the UPDATEs write no key column and insert no row: no key to check before COMMIT
            with transaction(con, NO_KEYED_TABLE):
                args = {**params, "piece": piece}
                (n,) = run(con, "45_touch.sql", "touch_piece", args, **ids).fetchone()
                run(con, "45_touch.sql", "touch_platform_piece", args, **ids)
                run(con, "45_touch.sql", "forget_piece", args)
                if last:
                    run(con, "45_touch.sql", "forget_pending", args)
                return n

        touched += retry_conflicts(
            lambda: retry_out_of_memory(con, MERGE, one_piece), f"touch of {_label(county)}"
        )
    if not pieces:  # keys all gone (cannot happen by construction): the record goes too
        with transaction(con, NO_KEYED_TABLE):
            run(con, "45_touch.sql", "forget_pending", params)
    return touched


def _label(county: Any) -> str:
    return getattr(county, "label", county.code)
