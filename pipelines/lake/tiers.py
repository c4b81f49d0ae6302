"""Who reads what on the DuckLake backend: the analyst lake and the restricted tier, from the
settings (``base.settings``), with no copy of the main lake's files.

* **analyst** — the analyst lake (``HUB_ANALYST_LAKE_CATALOG``, ``HUB_ANALYST_LAKE_DATA_PATH``),
  written at publish time by :func:`publish` (``warehouse.lake_publish``: no names, ID numbers,
  phones or birth dates), attached READ_ONLY in DuckDB's safe mode: only its own data path is
  readable, no other file, no other database, no extension, configuration locked.
* **restricted** — the main lake itself (``HUB_LAKE_CATALOG``, ``HUB_LAKE_DATA_PATH``), attached
  READ_ONLY, in the same safe mode, for the few with PII rights. Its data path is owner-only
  (0700, files 0600) and its catalog database is readable by the hub's PostgreSQL role only, so
  in practice it is reached as the hub's service account, like the restricted PII snapshot.

Both attach read-only, so a session sees the latest committed snapshot when it attaches and can
travel back (``AT (VERSION => n)``, ``AT (TIMESTAMP => t)``); docs/analysts.md shows how.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from base import settings
from pipelines.analyst_sql import SAFE_CONFIG, duckdb_binary, refuse_identifiers
from warehouse.lake import extensions
from warehouse.lake.catalog import spill_config
from warehouse.lake_publish import (
    LakePublish,
    current_snapshot,
    expire_old_versions,
    publish_analyst_lake,
    share_files,
)
from warehouse.statements import literal

ANALYST = "analyst"
RESTRICTED = "lake"
SOURCE = "live"


def attach_sql(
    alias: str, catalog: str, data_path: str, read_only: bool, version: int | None = None
) -> str:
    """``ATTACH`` of a DuckLake on a PostgreSQL catalog; ``version`` pins it to one snapshot."""
    options = f"DATA_PATH {literal(data_path)}" + (", READ_ONLY" if read_only else "")
    if version is not None:
        options += f", SNAPSHOT_VERSION {int(version)}"
    return f"ATTACH {literal('ducklake:postgres:' + catalog)} AS {alias} ({options})"


class LakeNotReady(RuntimeError):
    """A lake a reader or the publish needs cannot be attached (not published yet, catalog
    unreachable); the message names it (no password) and says what to do."""


def _attach(con, alias: str, catalog: str, data_path: str, read_only: bool, version=None) -> None:
    try:
        con.execute(attach_sql(alias, catalog, data_path, read_only, version))
    except duckdb.Error as exc:  # the DSN carries no password, but say so only once redacted
        shown = settings.redact_dsn(catalog)
        why = str(exc).replace(catalog, shown).splitlines()[0]
        hint = (
            " No analyst lake has been published there yet: run `make demo` (or the sync_city "
            "job) first."
            if alias == ANALYST and read_only and "does not exist" in why
            else ""
        )
        raise LakeNotReady(
            f"cannot attach the {alias} lake (catalog {shown}, data {data_path}): {why}.{hint}"
        ) from None


def analyst_grants(role: str, database: str) -> list[str]:
    """PostgreSQL statements (run by the catalog's owner, in the analyst catalog ``database``)
    that let ``role`` read the analyst lake and nothing else: its catalog tables now and the ones
    DuckLake creates later (inlined rows of new tables). The main catalog is closed to everyone
    but its owner with ``REVOKE CONNECT ON DATABASE <main> FROM PUBLIC``."""
    role, database = (f'"{x.replace(chr(34), "")}"' for x in (role, database))
    return [
        f"GRANT CONNECT ON DATABASE {database} TO {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
    ]


def publish() -> LakePublish:
    """Publish the analyst lake from the main lake (one commit; only changed tables rewritten),
    forget publishes older than ``HUB_ANALYST_LAKE_KEEP_DAYS``, and give its local files the
    analyst tier's mode (``HUB_SNAPSHOT_MODE``)."""
    settings.load()
    data = settings.analyst_lake_data_path()
    if "://" not in data:
        settings.private_dir(Path(data))
    con = duckdb.connect(config=spill_config())
    try:
        extensions.load(con)
        main, main_data = settings.lake_catalog(), settings.lake_data_path()
        # The main lake pinned at its latest snapshot: county merges committing meanwhile change
        # nothing this publish reads, and the snapshot it records is exactly what it read.
        _attach(con, SOURCE, main, main_data, read_only=True)
        head = current_snapshot(con, SOURCE)
        con.execute(f"DETACH {SOURCE}")
        _attach(con, SOURCE, main, main_data, read_only=True, version=head)
        _attach(con, ANALYST, settings.analyst_lake_catalog(), data, read_only=False)
        result = publish_analyst_lake(con, SOURCE, ANALYST)
        if result.changed:
            expire_old_versions(con, ANALYST, settings.analyst_lake_keep_days())
    finally:
        con.close()
    share_files(data, settings.snapshot_mode())
    return result


def _safe(con: duckdb.DuckDBPyConnection, data_path: str, timezone: str | None) -> None:
    """Safe mode with one exception: the attached lake's own data files stay readable."""
    if "://" not in data_path:
        con.execute(f"SET allowed_directories = [{literal(data_path)}]")
    if timezone:
        con.execute(f"SET TimeZone = {literal(timezone)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _reader(tier: str, timezone: str | None) -> tuple[duckdb.DuckDBPyConnection, str]:
    settings.load()
    if tier == ANALYST:
        catalog, data = settings.analyst_lake_catalog(), settings.analyst_lake_data_path()
    else:
        catalog, data = settings.lake_catalog(), settings.lake_data_path()
    config = {k: v for k, v in SAFE_CONFIG.items() if k != "enable_external_access"}
    config.pop("lock_configuration")
    con = duckdb.connect(config=config)
    try:
        extensions.load(con)
        _attach(con, tier, catalog, data, read_only=True)
        con.execute(f"USE {tier}")
        _safe(con, data, timezone)
    except BaseException:
        con.close()
        raise
    return con, data


def analyst_connection(timezone: str | None = None) -> duckdb.DuckDBPyConnection:
    """The analyst lake, read-only, in safe mode; refused if it holds a direct identifier
    (the settings pointing at the main lake)."""
    con, _ = _reader(ANALYST, timezone)
    try:
        refuse_identifiers(con, "the lake HUB_ANALYST_LAKE_CATALOG names", "HUB_ANALYST_LAKE_*")
    except BaseException:
        con.close()
        raise
    return con


def restricted_connection(timezone: str | None = None) -> duckdb.DuckDBPyConnection:
    """The main lake, read-only, in safe mode: for staff with PII rights only."""
    return _reader(RESTRICTED, timezone)[0]


def analyst_shell_command() -> list[str]:
    """The DuckDB shell on the analyst lake (checked as :func:`analyst_connection` does):
    extensions loaded and the lake attached read-only first, then ``.safe_mode``."""
    analyst_connection().close()
    catalog, data = settings.analyst_lake_catalog(), settings.analyst_lake_data_path()
    commands = [
        *(f"LOAD {literal(str(extensions.extension_file(n)))}" for n in extensions._WHEELS),
        attach_sql(ANALYST, catalog, data, read_only=True),
        f"USE {ANALYST}",
    ]
    if "://" not in data:
        commands.append(f"SET allowed_directories = [{literal(data)}]")
    commands.append(".safe_mode")  # external access off, dot commands refused, config locked
    return [str(duckdb_binary()), *(arg for c in commands for arg in ("-cmd", c))]
