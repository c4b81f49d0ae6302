"""``hub report <county> [--week 2026-W49] [--send]``: the county's weekly data-quality letter."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()


def report(
    county: Annotated[str, typer.Argument(help="slug or code, e.g. luonan")],
    week: Annotated[
        str | None,
        typer.Option(help="ISO week (2026-W49), a date in it, 'this' or 'last' (default)"),
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="also send it through the county's channel")
    ] = False,
) -> None:
    """Write the county's weekly data-quality letter (.xlsx) from the published snapshot."""
    from pipelines.weekly_report import Week, send_letter, write_letter
    from seeds.registry import county as find

    try:
        c, w = find(county), Week.parse(week)
        letter = write_letter(c, w)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"{c.name} {w.label}: {letter.open_issues} records with problems → {letter.path}",
        highlight=False,
    )
    if send:
        sent = send_letter(letter)
        console.print("sent through the county's channel" if sent else "not sent (see the log)")
