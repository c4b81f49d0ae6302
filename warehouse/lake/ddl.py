"""The migrations on DuckLake.

DuckLake has no PRIMARY KEY, UNIQUE, index or sequence, and cannot comment on a macro. The
migrations stay written for DuckDB; :func:`for_lake` drops what DuckLake lacks from a
migration's text. The keys are dropped on both backends and checked before COMMIT instead
(``warehouse.keys``), so only the comments on macros are the lake's own difference.
"""

from __future__ import annotations

import re

from warehouse.keys import without_keys

_MACRO_COMMENT = re.compile(r"COMMENT ON MACRO\b[^']*'(?:[^']|'')*'\s*;", re.IGNORECASE)


def for_lake(text: str) -> str:
    """A migration's DDL as DuckLake takes it: no key clauses, no comments on macros."""
    return _MACRO_COMMENT.sub("", without_keys(text))
