"""The rule catalogue agrees with the architecture doc, the docs and the pandera models."""

from __future__ import annotations

import re

import polars as pl

from base.paths import REPO
from schemas.rules import RULES, render_message
from schemas.validate import MODELS

ARCHITECTURE = REPO / "docs" / "engineering" / "architecture.md"
DATA_QUALITY = REPO / "docs" / "data-quality.md"


def _architecture_table() -> dict[str, tuple[str, str]]:
    """rule name → (level, entity cell) from the architecture doc's rule catalogue."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Rule catalogue", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            out[name] = (cells[1], cells[2])
    return out


def test_catalogue_names_and_levels_match_the_architecture_doc():
    table = _architecture_table()
    assert set(table) == set(RULES)
    for name, (level, _) in table.items():
        assert RULES[name].level == level, name


def test_catalogue_entities_match_the_architecture_doc():
    for name, (_, entities) in _architecture_table().items():
        listed = re.findall(r"[a-z_]+", entities)
        if listed[0] in ("all", "any", "coded"):
            continue
        assert set(RULES[name].entities) == set(listed), name


def test_every_rule_is_documented_for_county_admins():
    text = DATA_QUALITY.read_text(encoding="utf-8")
    for name in RULES:
        assert f"`{name}`" in text, name


def test_model_rules_have_a_check_and_model_checks_have_a_rule():
    """Each column has at most one built-in check (its rule comes from the field metadata) and
    every custom check is named after a catalogue rule implemented in the models."""
    model_rules = set()
    for entity, model in MODELS.items():
        for name, column in model.to_schema().columns.items():
            builtins = [c for c in column.checks if c.name not in RULES]
            assert len(builtins) <= 1, (entity, name)
            if builtins:
                rule = column.metadata["rule"]
                assert rule in RULES, (entity, name)
                model_rules.add(rule)
            model_rules |= {c.name for c in column.checks if c.name in RULES}
            if not column.nullable:
                model_rules.add("missing_value")
    for rule in model_rules:
        assert RULES[rule].where == "model", rule
    assert {r.name for r in RULES.values() if r.where == "model"} == model_rules


def test_render_message_fills_the_template():
    df = pl.DataFrame({"c": ["main_cause"], "v": ["因病返贫"], "d": ["poverty_cause"]})
    out = df.select(render_message("unknown_code", pl.col("c"), pl.col("v"), pl.col("d")))
    assert out.item() == "main_cause: '因病返贫' is not a poverty_cause code"


def test_rules_explain_themselves():
    for rule in RULES.values():
        assert rule.checks and rule.why and rule.source, rule.name
        assert "{column}" in rule.message, rule.name


def test_required_columns_table_matches_the_models():
    text = DATA_QUALITY.read_text(encoding="utf-8")
    section = text.split("## Required columns", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] in MODELS:
            documented[cells[0]] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    for entity, model in MODELS.items():
        required = {n for n, c in model.to_schema().columns.items() if not c.nullable}
        assert documented[entity] == required, entity


def test_every_rule_has_its_chinese_label_in_the_docs_rules_tables():
    """The doc's tables carry each rule's Chinese label next to its name, as schemas/rules.py
    defines it (one fact in one place: the doc is checked against the code)."""
    from schemas.rules import MERGE_REJECTS

    text = DATA_QUALITY.read_text(encoding="utf-8")
    for name, rule in RULES.items():
        assert f"| `{name}` | {rule.label_zh} |" in text, name
    for name, label in MERGE_REJECTS.items():
        assert f"`{name}`** ({label})" in text, name


def test_a_rule_needs_a_chinese_label():
    import dataclasses

    import pytest

    from schemas.rules import Rule

    fields = {f.name: f for f in dataclasses.fields(Rule)}
    assert fields["label_zh"].default is dataclasses.MISSING, "a required field"
    args = ("new_rule", "reject", ("household",), "{column}", "checks", "why", "source", "model")
    with pytest.raises(TypeError):
        Rule(*args)
    with pytest.raises(ValueError, match="Chinese"):
        Rule(*args, label_zh="new rule")
    assert Rule(*args, label_zh="新规则").label_zh == "新规则"
    assert len({r.label_zh for r in RULES.values()}) == len(RULES), "labels tell rules apart"
