"""The person_keys two person_nos share (``60_conflicts.sql``, ``shared_person_keys``), found in
pieces whose size does not grow with the city.

The aggregate reads every live person of the warehouse besides this sync's accepted ones: its
groups grow with the city, not the county. At scale 10 a county merged after another (商南
after 丹凤 in ``bench/sync_city.py``) ran out of the merge transaction's 96 MB in it, and the
whole merge was redone at 1 GB (bench/profiles/merge.md, "商南 and 柞水 at scale 10"). Split by
the key's hash, each piece holds the groups of about ``SHARED_KEY_ROWS`` rows; every row of a
hash is in the same piece, so the pieces together find exactly the hashes one statement found.
"""

from __future__ import annotations

from base import settings
from warehouse.batch import Batch
from warehouse.duckdb_bounds import wide_statements

#: Rows (accepted persons plus every person in core) per piece of ``shared_person_keys``.
SHARED_KEY_ROWS = 1_000_000


def piece_rows() -> int:
    """``HUB_MERGE_SHARED_KEY_ROWS`` (tests make it small to see pieces) or ``SHARED_KEY_ROWS``."""
    return settings.merge_shared_key_rows(SHARED_KEY_ROWS)


def shared_person_keys(batch: Batch) -> int:
    """Fill ``_shared_person_key`` piece by piece; returns the number of pieces."""
    batch.temp("_shared_person_key")
    batch.run("60_conflicts.sql", "shared_person_keys_table")
    (rows,) = batch.run("60_conflicts.sql", "shared_person_rows").fetchone()
    pieces = max(1, -(-int(rows) // piece_rows()))
    with wide_statements(batch.con):
        for piece in range(pieces):  # whole numbers in the text, not parameters (see the SQL)
            batch.run(
                "60_conflicts.sql", "shared_person_keys", pieces=str(pieces), piece=str(piece)
            )
    return pieces
