"""Load DuckLake's DuckDB extensions from the pinned PyPI wheels, never from the network.

The wheels ``duckdb-extension-ducklake``, ``duckdb-extension-postgres`` and (for a data path on
object storage) ``duckdb-extension-httpfs`` ship the compiled ``.duckdb_extension`` files. DuckDB identifies an extension by its file name, and the postgres
one must be loaded as ``postgres_scanner.duckdb_extension`` (the name it registers itself
under), so it is copied once under that name into a private folder beside the venv's copy.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import duckdb

#: extension name -> (Python package of its wheel, file name DuckDB accepts)
_WHEELS = {
    "postgres_scanner": ("duckdb_extension_postgres", "postgres.duckdb_extension"),
    "ducklake": ("duckdb_extension_ducklake", "ducklake.duckdb_extension"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs.duckdb_extension"),  # s3:// data paths
}


class ExtensionMissing(RuntimeError):
    """The wheel that ships an extension is not installed."""


def extension_file(name: str) -> Path:
    """The loadable file of extension ``name`` (``ducklake``, ``postgres_scanner``, ``httpfs``)."""
    package, shipped = _WHEELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionMissing(
            f"DuckDB extension {name!r} needs the wheel {package.replace('_', '-')} "
            f"(pinned in requirements.lock); install it with `make venv`"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob(f"extensions/v{duckdb.__version__}/{shipped}"))
    if not found:
        raise ExtensionMissing(f"{package} has no {shipped} for DuckDB {duckdb.__version__}")
    target = root / "loadable" / f"{name}.duckdb_extension"
    if not target.exists() or target.stat().st_size != found[0].stat().st_size:
        install(found[0], target)
    return target


def install(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically. The temp name is this process's own: seven
    step processes may prepare the file at once, and a shared temp name let one rename the
    file from under another (found by bench/lake_city.py)."""
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)  # atomic: concurrent workers never load a half-copied file


def load(con: duckdb.DuckDBPyConnection) -> None:
    """Load the postgres scanner and DuckLake into ``con`` (idempotent)."""
    for name in ("postgres_scanner", "ducklake"):
        con.execute(f"LOAD '{extension_file(name)}'")


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """Load httpfs into ``con`` (a lake whose data path is on object storage)."""
    con.execute(f"LOAD '{extension_file('httpfs')}'")
