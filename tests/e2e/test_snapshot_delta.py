"""The analyst snapshot published as a row-level delta of the previous one
(``warehouse.snapshot_delta``) holds exactly the rows a full rebuild would, and a delta is only
made from the file the last publish wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

import warehouse
import warehouse.snapshot_delta as snapshot_delta
import warehouse.snapshots as snapshots
from base import paths, settings
from pipelines.defs.city import SNAPSHOT
from seeds.registry import county
from tests.e2e.helpers import sync_city, sync_county
from tests.pii_scan import pii_hits

pytestmark = pytest.mark.e2e
LUONAN, DANFENG = county("luonan"), county("danfeng")


def _publish_metadata(result) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == SNAPSHOT]
    meta = event.materialization.metadata
    return {
        "mode": meta["analyst_publish"].value,
        "reason": meta["analyst_publish_reason"].value,
        **meta["analyst_delta"].value,
    }


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple]:
    return con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2",
        [database],
    ).fetchall()


def _catalog(con: duckdb.DuckDBPyConnection, database: str) -> list[tuple]:
    """Every column of every table with its type and comment, and the tables' comments."""
    return con.execute(
        "SELECT schema_name, table_name, column_name, data_type, comment FROM duckdb_columns() "
        "WHERE database_name = ? UNION ALL SELECT schema_name, table_name, NULL, NULL, comment "
        "FROM duckdb_tables() WHERE database_name = ? ORDER BY ALL",
        [database, database],
    ).fetchall()


