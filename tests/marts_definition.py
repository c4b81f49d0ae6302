"""mart.person against its definition, written independently of its SQL (00_person.sql), and
mart.reconciliation's duplicates against the records it leaves out: used by the unit marts
tests and the city step's e2e tests on both backends."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

#: THE definition of mart.person's records (00_person.sql's header), written independently of
#: its SQL: per person_key (else the record itself), among live records of live households, the
#: record first seen by the warehouse, ties to the smaller person_no.
KEPT = """
SELECT arg_min(p.person_no, (p.first_seen_at, p.person_no)) AS person_no
FROM {db}core.person AS p
JOIN {db}core.household AS h ON h.household_no = p.household_no AND h.deleted_at IS NULL
WHERE p.deleted_at IS NULL
GROUP BY coalesce(p.person_key, p.person_no)
"""
LIVE = """
SELECT p.person_no, p.person_key, p.household_no, year(p.birth_date) AS birth_year,
       p.relation_to_head, h.poverty_attribute
FROM {db}core.person AS p
JOIN {db}core.household AS h ON h.household_no = p.household_no AND h.deleted_at IS NULL
WHERE p.deleted_at IS NULL
"""


def assert_marts_keep_one_record_per_person(con: duckdb.DuckDBPyConnection, db: str = "") -> int:
    """mart.person holds exactly the kept records (as a multiset of what identifies a record
    there), and mart.reconciliation's duplicates are the other live records, per attribute and
    in total. Returns the number of duplicates."""
    kept = f"SELECT l.* FROM ({LIVE}) AS l WHERE l.person_no IN ({KEPT})".format(db=db)
    cols = "person_key, household_no, birth_year, relation_to_head"
    for a, b in ((f"SELECT {cols} FROM ({kept})", f"SELECT {cols} FROM {db}mart.person"),
                 (f"SELECT {cols} FROM {db}mart.person", f"SELECT {cols} FROM ({kept})")):  # fmt: skip
        (extra,) = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()
        assert extra == 0, f"{extra} records of one side of mart.person's definition missing"
    expected = dict(
        con.execute(
            f"SELECT coalesce(poverty_attribute, 'all'), count(*) FROM ({LIVE}) AS l "
            f"WHERE l.person_no NOT IN ({KEPT}) GROUP BY GROUPING SETS ((), (poverty_attribute))".format(
                db=db
            )
        ).fetchall()
    )
    reported = dict(
        con.execute(
            "SELECT CASE figure_id WHEN 'persons_total' THEN 'all' "
            "ELSE replace(figure_id, 'persons_', '') END, duplicates "
            f"FROM {db}mart.reconciliation WHERE basis LIKE '%mart.person'"
        ).fetchall()
    )
    assert set(reported) == {"all", "general", "dibao", "tekun"}, reported
    for attribute, duplicates in reported.items():
        assert duplicates == expected.get(attribute, 0), (attribute, reported, expected)
    return expected.get("all", 0)


def assert_marts_equal_a_full_build(db: Path, tmp_path: Path) -> None:
    """Every mart table of ``db`` is row for row what a full build of the marts from the same
    core writes (on a copy without the build record; mart.sync_status's clock columns aside):
    the marts written by delta (warehouse/mart_delta.py) against their definition."""
    import warehouse

    full = tmp_path / "full-marts.duckdb"
    shutil.copyfile(db, full)
    with warehouse.connect(full) as con:
        con.execute("DROP SCHEMA marts_state CASCADE")
        warehouse.rebuild_marts(con)
        assert con.execute("SELECT mode FROM marts_state.build").fetchone() == ("full",)
        con.execute(f"ATTACH '{db}' AS built (READ_ONLY)")
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'built' "
            "AND schema_name = 'mart' ORDER BY 1"
        ).fetchall()
        assert len(tables) >= 12
        for (table,) in tables:
            clock = " EXCLUDE (age_hours, built_at)" if table == "sync_status" else ""
            for a, b in (("built.mart", "mart"), ("mart", "built.mart")):
                (extra,) = con.execute(
                    f"SELECT count(*) FROM (SELECT *{clock} FROM {a}.{table} "
                    f"EXCEPT ALL SELECT *{clock} FROM {b}.{table})"
                ).fetchone()
                assert extra == 0, f"mart.{table}: {extra} rows of {a} not in {b}"
        assert_marts_keep_one_record_per_person(con, "built.")
