"""The quarantine's rejected records are read from the staged files (polars) BEFORE the merge's
transaction opens, never while DuckDB holds the transaction's buffers (issue 13: at scale 10
those polars frames on top of the transaction were the merge step's peak RSS, 40-50 MB above
the rest of it; bench/profiles/merge.md, "The quarantine before the transaction"). A real
landing from the simulator on loopback, merged by the real merge; no timing."""

from __future__ import annotations

from contextlib import contextmanager

import duckdb

from base import paths
from pipelines import staged as staged_module
from pipelines import sync
from seeds.registry import county
from tests.conftest import serving
from warehouse import merge as merge_module
from warehouse import run_log


def test_rejected_records_are_read_before_the_transaction(hub_home, monkeypatch):
    with serving(monkeypatch, defect_rate=0.05):
        landed = sync.land(county("luonan"), "full")

    open_transactions: list[bool] = []
    scans_in_transaction: list[str] = []
    transaction = merge_module.transaction

    @contextmanager
    def watched(*args, **kwargs):
        with transaction(*args, **kwargs) as opened:
            open_transactions.append(True)
            try:
                yield opened
            finally:
                open_transactions.pop()

    scan = staged_module.Staged.scan

    def watched_scan(self, entity, columns=None):
        if open_transactions:
            scans_in_transaction.append(entity)
        return scan(self, entity, columns)

    monkeypatch.setattr(merge_module, "transaction", watched)
    monkeypatch.setattr(staged_module.Staged, "scan", watched_scan)
    monkeypatch.setattr(run_log, "QUARANTINE_ROWS", 40)  # several pieces at the test's scale
    merged = sync.merge(county("luonan"), landed)

    assert scans_in_transaction == []  # no staged file read by polars inside the transaction
    rejected = sum(c["rejected"] for c in merged.counts.values())
    assert rejected > 0  # the landing had rejects to quarantine
    con = duckdb.connect(str(paths.live_db()), read_only=True)
    try:
        quarantined, keys = con.execute(
            "SELECT count(*), count(DISTINCT (entity, source_key)) FROM ops.quarantine"
        ).fetchone()
        rejects = con.execute(
            "SELECT count(DISTINCT (entity, source_key)) FROM ops.reject"
        ).fetchone()[0]
    finally:
        con.close()
    assert rejects > 2 * run_log.QUARANTINE_ROWS  # in several pieces
    assert quarantined >= keys == rejects  # every rejected record kept
