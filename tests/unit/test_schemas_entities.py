"""One entity spec (issue 14): the lists every layer used to keep are read from schemas.entities,
the column comments of core agree with the pandera field titles, and rejects and findings are
one table shape."""

from __future__ import annotations

import re

import duckdb
import pytest

import warehouse
from pipelines.defs import checks
from schemas import rules, validate
from schemas.columns import ENTITIES, ENTITY_ORDER, KEYS
from schemas.entities import (
    CHILD_ENTITIES,
    HISTORY_ENTITIES,
    ISSUE_COLUMNS,
    ISSUE_LEVELS,
    SPECS,
    references,
)

COMMENT = re.compile(r"^(\w+) — (.+?): (.+)$", re.S)


@pytest.fixture(scope="module")
def migrated():
    con = duckdb.connect()
    warehouse.migrate(con)
    yield con
    con.close()


def _comments(con, schema: str) -> dict[tuple[str, str], str | None]:
    rows = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = ?",
        [schema],
    ).fetchall()
    return {(t, c): comment for t, c, comment in rows}


def test_specs_cover_every_entity_in_order_with_its_keys_and_model():
    assert tuple(SPECS) == ENTITY_ORDER
    for name, spec in SPECS.items():
        assert spec.keys == KEYS[name]
        assert set(spec.model.to_schema().columns) == set(ENTITIES[name]), name
        assert spec.label_zh and spec.label_en


def test_every_layer_reads_the_specs():
    assert CHILD_ENTITIES == ("person", "measure", "loan", "household_cadre")
    assert HISTORY_ENTITIES == ("household", "person")
    assert rules.CHILDREN == validate.CHILDREN == warehouse.CHILD_ENTITIES == CHILD_ENTITIES
    assert warehouse.HISTORY_ENTITIES == HISTORY_ENTITIES
    assert {n: s.model for n, s in SPECS.items()} == validate.MODELS
    assert references() == checks.REFERENCES
    assert checks.REFERENCES["household"] == ("village_code", "core.region", "code")
    assert checks.REFERENCES["loan"] == ("household_no", "core.household", "household_no")


def test_history_tables_exist_exactly_for_history_entities(migrated):
    tables = {
        t
        for (t,) in migrated.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'core'"
        ).fetchall()
    }
    assert {t.removesuffix("_history") for t in tables if t.endswith("_history")} == set(
        HISTORY_ENTITIES
    )


def test_core_column_comments_carry_the_pandera_titles(migrated):
    """Every contract column of core (and of its history table) is commented
    ``<column> — <pandera title>: <description>``, after every migration."""
    comments = _comments(migrated, "core")
    wrong = []
    for name, spec in SPECS.items():
        tables = (name, f"{name}_history") if spec.history else (name,)
        for column, field in spec.model.to_schema().columns.items():
            for table in tables:
                match = COMMENT.match(comments.get((table, column)) or "")
                if not match or match.group(1) != column or match.group(2) != field.title:
                    wrong.append((table, column, field.title, comments.get((table, column))))
    assert not wrong, wrong


def test_reject_and_finding_are_one_table_shape(migrated):
    shapes = {
        level.table: migrated.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'ops' AND table_name = ? ORDER BY column_index",
            [level.table.split(".")[1]],
        ).fetchall()
        for level in ISSUE_LEVELS.values()
    }
    reject, finding = shapes["ops.reject"], shapes["ops.finding"]
    assert reject == finding
    assert [c for c, _ in reject][2:9] == list(ISSUE_COLUMNS)
    comments = _comments(migrated, "ops")
    for column, _ in reject:
        assert comments[("reject", column)] == comments[("finding", column)], column
