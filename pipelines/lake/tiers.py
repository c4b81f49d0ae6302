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

Either data path may be on object storage (``s3://``, ``warehouse.lake.object_store``), with two
keys: the hub's (``HUB_LAKE_S3_*``) wherever the hub reads or writes — the publish, the
restricted tier — and the analysts' own read-only key (``HUB_ANALYST_LAKE_S3_*``) for the analyst
tier, each a temporary secret scoped to its lake's path, made before safe mode is switched on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb

from base import settings
from pipelines.analyst_sql import SAFE_CONFIG, duckdb_binary, refuse_identifiers
from warehouse.lake import extensions, object_store
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
#: The settings of the two data paths, and the name of each one's S3 secret (object storage).
MAIN_PATH, ANALYST_PATH = "HUB_LAKE_DATA_PATH", "HUB_ANALYST_LAKE_DATA_PATH"
SECRETS = {MAIN_PATH: object_store.SECRET_NAME, ANALYST_PATH: "hub_analyst_lake_data"}


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


def _storage(con, data_path: str, setting: str, key: Callable[[], settings.LakeS3]) -> None:
    """A data path on object storage: httpfs and a secret made from ``key()`` (the hub's key
    where the hub writes or reads the main lake, the analysts' read-only key where they read),
    scoped to that path. A local directory needs neither."""
    if object_store.is_object_store(data_path):
        object_store.prepare(con, data_path, key(), name=SECRETS[setting], setting=setting)


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
        # The hub's key for both data paths on object storage: it reads the main lake and
        # writes the analyst lake (the analysts' key may only read the latter).
        _storage(con, main_data, MAIN_PATH, settings.lake_s3)
        _storage(con, data, ANALYST_PATH, lambda: settings.lake_s3(f"{ANALYST_PATH}={data}"))
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
    """Safe mode with one exception: the attached lake's own data files stay readable (a
    directory, or an ``s3://`` prefix read through httpfs and the secret made before)."""
    con.execute(f"SET allowed_directories = [{literal(data_path)}]")
    if timezone:
        con.execute(f"SET TimeZone = {literal(timezone)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _reader(tier: str, timezone: str | None) -> tuple[duckdb.DuckDBPyConnection, str]:
    settings.load()
    if tier == ANALYST:
        catalog, data = settings.analyst_lake_catalog(), settings.analyst_lake_data_path()
        setting, key = ANALYST_PATH, settings.analyst_lake_s3
    else:
        catalog, data = settings.lake_catalog(), settings.lake_data_path()
        setting, key = MAIN_PATH, settings.lake_s3
    config = {k: v for k, v in SAFE_CONFIG.items() if k != "enable_external_access"}
    config.pop("lock_configuration")
    con = duckdb.connect(config=config)
    try:
        extensions.load(con)
        _storage(con, data, setting, key)
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
    extensions loaded, on object storage the analysts' secret made, the lake attached read-only,
    then ``.safe_mode``. These commands reach the shell through ``-init`` from a pipe this
    process leaves open for it (``os.execv``), never as arguments: a secret in argv would be
    in every user's ``ps``, and in a file it would outlive the shell."""
    analyst_connection().close()
    catalog, data = settings.analyst_lake_catalog(), settings.analyst_lake_data_path()
    commands = [f"LOAD {literal(str(extensions.extension_file(n)))};" for n in extensions._WHEELS]
    if object_store.is_object_store(data):
        secret = object_store.secret_statement(
            data, settings.analyst_lake_s3(), SECRETS[ANALYST_PATH], ANALYST_PATH
        )
        commands.append(secret + ";")
    commands += [
        attach_sql(ANALYST, catalog, data, read_only=True) + ";",
        f"USE {ANALYST};",
        f"SET allowed_directories = [{literal(data)}];",
        ".safe_mode",  # external access off, dot commands refused, config locked
    ]
    return [str(duckdb_binary()), "-init", _private_pipe("\n".join(commands) + "\n")]


def _private_pipe(text: str) -> str:
    """A ``/dev/fd/N`` path the next program (after ``os.execv``) reads ``text`` from: a pipe,
    written and closed here, its read end inherited. Nothing touches the disk."""
    payload = text.encode()
    if len(payload) > 60_000:  # a pipe holds 64 KiB; the commands are about 1 KiB
        raise ValueError("the shell's start-up commands do not fit a pipe")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, payload)
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    return f"/dev/fd/{read_end}"
