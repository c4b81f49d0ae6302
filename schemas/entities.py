"""One spec per entity: its keys, pandera model, parent, history and labels, in one place.

Rules (``schemas.rules``), validation (``schemas.validate``), the merge (``warehouse.merge``),
the asset checks (``pipelines.defs.checks``), the reports and the column comments of ``core``
(tested against the pandera field titles in ``tests/unit/test_schemas_entities.py``) all read
these specs instead of keeping their own lists.

The model is imported on first use (``EntitySpec.model``): the model modules import
``schemas.rules``, which reads the specs here, so this module imports no model at import time.

Rejects and findings share one definition too (:data:`ISSUE_LEVELS`): the same columns, the same
code, parameterised by the level.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from schemas.columns import ENTITY_ORDER, KEYS


@dataclass(frozen=True)
class EntitySpec:
    """What the hub knows about one entity, beside its columns (``schemas.columns``)."""

    name: str
    label_zh: str
    label_en: str
    model_name: str  # the pandera model class in ``schemas/<name>.py``
    parent: str | None = None  # the entity (core table) each row hangs off
    parent_column: str | None = None  # the column of this entity naming the parent
    parent_key: str | None = None  # the parent's column that column refers to
    history: bool = False  # core.<name>_history keeps one row per version

    @property
    def keys(self) -> tuple[str, ...]:
        return KEYS[self.name]

    @property
    def is_child(self) -> bool:
        """Rows that hang off a household: rejected with it when its household is."""
        return self.parent == "household"

    @property
    def module(self) -> Any:
        return importlib.import_module(f"schemas.{self.name}")

    @property
    def model(self) -> Any:
        """The pandera-polars model that validates the entity's canonical frame."""
        return getattr(self.module, self.model_name)

    @property
    def details(self) -> dict:
        """(column, rule) -> polars expression that explains a failure (``DETAILS``)."""
        return self.module.DETAILS

    def title(self, column: str) -> str:
        """The Chinese label of a contract column: its pandera field title."""
        return self.model.to_schema().columns[column].title


_HOUSEHOLD = {"parent": "household", "parent_column": "household_no", "parent_key": "household_no"}

#: Every entity, parents first (``schemas.columns.ENTITY_ORDER``).
SPECS: dict[str, EntitySpec] = {
    s.name: s
    for s in (
        EntitySpec("region", "行政区划", "administrative division", "RegionModel"),
        EntitySpec(
            "household",
            "贫困户",
            "poor household",
            "HouseholdModel",
            parent="region",
            parent_column="village_code",
            parent_key="code",
            history=True,
        ),
        EntitySpec(
            "person", "贫困人口", "household member", "PersonModel", history=True, **_HOUSEHOLD
        ),
        EntitySpec("measure", "帮扶措施", "assistance measure", "MeasureModel", **_HOUSEHOLD),
        EntitySpec("loan", "小额信贷", "micro-credit loan", "LoanModel", **_HOUSEHOLD),
        EntitySpec("project", "扶贫项目", "poverty-alleviation project", "ProjectModel"),
        EntitySpec("cadre", "帮扶干部", "aid cadre", "CadreModel"),
        EntitySpec(
            "household_cadre",
            "结对帮扶",
            "household-cadre pairing",
            "HouseholdCadreModel",
            **_HOUSEHOLD,
        ),
    )
}
assert tuple(SPECS) == ENTITY_ORDER, "SPECS must list the entities in ENTITY_ORDER"

#: Entities whose rows hang off a household (rejected with it when its household is).
CHILD_ENTITIES: tuple[str, ...] = tuple(n for n, s in SPECS.items() if s.is_child)
#: Entities whose versions core keeps in ``core.<entity>_history``.
HISTORY_ENTITIES: tuple[str, ...] = tuple(n for n, s in SPECS.items() if s.history)
#: entity -> Chinese label (reports, workbooks, messages).
LABELS_ZH: dict[str, str] = {n: s.label_zh for n, s in SPECS.items()}


def models() -> dict[str, Any]:
    """entity -> pandera model."""
    return {n: s.model for n, s in SPECS.items()}


def references() -> dict[str, tuple[str, str, str]]:
    """child entity -> (its column, parent core table, the parent's key column)."""
    return {
        n: (s.parent_column, f"core.{s.parent}", s.parent_key)
        for n, s in SPECS.items()
        if s.parent is not None and s.parent_column and s.parent_key
    }


@dataclass(frozen=True)
class IssueLevel:
    """A level of validation issue: rejects and findings are one table shape with one code."""

    level: str  # the rule level (``schemas.rules.Rule.level``)
    attribute: str  # the ``Validated`` attribute holding them
    table: str  # the ops table they are recorded in
    label_zh: str


#: The columns of an issue (ops.reject and ops.finding alike, before the run's own columns).
ISSUE_COLUMNS = ("entity", "source_key", "rule", "column_name", "value", "message", "raw_ref")
ISSUE_LEVELS: dict[str, IssueLevel] = {
    "reject": IssueLevel("reject", "rejects", "ops.reject", "拒收记录"),
    "finding": IssueLevel("finding", "findings", "ops.finding", "警告记录"),
}
#: The ops tables of issues, by table name within ``ops``.
ISSUE_TABLES: tuple[str, ...] = tuple(lvl.table.split(".")[1] for lvl in ISSUE_LEVELS.values())
