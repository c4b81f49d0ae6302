"""The marts' delta (``warehouse.mart_delta``) on the hand-counted city of
test_warehouse_marts: a build after a sync that changed one person and moved the data's date
rewrites only that person and equals a full build; every reason to rebuild whole does so."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime

import pytest

import warehouse
from tests.marts_definition import assert_marts_equal_a_full_build
from tests.unit.test_warehouse_fixtures import LUONAN, merge, person
from tests.unit.test_warehouse_marts import ID_B1, B, city  # noqa: F401  (city: the fixture)


def _copy(city, tmp_path):  # noqa: F811
    db = tmp_path / "hub.duckdb"
    shutil.copyfile(city[0], db)
    return db


def _build(db) -> tuple:
    with warehouse.connect(db) as con:
        warehouse.rebuild_marts(con)
        return con.execute(
            "SELECT mode, reason, changed_persons, reference_moved FROM marts_state.build"
        ).fetchone()


def test_a_build_with_nothing_new_is_a_delta_of_nothing(city, tmp_path):  # noqa: F811
    db = _copy(city, tmp_path)
    assert _build(db) == ("delta", "the previous build plus the syncs since", 0, False)
    assert_marts_equal_a_full_build(db, tmp_path)


def test_a_changed_person_and_a_moved_date_rewrite_that_person_only(city, tmp_path):  # noqa: F811
    db = _copy(city, tmp_path)
    with warehouse.connect(db) as con:  # B01 corrected (disabled -> chronic) three days later
        merge(con, LUONAN, "l3", day="2016-07-04", mode="incremental",
              persons=[person(B + "01", ID_B1, birth_date=date(1976, 1, 1), health=["chronic"],
                              name="李秀兰", source_updated_at=datetime(2016, 7, 4, 4, tzinfo=UTC))])  # fmt: skip
    # nobody has a birthday between 07-01 and 07-04: the date moves, no age does
    assert _build(db) == ("delta", "the previous build plus the syncs since", 1, True)
    with warehouse.connect(db, read_only=True) as con:
        assert con.execute("SELECT DISTINCT age_reference_date FROM mart.person").fetchall() == [
            (date(2016, 7, 4),)
        ]
        assert con.execute(
            "SELECT group_code FROM mart.special_groups WHERE household_no = ? ORDER BY 1", [B]
        ).fetchall() == [("chronic_illness",)]
    assert_marts_equal_a_full_build(db, tmp_path)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (
            "UPDATE marts_state.build SET definition_digest = 'older files'",
            "files or the migrations",
        ),
        ("INSERT INTO marts_state.sync_run VALUES ('a sync restored away')", "no longer listed"),
        ("DROP TABLE marts_state.sync_run", "no record"),
        ("DROP TABLE mart.special_groups", "no mart.special_groups"),
    ],
)
def test_a_build_without_a_usable_record_is_full(city, tmp_path, spoil, reason):  # noqa: F811
    db = _copy(city, tmp_path)
    with warehouse.connect(db) as con:
        con.execute(spoil)
    mode, why, *_ = _build(db)
    assert mode == "full" and reason in why, why
    assert_marts_equal_a_full_build(db, tmp_path)


def test_a_delta_that_leaves_a_wrong_row_count_is_rebuilt_whole(city, tmp_path, caplog):  # noqa: F811
    db = _copy(city, tmp_path)
    with warehouse.connect(db) as con:  # a row the record cannot know is missing
        con.execute(
            "DELETE FROM mart.person WHERE person_key = (SELECT min(person_key) FROM mart.person)"
        )
    with caplog.at_level("WARNING"):
        mode, why, *_ = _build(db)
    assert (mode, why) == ("full", "mart.person: the delta's row count was wrong")
    assert "rebuilt whole" in caplog.text
    assert_marts_equal_a_full_build(db, tmp_path)


def test_a_moved_date_in_a_large_table_rebuilds_whole(city, tmp_path, monkeypatch):  # noqa: F811
    """Above REFERENCE_UPDATE_ROWS persons the date's UPDATE would hold too much until COMMIT."""
    import warehouse.mart_delta as mart_delta

    db = _copy(city, tmp_path)
    with warehouse.connect(db) as con:
        merge(con, LUONAN, "l3", day="2016-07-04", mode="incremental",
              persons=[person(B + "01", ID_B1, birth_date=date(1976, 1, 1), health=["chronic"],
                              name="李秀兰", source_updated_at=datetime(2016, 7, 4, 4, tzinfo=UTC))])  # fmt: skip
    monkeypatch.setattr(mart_delta, "REFERENCE_UPDATE_ROWS", 3)  # the city has 5 persons
    mode, why, *_ = _build(db)
    assert (mode, why) == ("full", "the reference date moved in a large table")
    assert_marts_equal_a_full_build(db, tmp_path)
