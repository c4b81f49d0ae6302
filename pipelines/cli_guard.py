"""What every `hub` command that writes checks first, and how a command fails: shared by
``pipelines.cli`` and ``pipelines.cli_ops`` (neither imports the other's commands).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from base import paths, settings

err_console = Console(stderr=True)


def fail(exc: BaseException) -> NoReturn:
    # soft_wrap: one line per message, whole paths and variable names (logs, grep)
    err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def prepare_to_write() -> None:
    """What every command that syncs checks first: the PII key for this profile, that the
    warehouse was created by this profile, and owner-only modes under HUB_HOME."""
    import warehouse

    try:
        settings.check_pii_key()
        recorded = warehouse.recorded_profile()
        if recorded is not None and recorded != settings.profile():
            raise warehouse.ProfileMismatch(recorded, settings.profile(), paths.live_db())
    except (settings.SettingsError, warehouse.ProfileMismatch) as exc:
        fail(exc)
    settings.secure_home()
