"""mart.person against its definition, written independently of its SQL (00_person.sql), and
mart.reconciliation's duplicates against the records it leaves out: used by the unit marts
tests and the city step's e2e tests on both backends."""

from __future__ import annotations

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
