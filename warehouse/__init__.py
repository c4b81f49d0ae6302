"""The warehouse package: DuckDB access for the hub, with its SQL beside it.

DuckDB is single-writer (DESIGN decision 4): every function here that writes takes a connection
opened with :func:`connect` by a step in the ``duckdb_warehouse`` pool, and :func:`connect`
closes it in ``finally``. Analysts never open the live file; :func:`publish_snapshot` copies
``core``, ``ops`` and ``mart`` into a read-only snapshot and swaps it in atomically.

The SQL ships in this package: ``migrations/NNN_*.sql`` (DDL, applied once each, in order),
``sql/merge/*.sql`` (named statements, ``-- name: <id>``, whose ``{placeholders}`` are
identifiers and column lists generated in ``warehouse.entities`` from ``schemas.columns``; values are always
``$parameters``) and ``sql/marts/NN_*.sql`` (run in order by :func:`rebuild_marts`).

``person_key`` is HMAC-SHA256 of the ID number keyed with ``HUB_PII_KEY`` (hex; checked by
``base.settings.pii_key``: the production profile refuses a missing, short or development
key; the demo profile falls back to the published development key).

The live file records the profile that created it (``ops.hub_profile``); :func:`connect` refuses
to open it read-write from the other profile, so simulated people never reach a real warehouse.

Modules, bottom up: ``statements`` (SQL files and named statements), ``keys`` (the keys the
migrations declare, checked before COMMIT) and ``key_rebuild`` (migration 010), ``transaction``
(the one BEGIN/COMMIT/ROLLBACK), ``lock``, ``region_seed``, ``entities`` (merge identifiers), ``pii``
(person_key), ``batch``, ``run_log`` (ops.sync_run, failure queue, rejects/findings,
watermarks), ``state`` (the state file), ``connection`` (connect, migrate, profile), ``merge``,
``duckdb_bounds`` (DuckDB's memory and threads in the merge and the city step), ``marts``,
``snapshots``, ``snapshot_delta`` and ``publish`` (the analyst and PII snapshots); ``lake`` is the
DuckLake backend (``HUB_WAREHOUSE_BACKEND=ducklake``: :func:`connect` then opens the lake;
docs/engineering/scale-out.md). The names below are the
package's public face: ``import warehouse`` and call ``warehouse.connect(...)`` and so on.
"""

from schemas.entities import CHILD_ENTITIES, HISTORY_ENTITIES, ISSUE_COLUMNS
from warehouse.connection import (
    ProfileMismatch,
    check_profile,
    connect,
    has_table,
    migrate,
    quiet,
    recorded_profile,
    wal_path,
)
from warehouse.entities import merge_entities
from warehouse.lake.locks import county_lock
from warehouse.marts import rebuild_marts
from warehouse.merge import DEFAULT_SAFETY_SHARE, MergeResult, merge_county
from warehouse.pandas_probe import skip_pandas_probe
from warehouse.pii import person_key, pii_key
from warehouse.publish import (
    copy_live_consistently,
    publish_snapshot,
    publish_snapshots,
    remove_publish_leftovers,
)
from warehouse.run_log import (
    latest_reject_counts,
    latest_reject_rate,
    queue_failure,
    record_failure,
    record_queued_failures,
    refuse_sync,
    reject_counts,
    reject_rate,
    top_reasons,
    watermarks,
)
from warehouse.state import read_state, state_path, write_state
from warehouse.statements import MARTS_DIR, MERGE_DIR, MIGRATIONS_DIR
from warehouse.transaction import rollback, transaction

skip_pandas_probe()  # DuckDB's client looks for pandas at every parametrised statement

__all__ = [
    "CHILD_ENTITIES",
    "DEFAULT_SAFETY_SHARE",
    "HISTORY_ENTITIES",
    "ISSUE_COLUMNS",
    "MARTS_DIR",
    "MERGE_DIR",
    "MIGRATIONS_DIR",
    "MergeResult",
    "ProfileMismatch",
    "check_profile",
    "connect",
    "copy_live_consistently",
    "county_lock",
    "has_table",
    "latest_reject_counts",
    "latest_reject_rate",
    "merge_county",
    "merge_entities",
    "migrate",
    "person_key",
    "pii_key",
    "publish_snapshot",
    "publish_snapshots",
    "queue_failure",
    "quiet",
    "read_state",
    "rebuild_marts",
    "record_failure",
    "record_queued_failures",
    "recorded_profile",
    "refuse_sync",
    "reject_counts",
    "reject_rate",
    "remove_publish_leftovers",
    "rollback",
    "state_path",
    "top_reasons",
    "transaction",
    "wal_path",
    "watermarks",
    "write_state",
]
