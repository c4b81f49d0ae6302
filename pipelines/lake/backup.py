"""``hub backup`` / ``hub restore`` on the DuckLake backend (runbook, "Backup and restore").

A lake is two things that must agree: its catalog (a PostgreSQL database: snapshots, which
Parquet file holds which rows, small inserts inlined as rows) and the Parquet files under its
data path. A backup is a directory, owner-only like everything the hub writes::

    hub-<time>.lake/
      catalog.dump     pg_dump -Fc of the catalog database
      data/...         every data and delete file the catalog references, same layout
      manifest.json    format, snapshot, original data path, files and sizes (written last)

Consistency: the dump and the copy are both taken under the lake's write lock
(``warehouse.lake.locks``), which every write transaction of the hub holds from before BEGIN to
after COMMIT, so no commit lands between them; the files copied are exactly those the dumped
catalog references (a referenced file missing from the data path fails the backup). Files the
catalog does not reference (left by a transaction that never committed) are not copied.

Restore puts the files in the configured data path first (a DuckLake file is never rewritten:
its name is unique), then the catalog with ``pg_restore --clean --single-transaction``, then
removes the files the restored catalog does not reference, and republishes the analyst lake
from it, all under the write lock. A crash at any point leaves a usable lake (the old catalog
with its files, or the restored one with its files). It refuses a target lake that is not empty
unless ``force``.

PostgreSQL's client tools come from Debian's ``postgresql`` package (``make system-deps``); the
catalog's password, if any, from ``PGPASSWORD`` / ``~/.pgpass`` as for the hub itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from base import settings
from base.errors import HubError
from warehouse.lake import locks
from warehouse.lock import DEFAULT_TIMEOUT_SECONDS

FORMAT = "hub-lake-backup/1"
CATALOG_DUMP = "catalog.dump"
DATA = "data"
MANIFEST = "manifest.json"


class LakeBackupError(HubError):
    """A lake backup or restore could not be made; the message says why and what to do."""


@dataclass
class LakeBackup:
    """What a backup holds (its manifest)."""

    path: Path
    snapshot: int
    data_path: str
    files: dict[str, int] = field(default_factory=dict)  # path under data/ -> bytes
    latest_syncs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(self.files.values()) + (self.path / CATALOG_DUMP).stat().st_size


def _tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore`` of the newest PostgreSQL installed (the server package's
    own, which dumps servers up to its major version), else the one on PATH."""
    from pipelines.lake.postgres import PostgresUnavailable, _bindir

    try:
        candidate = _bindir() / name
        if candidate.exists():
            return str(candidate)
    except PostgresUnavailable:
        pass
    found = shutil.which(name)
    if not found:
        raise LakeBackupError(
            f"{name} not found: install Debian's `postgresql` package (`make system-deps`)"
        )
    return found


