"""A local PostgreSQL server for the DuckLake catalog, for development (`make postgres`) and tests.

Production points ``HUB_LAKE_CATALOG`` at the city's managed PostgreSQL; this module only runs
a throwaway cluster from Debian's ``postgresql`` package on a private Unix socket (no TCP port
is opened, so nothing outside this machine can reach it). PostgreSQL refuses to run as root, so
when we are root the server runs as the package's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from base.settings import ANALYST_CATALOG_SUFFIX

DEFAULT_PORT = 55432
DATABASE = "hub_lake"
USER = "hub"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def _bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: install Debian's package "
        "(`apt-get install -y postgresql`) or point HUB_LAKE_CATALOG at an existing server"
    )


def _run_as() -> list[str]:
    """Prefix that runs a server command as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable("running as root but there is no `postgres` user") from exc
    return ["runuser", "-u", "postgres", "--"]


def _checked(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed: {(done.stderr or done.stdout).strip()}")


@dataclass(frozen=True)
class LocalPostgres:
    """A cluster in ``root`` listening on the Unix socket ``root/socket/.s.PGSQL.<port>``."""

    root: Path
    port: int = DEFAULT_PORT

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def dsn(self) -> str:
        """libpq connection string, as DuckLake's ``ducklake:postgres:`` prefix takes it."""
        return f"host={self.socket_dir} port={self.port} user={USER} dbname={DATABASE}"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*_run_as(), str(_bindir() / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def running(self) -> bool:
        return self.data.exists() and self._ctl("status", check=False).returncode == 0

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        """Initialise (first time), start and create the catalog database; idempotent."""
        bindir, prefix = _bindir(), _run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if prefix:  # the server user must own its folders
            subprocess.run(["chown", "-R", "postgres", str(self.root)], check=True)
        if not (self.data / "PG_VERSION").exists():
            _checked(
                [*prefix, str(bindir / "initdb"), "-D", str(self.data), "-U", USER,
                 "-A", "trust", "--no-sync", "-E", "UTF8"],
                f"initdb of {self.data}",
            )  # fmt: skip
        if not self.running():
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses='' "
                "-c max_connections=100 -c fsync=off"
            )
            started = self._ctl("-o", options, "-l", str(self.root / "server.log"), "-w",
                                "-t", str(int(timeout)), "start", check=False)  # fmt: skip
            if started.returncode != 0:
                raise PostgresUnavailable(
                    f"PostgreSQL in {self.data} did not start: "
                    f"{(started.stderr or started.stdout).strip()} (see {self.root / 'server.log'})"
                )
        deadline = time.monotonic() + timeout
        while True:
            created = subprocess.run(
                [*prefix, str(bindir / "createdb"), "-h", str(self.socket_dir),
                 "-p", str(self.port), "-U", USER, DATABASE],
                capture_output=True, text=True,
            )  # fmt: skip
            if created.returncode == 0 or "already exists" in created.stderr:
                self.database(DATABASE + ANALYST_CATALOG_SUFFIX)  # the analyst lake's catalog
                return self
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"createdb failed: {created.stderr.strip()}")
            time.sleep(0.2)

    def database(self, name: str) -> str:
        """Create database ``name`` (if new) on this server and return its DSN: one lake each."""
        created = subprocess.run(
            [*_run_as(), str(_bindir() / "createdb"), "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", USER, name],
            capture_output=True, text=True,
        )  # fmt: skip
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise PostgresUnavailable(f"createdb {name} failed: {created.stderr.strip()}")
        return f"host={self.socket_dir} port={self.port} user={USER} dbname={name}"

    def recreate_database(self, name: str) -> str:
        """Drop database ``name`` (if it exists) and create it empty; its DSN."""
        _checked(
            [*_run_as(), str(_bindir() / "dropdb"), "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", USER, "--if-exists", "--force", name],
            f"dropdb {name}",
        )  # fmt: skip
        return self.database(name)

    def stop(self) -> None:
        if self.running():
            self._ctl("-m", "fast", "stop", check=False)


def default_root() -> Path:
    """Where the local server of this HUB_HOME lives: ``HUB_HOME/postgres``; when we are root
    the server runs as ``postgres``, which cannot enter the owner-only HUB_HOME, so it lives in
    ``/var/tmp/hub-postgres-<hash of HUB_HOME>`` instead (its data folder is the server's own,
    0700, as initdb makes it)."""
    import hashlib

    from base.paths import hub_home

    home = hub_home().resolve()
    if not _run_as():
        return home / "postgres"
    root = Path("/var/tmp") / f"hub-postgres-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    root.mkdir(mode=0o755, exist_ok=True)
    root.chmod(0o755)
    return root


def catalog_for_demo() -> str:
    """Make sure the demo on the DuckLake backend has a catalog; returns what was done.

    ``HUB_LAKE_CATALOG`` set: that server is used as it is. Unset: the local server under
    ``HUB_HOME/postgres`` is started (created the first time) with its catalog database, and
    its connection string is put in the environment for this process and the step processes
    it starts (``make postgres`` does the same for a shell)."""
    from base import settings

    if os.environ.get("HUB_LAKE_CATALOG"):
        return f"DuckLake catalog: {settings.redact_dsn(settings.lake_catalog())}"
    server = LocalPostgres(default_root()).start()
    if not Path(settings.lake_data_path()).exists():
        # a new HUB_HOME (or `make clean`): the lake starts afresh, never pointing at data
        # files that are gone (the catalog remembers its data path and files)
        server.recreate_database(DATABASE)
    if not Path(settings.analyst_lake_data_path()).exists() and not os.environ.get(
        "HUB_ANALYST_LAKE_CATALOG"
    ):  # the same for the analyst lake (warehouse.lake_publish) beside it
        server.recreate_database(DATABASE + ANALYST_CATALOG_SUFFIX)
    os.environ["HUB_LAKE_CATALOG"] = server.dsn
    return (
        f"DuckLake catalog: a local PostgreSQL under {server.root} ({server.dsn}); "
        f"data files in {settings.lake_data_path()}"
    )


def use_local_catalog() -> str | None:
    """For ``hub sql`` / ``make sql`` after ``make demo`` on the lake: when ``HUB_LAKE_CATALOG``
    is unset but the demo's local server exists for this HUB_HOME, start it if needed and use
    its catalog (returns a line saying so). None when there is no such server: the settings'
    own error then says what to set."""
    if os.environ.get("HUB_LAKE_CATALOG"):
        return None
    server = LocalPostgres(default_root())
    if not (server.data / "PG_VERSION").exists():
        return None
    server.start()
    os.environ["HUB_LAKE_CATALOG"] = server.dsn
    return f"DuckLake catalog: the demo's local PostgreSQL under {server.root}"


def main(argv: list[str] | None = None) -> None:
    """``python -m pipelines.lake.postgres start|stop|status`` (the server of :func:`default_root`)."""
    import sys

    action = (argv or sys.argv[1:] or ["status"])[0]
    server = LocalPostgres(default_root())
    if action == "start":
        server.start()
        print(f"PostgreSQL running; catalog DSN: {server.dsn}")
        print(f"HUB_LAKE_CATALOG='{server.dsn}'")
    elif action == "stop":
        server.stop()
        print("PostgreSQL stopped")
    else:
        print("running" if server.running() else "not running")


if __name__ == "__main__":
    main()
