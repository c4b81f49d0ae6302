"""Building blocks of the pandera models (``schemas/<entity>.py``).

How a pandera failure maps to a rule (``schemas.failures`` does the mapping):
- a custom check is named after its rule (``@pa.check(..., name="key_format")``);
- ``not_nullable`` is ``missing_value``;
- a built-in check (isin, in_range, ge, str_matches) takes its rule from the field's
  ``metadata["rule"]``; a field has at most one built-in check so the mapping is unambiguous.
"""

from __future__ import annotations

from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from seeds.codes import city_codes


def required(title: str, description: str, **kwargs: Any) -> Any:
    """A column that must be filled: empty is ``missing_value``."""
    return pa.Field(nullable=False, title=title, description=description, **kwargs)


def optional(title: str, description: str, **kwargs: Any) -> Any:
    return pa.Field(nullable=True, title=title, description=description, **kwargs)


def coded(table: str, title: str, description: str, *, nullable: bool = True) -> Any:
    """A scalar coded column: its value must be one of the city codes of ``table``."""
    return pa.Field(
        nullable=nullable,
        title=title,
        description=f"{description} (city code table {table})",
        isin=city_codes(table),
        metadata={"rule": "unknown_code", "code_table": table},
    )


def elements_in(data: PolarsData, table: str) -> pl.LazyFrame:
    """Check body for a coded list column: every element is a city code of ``table``."""
    codes = city_codes(table)
    return data.lazyframe.select(pl.col(data.key).list.eval(pl.element().is_in(codes)).list.all())


def unknown_elements(column: str, table: str) -> pl.Expr:
    """The elements of a list column that are not codes of ``table``, joined (for messages)."""
    codes = city_codes(table)
    return pl.col(column).list.eval(pl.element().filter(~pl.element().is_in(codes))).list.join(", ")
