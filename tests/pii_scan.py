"""The PII scan of a published tier: every value of every table, looked at for names, ID numbers,
phones and birth dates. Used on the analyst snapshot (tests/e2e/test_analysts.py) and the
analyst lake (tests/lake/test_tiers.py)."""

from __future__ import annotations

import duckdb

# Shapes, whatever their source: an ID number (6-digit address code, a real-looking birth date,
# sequence and check character; 18 or legacy 15 digits) or a mobile number, standing on its own
# (not inside a longer run of digits or a hex pseudonym such as person_key). person_no and
# household_no (16/18 digits) have a town/village code where the birth date would be.
_DATE8 = "(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
_DATE6 = "[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
ID_SHAPED = rf"(^|[^0-9A-Za-z])[1-9][0-9]{{5}}({_DATE8}[0-9]{{3}}[0-9Xx]|{_DATE6}[0-9]{{3}})([^0-9A-Za-z]|$)"
PHONE_SHAPED = r"(^|[^0-9A-Za-z])1[3-9][0-9]{9}([^0-9A-Za-z]|$)"


def _cells(schema: str, table: str) -> str:
    """SQL of every non-null cell of a table as (table, column, value as text)."""
    return (
        f"SELECT '{schema}.{table}' AS tbl, col, val FROM (UNPIVOT (SELECT COLUMNS(*)::VARCHAR "
        f"FROM {schema}.{table}) ON COLUMNS(*) INTO NAME col VALUE val)"
    )


def _identities(pii: str) -> str:
    """SQL of every name, ID number and phone the hub holds (kind, v), from the PII snapshot
    attached as ``pii``: live and historical versions, cadres, and the quarantined records."""
    record = f"{pii}.ops.quarantine"
    return f"""
        SELECT name AS v, 'name' AS kind FROM {pii}.core.person
        UNION SELECT id_number, 'id_number' FROM {pii}.core.person
        UNION SELECT name, 'name' FROM {pii}.core.person_history
        UNION SELECT id_number, 'id_number' FROM {pii}.core.person_history
        UNION SELECT name, 'name' FROM {pii}.core.cadre
        UNION SELECT id_number, 'id_number' FROM {pii}.core.cadre
        UNION SELECT phone, 'phone' FROM {pii}.core.cadre
        UNION SELECT phone, 'phone' FROM {pii}.core.household
        UNION SELECT phone, 'phone' FROM {pii}.core.household_history
        UNION SELECT record->>'name', 'name' FROM {record}
        UNION SELECT record->>'id_number', 'id_number' FROM {record}
        UNION SELECT record->>'phone', 'phone' FROM {record}
        UNION SELECT CAST(birth_date AS VARCHAR), 'birth_date' FROM {pii}.core.person
    """


def pii_hits(
    con: duckdb.DuckDBPyConnection,
    pii: str,
    schemas: tuple[str, ...],
    tables: list[str] | None = None,
) -> list[tuple]:
    """(kind, cells, an example) of every kind of identifier found in the VALUES of the tables
    of ``con``'s current database (``tables``, else every table of ``schemas``; every column,
    every row, cast to text): ID-number and phone shapes, and every name, ID number, phone and
    birth date the hub holds (the database attached as ``pii``: the restricted snapshot or the
    main lake), whole or inside text."""
    names = tables or [
        f"{s}.{t}"
        for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() ORDER BY 1, 2"
        ).fetchall()
        if s in schemas
    ]
    cells = " UNION ALL ".join(_cells(*n.split(".")) for n in names)
    return con.execute(
        f"""
        WITH cells AS ({cells}),
        pii AS (SELECT DISTINCT * FROM ({_identities(pii)}) WHERE v IS NOT NULL AND v <> ''),
        -- words of free text (JSON, messages): runs of digits, of Han characters, dates
        words AS (
            SELECT tbl, col, val,
                   unnest(regexp_extract_all(val,
                       '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|[0-9][0-9Xx]*|[\u4e00-\u9fff]+')) AS w
            FROM cells)
        SELECT kind, count(*) AS cells, min(tbl || '.' || col || ' = ' || val) AS example
        FROM (
        SELECT tbl, col, val, 'id-shaped' FROM cells WHERE regexp_matches(val, '{ID_SHAPED}')
        UNION ALL
        SELECT tbl, col, val, 'phone-shaped' FROM cells
        WHERE regexp_matches(val, '{PHONE_SHAPED}')
        UNION ALL
        SELECT tbl, col, val, 'a held ' || kind FROM cells JOIN pii ON cells.val = pii.v
        WHERE kind <> 'birth_date' OR col LIKE '%birth%'
        UNION ALL  -- inside longer text: a whole word that is a held identifier
        SELECT tbl, col, val, 'contains a held ' || kind FROM words JOIN pii ON words.w = pii.v
        WHERE w <> val AND kind <> 'birth_date'
        ) AS hits(tbl, col, val, kind)
        GROUP BY kind ORDER BY kind
        """
    ).fetchall()
