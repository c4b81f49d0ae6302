"""The merge's COMMIT does not checkpoint the DuckDB file; the checkpoint runs after the
transaction, once the merge's temp tables are dropped (issue 13: at scale 10 DuckDB's checkpoint
at the COMMIT, with the transaction's temp tables filling its buffer pool, was the peak of the
counties merged after others; bench/profiles/merge.md, "The checkpoint after the transaction").

A real landing from the simulator on loopback, merged by the real merge; no timing. DuckDB
checkpoints at a COMMIT whose WAL passes ``checkpoint_threshold``: the test sets it to 1 KB, so
every COMMIT of the merge would checkpoint as a large county's does at scale 10."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb

from base import paths
from pipelines import staged as staged_io
from pipelines import sync
from seeds.registry import county
from tests.conftest import serving
from warehouse import checkpoint as checkpoint_module
from warehouse import merge as merge_module
from warehouse import staged_rows
from warehouse.connection import wal_path
from warehouse.duckdb_bounds import CHECKPOINT_MEMORY_LIMIT, SMALL_CHECKPOINT_MEMORY_LIMIT

#: The merge's own temp tables (``Batch.temp``) that hold rows: staged, diffed, gone.
MERGE_TEMP_PREFIXES = ("_stage_", "_gone_", "_merge_reject", "_quarantine")


def _wal_bytes() -> int:
    wal = wal_path(paths.live_db())
    return wal.stat().st_size if wal.exists() else 0


def _temp_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    return [name for (name,) in rows if name.startswith(MERGE_TEMP_PREFIXES)]


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _threshold(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]


def test_the_merge_checkpoints_after_its_transaction_not_at_its_commit(hub_home, monkeypatch):
    with serving(monkeypatch, defect_rate=0.05):
        landed = sync.land(county("luonan"), "full")

    limit_memory = staged_rows.limit_memory
    set_before: list[str] = []

    def small_threshold(con):
        limit_memory(con)
        con.execute("SET checkpoint_threshold = '1KB'")  # any COMMIT would checkpoint
        set_before.append(_threshold(con))

    at_commit: list[tuple[int, list[str]]] = []
    transaction = merge_module.transaction

    @contextmanager
    def watched(con, *args, **kwargs):
        with transaction(con, *args, **kwargs) as opened:
            yield opened
        at_commit.append((_wal_bytes(), _temp_tables(con)))  # just after the COMMIT

    at_checkpoint: list[dict] = []
    checkpoint = checkpoint_module.checkpoint

    def watched_checkpoint(con, limit, memory_limit):
        seen = {
            "temp tables": _temp_tables(con),
            "threshold": _threshold(con),
            "wal before": _wal_bytes(),
            "limit before": _memory_limit(con),
        }
        checkpoint(con, limit, memory_limit)
        seen["wal after"] = _wal_bytes()
        seen["limit after"] = _memory_limit(con)
        at_checkpoint.append(seen)

    monkeypatch.setattr(staged_rows, "limit_memory", small_threshold)
    monkeypatch.setattr(merge_module, "transaction", watched)
    monkeypatch.setattr(checkpoint_module, "checkpoint", watched_checkpoint)
    merged = sync.merge(county("luonan"), landed)

    assert merged.counts["person"]["inserted"] > 0
    assert len(at_commit) == 1  # one merge transaction
    wal, temps = at_commit[0]
    assert temps, "the merge's temp tables are there at its COMMIT"
    assert wal > 0, "the COMMIT checkpointed: the WAL was emptied while the temp tables lived"
    assert len(at_checkpoint) == 1
    seen = at_checkpoint[0]
    assert seen["temp tables"] == []  # dropped before the checkpoint
    assert seen["wal before"] > 0 and seen["wal after"] == 0  # the merge, checkpointed here
    assert seen["threshold"] == set_before[0]  # the connection's own setting is back
    assert seen["limit after"] == seen["limit before"]  # the checkpoint's own limit, then back


def test_a_small_merge_checkpoints_with_more_memory_than_a_large_one(hub_home, monkeypatch):
    """A merge that wrote at most ``SMALL_MERGE_ROWS`` rows checkpoints at
    ``SMALL_CHECKPOINT_MEMORY_LIMIT`` (at 64 MB it evicted blocks to the temporary file to
    rewrite a few columns); a larger one at ``CHECKPOINT_MEMORY_LIMIT``, which its checkpoint
    fills. Either way the WAL is empty after it and the merge's limit is back."""
    checkpoint = checkpoint_module.checkpoint
    seen: list[tuple[str, int, str, str]] = []

    def watched_checkpoint(con, limit, memory_limit):
        before = _memory_limit(con)
        checkpoint(con, limit, memory_limit)
        seen.append((memory_limit, _wal_bytes(), before, _memory_limit(con)))

    monkeypatch.setattr(checkpoint_module, "checkpoint", watched_checkpoint)
    with serving(monkeypatch, defect_rate=0.05) as world:
        first = sync.land(county("luonan"), "full")
        # a threshold between the two: half the first load's staged rows (~95 % are written)
        staged = staged_io.open_verified(Path(first.staged_path), "luonan")
        threshold = sum(staged.height(e) or 0 for e in staged.entities()) // 2
        monkeypatch.setattr(merge_module, "SMALL_MERGE_ROWS", threshold)
        loaded = sync.merge(county("luonan"), first)
        world.advance(days=1)
        incremental = sync.merge(county("luonan"), sync.land(county("luonan"), "incremental"))
    assert incremental.mode == "incremental"
    assert _written(loaded) > threshold >= _written(incremental) > 0

    assert [limit for limit, *_ in seen] == [CHECKPOINT_MEMORY_LIMIT, SMALL_CHECKPOINT_MEMORY_LIMIT]
    assert all(wal == 0 for _, wal, _, _ in seen)  # checkpointed
    assert all(before == after for *_, before, after in seen)  # the merge's limit is back


def _written(merged: sync.Merged) -> int:
    columns = ("inserted", "updated", "deleted", "unchanged")
    return sum(counts[c] for counts in merged.counts.values() for c in columns)
