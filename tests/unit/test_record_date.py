"""Records are judged by their own date (docs/data-quality.md, "Records judged by their own
date"): ages come from the record's source_updated_at in Beijing time, else the sync's as-of
date (a workbook's export date), never from the day the hub runs."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.unit.test_schemas_validate import H1, H2, clean_rows, find, issues, run

KID = H1 + "03"  # born 2008-09-01, primary school (band 5-15)


def _kid_at(when: datetime | None, **context):
    rows = clean_rows()
    for r in rows["person"]:
        r["source_updated_at"] = when
    for r in rows["household"]:
        r["source_updated_at"] = when
    return issues(run(rows, **context))


SCHOOL = ("person", KID, "school_age_implausible", "finding")


def test_school_age_uses_the_records_date_not_today():
    # updated in 2016: aged 7, primary is right — whatever year the hub runs in
    assert SCHOOL not in _kid_at(datetime(2016, 7, 1, 2, 0, tzinfo=UTC))
    # the same record last updated in 2026: aged 17, primary is implausible
    assert SCHOOL in _kid_at(datetime(2026, 7, 1, 2, 0, tzinfo=UTC))


def test_the_birthday_counts_in_beijing_time():
    # 2024-08-31 16:30 UTC is 2024-09-01 00:30 in Beijing: the kid turns 16 that day
    assert SCHOOL not in _kid_at(datetime(2024, 8, 31, 15, 59, tzinfo=UTC))  # still 15
    assert SCHOOL in _kid_at(datetime(2024, 8, 31, 16, 30, tzinfo=UTC))


def test_without_a_record_date_the_sync_as_of_date_is_used():
    assert SCHOOL not in _kid_at(None, as_of=date(2016, 7, 1))
    assert SCHOOL in _kid_at(None, as_of=date(2030, 1, 1))


def test_able_bodied_age_of_a_tekun_household_uses_the_households_date():
    rows = clean_rows()
    # H2 (特困) gets a healthy member with ordinary labour born 1957-07-02
    head = find(rows, "person", H2 + "01")
    member = dict(head, person_no=H2 + "02", relation_to_head="son", sex="male",
                  birth_date=date(1957, 7, 2), health=["healthy"], labor_skill="ordinary",
                  id_number=None)  # fmt: skip
    rows["person"].append(member)
    find(rows, "household", H2)["member_count"] = 2
    tekun = ("household", H2, "tekun_able_bodied_member", "finding")

    def at(when):
        for r in rows["household"] + rows["person"]:
            r["source_updated_at"] = when
        return issues(run(rows))

    assert tekun in at(datetime(2016, 7, 1, 2, 0, tzinfo=UTC))  # aged 58
    assert tekun not in at(datetime(2017, 7, 3, 2, 0, tzinfo=UTC))  # aged 60
