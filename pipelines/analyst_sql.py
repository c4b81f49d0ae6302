"""How analysts' SQL reaches the hub (``hub sql``, ``make sql``): the analyst snapshot only,
read-only, in DuckDB's safe mode.

Safe mode means ``enable_external_access = false`` (no ``ATTACH`` of other files — the live
warehouse or the PII snapshot —, no ``read_csv``/``read_json``/``read_text``/``glob`` of local
paths, no ``COPY … TO`` or ``EXPORT DATABASE``, no extension loading) and
``lock_configuration = true`` (no ``SET`` can turn it back on). The shell runs the DuckDB
binary with ``-safe -readonly``, which also refuses ``.shell``/``.system``, ``.open``,
``.read``, ``.output``/``.once``, ``.import``, ``.log`` and ``.cd``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.columns import IDENTIFYING

#: The connection settings of every analyst query (DuckDB's safe mode).
SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,  # last: the settings above can no longer be changed
}


class NotAnAnalystSnapshot(RuntimeError):
    """``HUB_SNAPSHOT`` names a file with direct identifiers (the live warehouse, the PII copy)."""


def connect(snapshot: Path, timezone: str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only, safe-mode connection to the analyst snapshot. Refuses a file that holds
    direct identifiers, so pointing ``HUB_SNAPSHOT`` at the live warehouse or the restricted PII
    snapshot does not turn ``hub sql`` into a way around the file split.

    ``timezone`` (``hub sql``: Asia/Shanghai) is set before the configuration is locked."""
    config = dict(SAFE_CONFIG)
    lock = config.pop("lock_configuration")
    con = duckdb.connect(str(snapshot), read_only=True, config=config)
    try:
        if timezone:
            con.execute(f"SET TimeZone = '{timezone.replace(chr(39), '')}'")
        if lock:
            con.execute("SET lock_configuration = true")
        refuse_identifiers(con, str(snapshot), "HUB_SNAPSHOT")
    except BaseException:
        con.close()
        raise
    return con


def refuse_identifiers(con: duckdb.DuckDBPyConnection, what: str, setting: str) -> None:
    """Raise :class:`NotAnAnalystSnapshot` when the current database of ``con`` has a direct
    identifier column in ``core`` (``what`` and ``setting`` name it in the message)."""
    identifying = [f"{e}.{c}" for e, cols in IDENTIFYING.items() for c in cols]
    found = con.execute(
        "SELECT table_name || '.' || column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'core' "
        "AND list_contains($names, table_name || '.' || column_name)",
        {"names": identifying},
    ).fetchall()
    if found:
        raise NotAnAnalystSnapshot(
            f"{what} holds direct identifiers (core.{found[0][0]}): it is not the analyst "
            f"snapshot. hub sql opens only the analyst snapshot; check {setting}."
        )


def duckdb_binary() -> Path:
    """The DuckDB shell binary of the pinned ``duckdb-cli`` package.

    Not its ``duckdb`` console script: that wrapper starts the binary with a ``SET
    extension_directories`` command, which safe mode's locked configuration refuses."""
    import duckdb_cli

    binary = Path(duckdb_cli.__file__).with_name("duckdb")
    if not binary.is_file():
        raise FileNotFoundError(f"the duckdb-cli package has no shell binary at {binary}")
    return binary


def shell_command(snapshot: Path) -> list[str]:
    """The DuckDB shell on the analyst snapshot (checked as :func:`connect` does), read-only
    and in safe mode."""
    connect(snapshot).close()
    return [str(duckdb_binary()), "-safe", "-readonly", str(snapshot)]