def _run(command: list[str], what: str) -> str:
    catalog = settings.lake_catalog()
    # a table another session keeps locked (a DuckDB process with the lake attached, idle in a
    # transaction) makes pg_restore wait: give up after the hub's usual lock timeout instead
    timeout = int(float(os.environ.get("HUB_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)))
    env = {**os.environ, "PGOPTIONS": f"-c lock_timeout={timeout}s", "PGAPPNAME": "hub backup"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().replace(catalog, "<catalog>")
        advice = (
            " (another process keeps the catalog's tables: stop Dagster's daemon, webserver "
            "and running syncs, then try again)"
            if "lock timeout" in message
            else ""
        )
        raise LakeBackupError(f"{what} failed: {settings.redact_dsn(message)}{advice}")
    return done.stdout


def _local_data_path() -> Path:
    data_path = settings.lake_data_path()
    if "://" in data_path:
        raise LakeBackupError(
            f"the lake's data path is {data_path}: `hub backup`/`hub restore` copy a local data "
            "path only; on object storage back up the bucket with the store's own versioning or "
            "replication, and the catalog with pg_dump (docs/engineering/scale-out.md)"
        )
    return Path(data_path)


def _catalog_session():
    import psycopg

    try:
        return psycopg.connect(settings.lake_catalog(), autocommit=True)
    except psycopg.Error as exc:
        raise LakeBackupError(
            f"cannot connect to the lake's catalog {settings.redact_dsn(settings.lake_catalog())}"
            f": {str(exc).strip().splitlines()[0]}. Is its PostgreSQL running, and does the "
            "database exist (createdb)?"
        ) from None


def _has_lake(session) -> bool:
    return session.execute("SELECT to_regclass('ducklake_metadata') IS NOT NULL").fetchone()[0]


def referenced_files(session, data_path: str) -> list[str]:
    """Every data and delete file the catalog references (all snapshots still kept, so time
    travel works from the backup too), as paths relative to ``data_path``."""
    rows = session.execute(
        "SELECT f.path, f.path_is_relative, t.path, t.path_is_relative, s.path, s.path_is_relative"
        " FROM (SELECT table_id, path, path_is_relative FROM ducklake_data_file"
        "       UNION ALL SELECT table_id, path, path_is_relative FROM ducklake_delete_file) f"
        " JOIN ducklake_table t USING (table_id) JOIN ducklake_schema s USING (schema_id)"
    ).fetchall()
    candidates: dict[tuple[str, bool], set[str]] = {}
    for file, file_rel, table, table_rel, schema, schema_rel in rows:
        full = _resolve(data_path, (schema, schema_rel), (table, table_rel), (file, file_rel))
        if not full.startswith(data_path):
            raise LakeBackupError(
                f"the catalog references a file outside the data path ({full}): not supported"
            )
        candidates.setdefault((file, file_rel), set()).add(full[len(data_path) :])
    out = []
    root = Path(data_path)
    for paths in candidates.values():  # a renamed table may list more than one folder
        existing = [p for p in sorted(paths) if (root / p).is_file()]
        if not existing:
            raise LakeBackupError(
                f"the catalog references {sorted(paths)[0]}, missing from the data path "
                f"{data_path}: the lake is damaged; nothing was backed up"
            )
        out.append(existing[0])
    return sorted(out)


def _resolve(data_path: str, *parts: tuple[str | None, bool]) -> str:
    """A file's path from (path, is_relative) of its schema, table and file, as DuckLake joins
    them: a relative path is relative to the one before it, the schema's to the data path."""
    full = data_path
    for path, relative in parts:
        full = full + (path or "") if relative else (path or "")
    return full


def _latest_syncs() -> list[tuple[str, str]]:
    import warehouse

    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT county_code, max(sync_run_id) FROM ops.watermark GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def _copy(source: Path, target: Path) -> None:
    """Copy one file owner-only, atomically (a reader never sees half a Parquet file)."""
    settings.private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.chmod(settings.PRIVATE_FILE)
    os.replace(tmp, target)


def backup(dest: Path) -> LakeBackup:
    """Write a backup of the configured lake to the directory ``dest`` (must not exist)."""
    data_root = _local_data_path()
    data_path = settings.lake_data_path()
    if dest.exists():
        raise LakeBackupError(f"{dest} exists: choose a new name (a backup is a directory)")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    settings.private_dir(tmp)
    try:
        with locks.writer(purpose="backup"), _catalog_session() as session:
            if not _has_lake(session):
                raise LakeBackupError(
                    f"no lake in the catalog {settings.redact_dsn(settings.lake_catalog())}: "
                    "nothing to back up"
                )
            snapshot = session.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
            files = referenced_files(session, data_path)
            _run(
                [_tool("pg_dump"), "-w", "-Fc", "-f", str(tmp / CATALOG_DUMP),
                 "-d", settings.lake_catalog()],
                "pg_dump of the lake's catalog",
            )  # fmt: skip
            for name in files:
                _copy(data_root / name, tmp / DATA / name)
            latest = _latest_syncs()
        (tmp / CATALOG_DUMP).chmod(settings.PRIVATE_FILE)
        made = LakeBackup(
            dest, int(snapshot[0]), data_path,
            {n: (tmp / DATA / n).stat().st_size for n in files}, latest,
        )  # fmt: skip
        _run([_tool("pg_restore"), "--list", str(tmp / CATALOG_DUMP)], "reading the dump back")
        _write_manifest(tmp, made)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return made


def _write_manifest(folder: Path, made: LakeBackup) -> None:
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "snapshot": made.snapshot,
        "data_path": made.data_path,
        "catalog": settings.redact_dsn(settings.lake_catalog()),
        "files": made.files,
        "latest_syncs": made.latest_syncs,
    }
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    path.chmod(settings.PRIVATE_FILE)


def read_backup(source: Path) -> LakeBackup:
    """The backup in directory ``source``, checked complete (every file there, sizes as written)."""
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LakeBackupError(
            f"{source} is not a lake backup (no readable {MANIFEST}: {exc})"
        ) from None
    if manifest.get("format") != FORMAT:
        raise LakeBackupError(f"{source} is not a lake backup of format {FORMAT}")
    if not (source / CATALOG_DUMP).is_file():
        raise LakeBackupError(f"{source} has no {CATALOG_DUMP}: incomplete backup")
    for name, size in manifest["files"].items():
        path = source / DATA / name
        if not path.is_file() or path.stat().st_size != size:
            raise LakeBackupError(f"{source}: {DATA}/{name} is missing or changed size")
    return LakeBackup(
        source, manifest["snapshot"], manifest["data_path"], manifest["files"],
        [tuple(x) for x in manifest["latest_syncs"]],
    )  # fmt: skip


@dataclass
class Restored:
    backup: LakeBackup
    replaced: bool  # the target lake was not empty (--force)
    removed_files: int  # files of the replaced lake the restored catalog does not reference
    published: str  # what became of the analyst lake


def restore(source: Path, force: bool = False) -> Restored:
    """Put the backup in ``source`` in place of the configured lake (catalog and data path);
    see the module docstring."""
    made = read_backup(source)
    data_root = _local_data_path()
    data_path = settings.lake_data_path()
    with locks.writer(purpose="restore"), _catalog_session() as session:
        present = [p for p in data_root.rglob("*") if p.is_file()] if data_root.exists() else []
        not_empty = _has_lake(session) or bool(present)
        if not_empty and not force:
            raise LakeBackupError(
                f"the target lake is not empty (catalog "
                f"{settings.redact_dsn(settings.lake_catalog())}"
                f"{' holds a lake' if _has_lake(session) else ''}; {len(present)} file(s) under "
                f"{data_path}): `hub restore --force` replaces it, or point HUB_LAKE_CATALOG and "
                "HUB_LAKE_DATA_PATH at an empty database and folder"
            )
        for name in made.files:  # 1. the files (a name already there is that very file)
            target = data_root / name
            if not (target.is_file() and target.stat().st_size == made.files[name]):
                _copy(source / DATA / name, target)
        before = _ducklake_tables(session)
        _run(  # 2. the catalog, all or nothing
            [_tool("pg_restore"), "-w", "--clean", "--if-exists", "--no-owner", "--no-acl",
             "--single-transaction", "--exit-on-error", "-d", settings.lake_catalog(),
             str(source / CATALOG_DUMP)],
            "pg_restore of the lake's catalog",
        )  # fmt: skip
        restored = set(_ducklake_tables(session))
        dumped = _dumped_tables(source / CATALOG_DUMP)
        for table in sorted((set(before) | restored) - dumped):  # later snapshots' inlined rows
            session.execute(f'DROP TABLE IF EXISTS "{table}"')
        if made.data_path != data_path:  # restored elsewhere: the catalog follows the files
            session.execute(
                "UPDATE ducklake_metadata SET value = %s WHERE key = 'data_path' AND scope IS NULL",
                (data_path,),
            )
        keep = {data_root / n for n in made.files}
        removed = 0
        for path in present:  # 3. the replaced lake's files, now referenced by nothing
            if path not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        published = _republish()
    return Restored(made, not_empty, removed, published)


def _republish() -> str:
    """Publish the analyst lake from the restored lake before anything else commits: its last
    publish read a snapshot the restored lake may not have (or has with other contents once new
    commits reuse its number), and a publish from a lake behind its last one rewrites every
    table (warehouse.lake_publish)."""
    from pipelines.lake import tiers

    try:
        result = tiers.publish()
    except Exception as exc:  # the restore stands; say what to do about the analyst tier
        return (
            f"NOT republished ({type(exc).__name__}: {settings.redact_dsn(str(exc))[:300]}): "
            "run the sync_city job's snapshot step before the next county sync"
        )
    return f"republished from snapshot {result.source_snapshot} ({len(result.rewritten)} tables)"


def _ducklake_tables(session) -> list[str]:
    return [
        name
        for (name,) in session.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'ducklake%'"
        ).fetchall()
    ]


def _dumped_tables(dump: Path) -> set[str]:
    """The tables in a dump, from ``pg_restore --list`` lines such as
    ``215; 1259 16390 TABLE public ducklake_column hub``."""
    listing = _run([_tool("pg_restore"), "--list", str(dump)], "reading the dump")
    tables = set()
    for line in listing.splitlines():
        parts = line.split()
        if line.startswith(";") or "TABLE" not in parts:
            continue
        at = parts.index("TABLE")
        if len(parts) > at + 2 and parts[at + 1] != "DATA":
            tables.add(parts[at + 2])
    return tables
