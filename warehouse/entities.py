"""The identifiers each entity gives the merge templates, from ``schemas.columns`` and the
column types of ``core``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from schemas.columns import ENTITIES, ENTITY_ORDER, KEYS
from warehouse.statements import q as _q
from warehouse.statements import run

#: A staged row that changes its core row (40_upsert.sql): other contract values, or revived.
CHANGED = "(c.row_hash <> s.row_hash OR c.deleted_at IS NOT NULL)"


@dataclass(frozen=True)
class MergeEntity:
    """Identifiers of one entity for the merge templates, from ``schemas.columns``."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]  # contract columns, as in the canonical frame
    types: Mapping[str, str]  # core column -> DuckDB type

    @property
    def stored(self) -> tuple[str, ...]:
        """Contract columns plus what the merge derives from them (person_key)."""
        return (*self.columns, "person_key") if self.name == "person" else self.columns

    def join(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_q(k)} = {right}.{_q(k)}" for k in self.keys)

    def identifiers(self) -> dict[str, str]:
        casts = [f"CAST({_q(c)} AS {self.types[c]})" for c in self.columns]
        hash_fields = ", ".join(
            f"{_q(c)} := {cast}" for cast, c in zip(casts, self.columns, strict=True)
        )
        person = self.name == "person"
        # children carry household_no to the short path, where parent claims read it
        carries_household = "household_no" in self.columns and "household_no" not in self.keys
        return {
            "entity": self.name,
            "stage": f"_stage_{self.name}",
            "frame": f"_frame_{self.name}",
            "source": f"_src_{self.name}",
            "diff": f"_diff_{self.name}",
            "rejected": f"_rejected_{self.name}",
            # THE row_hash of a row (one definition: 10_stage.sql, the region seed)
            "row_hash": f"md5(to_json(struct_pack({hash_fields})))",
            "key_cols_s": ", ".join(f"s.{_q(k)}" for k in self.keys),
            "diff_extra": " s.household_no," if carries_household else "",
            "core_person_key": "c.person_key" if person else "NULL",
            "casts": ", ".join(
                f"{cast} AS {_q(c)}" for cast, c in zip(casts, self.columns, strict=True)
            )
            + ", _row",
            "hash_fields": hash_fields,
            "key_cols": ", ".join(_q(k) for k in self.keys),
            "key_cols_c": ", ".join(f"c.{_q(k)}" for k in self.keys),
            "key_col": self.keys[0],
            "key_text": " || ':' || ".join(f"s.{_q(k)}" for k in self.keys),
            "key_join_cs": self.join("c", "s"),
            "key_join_hs": self.join("h", "s"),
            "key_join_cg": self.join("c", "g"),
            "key_join_hg": self.join("h", "g"),
            "person_key": (
                "\n       sha256($opad || unhex(sha256($ipad || encode(id_number)))) AS person_key,"
                if self.name == "person"
                else ""
            ),
            # one WHEN MATCHED action, as DuckLake's MERGE allows: changed columns by CASE
            "changed": CHANGED,
            "update_set": ", ".join(
                f"{_q(c)} = CASE WHEN {CHANGED} THEN s.{_q(c)} ELSE c.{_q(c)} END"
                for c in self.stored
            ),
            "insert_cols": ", ".join(_q(c) for c in self.stored),
            "insert_vals": ", ".join(f"s.{_q(c)}" for c in self.stored),
        }


def merge_entities(con: duckdb.DuckDBPyConnection) -> dict[str, MergeEntity]:
    """entity -> its merge identifiers, parents first, for the entities ``core`` has."""
    types: dict[str, dict[str, str]] = {}
    for table, column, data_type in run(con, "ops/catalog.sql", "core_columns").fetchall():
        types.setdefault(table, {})[column] = data_type
    return {
        e: MergeEntity(e, KEYS[e], tuple(ENTITIES[e]), types[e]) for e in ENTITY_ORDER if e in types
    }
