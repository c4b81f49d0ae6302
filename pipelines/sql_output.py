"""How ``hub sql`` prints a result, and the clock its sessions run on.

Sessions run in Beijing time (``Asia/Shanghai``): ``current_date`` is the city's date, so
``core.household_as_of(current_date)`` is "today" on a server whose clock is UTC too, and
TIMESTAMPTZ values print in the time county staff live in.

Formats: ``table`` (headers never cut, numbers right-aligned), ``csv``, ``json`` (one array of
objects, numbers as numbers) and ``markdown`` (a pipe table, numbers right-aligned).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum

import polars as pl
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

TIMEZONE = "Asia/Shanghai"
SESSION_SETUP = f"SET TimeZone = '{TIMEZONE}'"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


def beijing_session(con) -> None:
    """Put a DuckDB connection on Beijing time."""
    con.execute(SESSION_SETUP)


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def _text(value) -> str:
    return "" if value is None else str(value)


def render_table(df: pl.DataFrame, console: Console) -> None:
    table = Table(show_lines=False)
    for name, dtype in df.schema.items():
        # A header is never cut to "coun…" (min_width) and long text folds onto the next line
        # instead of being cut; numbers stay on one line, right-aligned.
        number = _is_number(dtype)
        table.add_column(
            name,
            justify="right" if number else "left",
            no_wrap=number,
            min_width=cell_len(name),
            overflow="fold",
        )
    for row in df.iter_rows():
        table.add_row(*[_text(v) for v in row])
    console.print(table)


def render_markdown(df: pl.DataFrame) -> str:
    numeric = [_is_number(t) for t in df.schema.values()]

    def cell(value) -> str:
        return _text(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in df.columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines) + "\n"


def render_json(df: pl.DataFrame) -> str:
    def plain(value):
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if hasattr(value, "is_finite"):  # Decimal: a number, not a string
            return float(value)
        return str(value)  # dates and times in ISO form

    rows = [{k: plain(v) for k, v in row.items()} for row in df.iter_rows(named=True)]
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def write(df: pl.DataFrame, fmt: Format, console: Console) -> None:
    if fmt == Format.csv:
        sys.stdout.write(df.write_csv())
    elif fmt == Format.json:
        sys.stdout.write(render_json(df))
    elif fmt == Format.markdown:
        sys.stdout.write(render_markdown(df))
    else:
        render_table(df, console)
