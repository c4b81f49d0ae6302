"""The fixed cost of a small merge (issue 13, bench/profiles/merge.md "The fixed cost of a small
merge"): a few same rows are touched inside the merge's transaction instead of in pieces after
its COMMIT, and leave the warehouse exactly as the pieces do; DuckDB's client no longer searches
for pandas at every parametrised statement where pandas is not installed."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime

import duckdb
import pytest

import warehouse
import warehouse.merge
import warehouse.touch
from tests.unit.test_incremental_merge import statements  # noqa: F401  (fixture)
from tests.unit.test_merge_hash_diff import H1, P11, P12, P21, sync_once, world

#: tables stamped when the warehouse is created or seeded (the wall clock, not a merge's)
CREATED = {"ops.schema_migration", "ops.hub_profile", "ops.seed"}
#: the rows of a table the merges wrote (the lake is the live warehouse: its regions seeded)
MERGED = {"core.region": "WHERE source_platform IS DISTINCT FROM 'seed'"}


class Clock(datetime):
    """The merge's clock (``warehouse.merge``: its ``now`` and ``finished_at``), set per sync."""

    at = datetime(2016, 7, 1, 12, tzinfo=UTC)

    @classmethod
    def now(cls, tz=None):
        return cls.at


def everything(path) -> dict[str, list[tuple]]:
    """Every row of every table of core, ops and raw but those stamped at creation."""
    with warehouse.connect(path) as con:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
            "current_database() AND schema_name IN ('core', 'ops', 'raw') ORDER BY ALL"
        ).fetchall()
        state: dict = {
            f"{schema}.{table}": con.execute(
                f"SELECT * FROM {schema}.{table} {MERGED.get(f'{schema}.{table}', '')} ORDER BY ALL"
            ).fetchall()
            for schema, table in tables
            if f"{schema}.{table}" not in CREATED
        }
        runs = con.execute("SELECT person_no, sync_run_id FROM core.person").fetchall()
        state["person runs"] = dict(runs)
        return state


def three_syncs(tmp_path, monkeypatch, request, backend) -> dict[str, list[tuple]]:
    """A first load; a re-read with one household changed and one person gone (deleted by
    absence) beside same rows; a re-read with nothing changed. Every merge on its own clock;
    on the lake, a lake of its own."""
    monkeypatch.setattr(warehouse.merge, "datetime", Clock)
    if backend == "ducklake":  # the warehouse sync_once opens is then the live one: the lake
        catalog = request.getfixturevalue("postgres").database(f"t_small_touch_{tmp_path.name}")
        monkeypatch.setenv("HUB_LAKE_CATALOG", catalog)
        monkeypatch.setenv("HUB_LAKE_DATA_PATH", str(tmp_path / "lake"))
        monkeypatch.setenv("HUB_WAREHOUSE", str(tmp_path / "hub.duckdb"))
    changed = world(**{H1: {"income_per_capita": 9100.0}})
    changed["person"] = [p for p in changed["person"] if p["person_no"] != P12]
    changed["household"][0]["member_count"] = 1
    for day, (run, rows) in enumerate((("r1", world()), ("r2", changed), ("r3", changed)), 1):
        Clock.at = datetime(2016, 7, day, 12, tzinfo=UTC)
        sync_once(tmp_path, run, rows, day=day)
    return everything(tmp_path / "hub.duckdb")


def test_a_small_touch_in_the_transaction_leaves_what_the_pieces_leave(
    tmp_path,
    statements,  # noqa: F811  (the fixture imported above)
    monkeypatch,
    request,
    backend,
):
    in_transaction = three_syncs(tmp_path / "small", monkeypatch, request, backend)
    ran = set(statements)
    assert ("45_touch.sql", "touch_same") in ran
    assert not {("45_touch.sql", "record_keys"), ("45_touch.sql", "touch_piece")} & ran

    statements.clear()
    monkeypatch.setattr(warehouse.touch, "SMALL_TOUCH_SHARE", 10**12)  # never small: pieces
    in_pieces = three_syncs(tmp_path / "pieces", monkeypatch, request, backend)
    ran = set(statements)
    assert {("45_touch.sql", "record_keys"), ("45_touch.sql", "touch_piece")} <= ran
    assert ("45_touch.sql", "touch_same") not in ran

    assert in_transaction == in_pieces
    assert in_transaction["ops.touch_pending"] == in_transaction["ops.touch_pending_key"] == []
    # the touch did write: the unchanged persons carry the last sync that saw them (r3), the
    # deleted one the sync that deleted it (r2)
    runs = in_transaction["person runs"]
    assert runs == {P11: "r3", P12: "r2", P21: "r3"}


def test_the_small_touch_has_a_bound():
    assert warehouse.touch.small_touch_rows() == warehouse.touch.TOUCH_ROWS // 50 == 5_000


def test_pandas_absent_is_not_searched_for_again():
    """pandas is not installed here: after ``import warehouse`` it is marked absent, an import
    fails as it always did, and DuckDB binds parameters as before."""
    assert importlib.util.find_spec("pandas") is None
    assert "pandas" in sys.modules and sys.modules["pandas"] is None
    with pytest.raises(ModuleNotFoundError):
        import pandas  # noqa: F401
    con = duckdb.connect()
    assert con.execute("SELECT $a + 1, $b", {"a": 1, "b": "x"}).fetchone() == (2, "x")


def test_an_installed_pandas_is_left_alone(tmp_path, monkeypatch):
    fake = tmp_path / "pandas"
    fake.mkdir()
    (fake / "__init__.py").write_text("MARK = 'the installed one'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    importlib.invalidate_caches()
    from warehouse.pandas_probe import skip_pandas_probe

    assert skip_pandas_probe() is False
    assert "pandas" not in sys.modules
    assert importlib.import_module("pandas").MARK == "the installed one"
