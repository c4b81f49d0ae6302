"""The touch of unchanged rows after the merge's COMMIT (warehouse/touch.py), on both backends:
after an unchanged full re-read every row of the county names that sync and its time, exactly
what the touch inside the transaction wrote before, and nothing else moved."""

from __future__ import annotations

import pytest

from pipelines import sync
from seeds.registry import county
from tests.e2e.helpers import live

pytestmark = pytest.mark.e2e
LUONAN = county("luonan")


def _core_tables(con) -> list[str]:
    return [
        t
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'core' "
            "AND database_name = current_database() ORDER BY 1"
        ).fetchall()
    ]


def _all_but_stamps(con) -> dict[str, list]:
    """Every core row of the county except last_synced_at / sync_run_id of the entity tables."""
    out = {}
    for table in _core_tables(con):
        stamps = "" if table.endswith("_history") else " EXCLUDE (last_synced_at, sync_run_id)"
        out[table] = con.execute(
            f"SELECT *{stamps} FROM core.{table} WHERE county_code = ? ORDER BY ALL",
            [LUONAN.code],
        ).fetchall()
    return out


def test_an_unchanged_re_read_stamps_every_row_in_pieces(simulator, backend, monkeypatch):
    monkeypatch.setenv("HUB_MERGE_TOUCH_ROWS", "40")  # many pieces at the test's scale
    first = sync.merge(LUONAN, sync.land(LUONAN, "full"))
    with live() as con:
        before = _all_but_stamps(con)
        (first_stamp,) = con.execute(
            "SELECT max(last_synced_at) FROM core.person WHERE county_code = ?", [LUONAN.code]
        ).fetchone()

    again = sync.merge(LUONAN, sync.land(LUONAN, "full"))
    unchanged = {e: c["unchanged"] for e, c in again.counts.items()}
    assert unchanged["person"] > 40 * 3, unchanged  # the persons' touch took several pieces
    assert all(c["inserted"] == c["updated"] == c["deleted"] == 0 for c in again.counts.values())

    with live() as con:
        assert _all_but_stamps(con) == before
        stamps = set()
        for entity, n in unchanged.items():
            rows = con.execute(
                f"SELECT sync_run_id, last_synced_at, count(*) FROM core.{entity} "
                "WHERE county_code = ? AND deleted_at IS NULL GROUP BY 1, 2",
                [LUONAN.code],
            ).fetchall()
            if n:
                assert len(rows) == 1 and rows[0][0] == again.sync_run_id, (entity, rows)
                assert rows[0][2] == n, (entity, rows, n)
                stamps.add(rows[0][1])
        assert len(stamps) == 1 and stamps.pop() > first_stamp  # one time: the merge's
        for table in ("ops.touch_pending", "ops.touch_pending_key"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert first.sync_run_id != again.sync_run_id
