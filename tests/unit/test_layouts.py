"""The platforms' column tables (``<kind>/layout.py`` ``CANONICAL``) read only documented fields.

``Fields`` reads an absent field as null, so a misspelt field name in a table would load nulls
without an error: every field a table reads must be one the platform documents (and the client
and ``require_fields`` check on every page)."""

from __future__ import annotations

import pytest

from pipelines.connectors.battle import layout as battle
from pipelines.connectors.bigdata import layout as bigdata
from pipelines.connectors.parsing import Read, layout_columns
from pipelines.connectors.workbook import layout as workbook


def _read_fields(table: dict) -> set[str]:
    return {source.field for source in table.values() if isinstance(source, Read)}


@pytest.mark.parametrize("entity", sorted(battle.CANONICAL))
def test_battle_reads_documented_fields(entity):
    documented = set(battle.FIELDS_V3[entity]) | set(battle.FIELDS_V2[entity])
    assert _read_fields(battle.CANONICAL[entity]) - documented == set()


@pytest.mark.parametrize("api_entity", sorted(bigdata.FIELDS))
def test_bigdata_reads_documented_fields(api_entity):
    table = bigdata.CANONICAL[bigdata.ENTITIES[api_entity]]
    assert _read_fields(table) - set(bigdata.FIELDS[api_entity]) == set()


@pytest.mark.parametrize("entity", sorted(workbook.CANONICAL))
def test_workbook_reads_documented_columns(entity):
    assert _read_fields(workbook.CANONICAL[entity]) - set(workbook.COLUMNS) == set()


def test_a_table_missing_a_canonical_column_fails_when_built():
    table = {k: v for k, v in battle.CANONICAL["loan"].items() if k != "principal"}
    with pytest.raises(ValueError, match="principal"):
        layout_columns("loan", table, dict)


def test_an_unknown_parser_fails_when_declared():
    with pytest.raises(ValueError, match="no parser"):
        Read("je", "money")