def assert_same_rows(published: Path, rebuilt: Path) -> None:
    """Same tables, columns, types and comments, and row for row the same rows (``EXCEPT ALL``
    both ways, duplicates counted) in every table."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        con.execute(f"ATTACH '{rebuilt}' AS rebuilt (READ_ONLY)")
        this = con.execute("SELECT current_database()").fetchone()[0]
        tables = _tables(con, this)
        assert tables == _tables(con, "rebuilt")
        assert _catalog(con, this) == _catalog(con, "rebuilt")
        for schema, table in tables:
            name = f'"{schema}"."{table}"'
            for a, b in ((name, f"rebuilt.{name}"), (f"rebuilt.{name}", name)):
                (extra,) = con.execute(
                    f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})"
                ).fetchone()
                assert extra == 0, f"{schema}.{table}: {extra} rows of {a} not in {b}"
    finally:
        con.close()


def assert_published_is_a_rebuild(tmp_path: Path) -> None:
    """The analyst file a delta published is row for row what a full rebuild from the live file
    writes now, owner-only, and holds no PII value of the live file."""
    rebuilt = tmp_path / "rebuilt.duckdb"
    snapshots.publish_analyst_snapshot(paths.live_db(), rebuilt)
    assert_same_rows(paths.snapshot_db(), rebuilt)
    assert paths.snapshot_db().stat().st_mode & 0o777 == settings.snapshot_mode()
    with duckdb.connect(str(paths.snapshot_db()), read_only=True) as con:
        con.execute(f"ATTACH '{paths.pii_snapshot_db()}' AS pii (READ_ONLY)")
        assert pii_hits(con, "pii", ("core", "ops", "mart")) == []


def _changes_since(runs_before: set[str]) -> dict[str, int]:
    """What the syncs after ``runs_before`` did in the live file: new and changed versions of
    persons and households, and persons soft-deleted."""
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        new_runs = [
            r
            for (r,) in con.execute("SELECT DISTINCT sync_run_id FROM ops.sync_run").fetchall()
            if r not in runs_before
        ]
        kinds = dict(
            con.execute(
                "SELECT change_kind, count(*) FROM (SELECT change_kind, sync_run_id FROM "
                "core.person_history UNION ALL SELECT change_kind, sync_run_id FROM "
                "core.household_history) WHERE list_contains(?, sync_run_id) GROUP BY ALL",
                [new_runs],
            ).fetchall()
        )
        (deleted,) = con.execute(
            "SELECT count(*) FROM core.person WHERE list_contains(?, sync_run_id) "
            "AND deleted_at IS NOT NULL",
            [new_runs],
        ).fetchone()
    return {**kinds, "deleted": deleted}


def test_delta_publish_equals_a_full_rebuild(simulator, hub_home, tmp_path, monkeypatch):
    # this small city's syncs below re-read every row (洛南 in full, 丹凤's whole export): the
    # delta is what is tested here, not the share above which it gives way to a rebuild
    monkeypatch.setattr(snapshot_delta, "REBUILD_SHARE", 2.0)
    for c in (LUONAN, DANFENG):
        assert sync_county(c, mode="full").success
    first = sync_city()
    assert first.success
    assert _publish_metadata(first)["mode"] == "full"
    assert _publish_metadata(first)["reason"] == "no previous analyst snapshot"
    with duckdb.connect(str(paths.live_db()), read_only=True) as con:
        runs_before = {r for (r,) in con.execute("SELECT sync_run_id FROM ops.sync_run").fetchall()}

    simulator.advance(days=60)  # new registrations, changes and 清退 deletions
    assert sync_county(LUONAN).success
    assert sync_county(LUONAN, mode="full").success  # records gone from the listing: deleted
    assert sync_county(DANFENG).success
    changes = _changes_since(runs_before)
    assert changes.get("new", 0) > 0 and changes.get("changed", 0) > 0, changes
    assert changes["deleted"] > 0, changes

    second = sync_city()
    assert second.success
    published = _publish_metadata(second)
    assert published["mode"] == "delta", published
    assert published["sync_runs"] >= 3 and published["rows_deleted"] > 0, published
    assert published["rows_inserted"] >= published["rows_deleted"], published
    assert "core.person" in published["delta_tables"]
    assert "core.person_history" in published["delta_tables"]

    assert_published_is_a_rebuild(tmp_path)


def test_a_delta_starts_only_from_the_file_the_last_publish_wrote(simulator, hub_home, monkeypatch):
    assert sync_county(LUONAN, mode="full").success
    with warehouse.connect() as con:
        warehouse.rebuild_marts(con)
    target = paths.snapshot_db()

    def publish(**kw):
        return warehouse.publish_snapshots(**kw)

    assert publish().reason == "no previous analyst snapshot"
    again = publish()  # nothing merged since: a delta of no rows
    assert (again.mode, again.sync_runs, again.rows_inserted) == ("delta", 0, 0)

    moved = target.with_name("elsewhere.duckdb")  # the same bytes, but not the same file
    shutil.copyfile(target, moved)
    moved.replace(target)
    replaced = publish()
    assert replaced.mode == "full" and "not the file the last publish wrote" in replaced.reason

    forced = publish(delta=False)
    assert (forced.mode, forced.reason) == ("full", "full rebuild requested")

    from warehouse.snapshot_delta import state_path

    state_path(target).unlink()
    assert publish().mode == "full"
    assert publish().mode == "delta"

    with duckdb.connect(str(paths.live_db())) as con:  # a warehouse restored from an older copy
        con.execute("DELETE FROM ops.sync_run WHERE entity = 'person'")
    restored = publish()
    assert restored.mode == "full" and "no longer holds" in restored.reason

    # a full re-read of every row (the nightly full; here the only county): restamping nearly
    # every row costs more than the rebuild, which the outcome says (REBUILD_SHARE)
    assert publish().mode == "delta"
    assert sync_county(LUONAN, mode="full").success
    reread = publish()
    assert reread.mode == "full" and "a full re-read" in reread.reason, reread.reason
    assert publish().mode == "delta"

    # a delta that runs out of the city step's memory (injected: at scale 10 one did) gives way
    # to the rebuild, and says so; the published file is whole
    def out_of_memory(*args, **kwargs):
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block (test)")

    with monkeypatch.context() as patched:
        patched.setattr(snapshot_delta, "_apply", out_of_memory)
        ran_out = publish()
    assert ran_out.mode == "full" and "ran out of the city step's DuckDB memory" in ran_out.reason
    assert publish().mode == "delta"
