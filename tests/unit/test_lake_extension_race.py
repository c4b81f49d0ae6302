"""Seven step processes may prepare the DuckLake extensions at once (the first lake connect of
a parallel sync): none may rename the file from under another (found by bench/lake_city.py)."""

import multiprocessing
from pathlib import Path

from warehouse.lake import extensions


def _install(paths: tuple[Path, Path]) -> None:
    extensions.install(*paths)


def test_concurrent_installs_of_an_extension_file(tmp_path):
    source = tmp_path / "shipped.duckdb_extension"
    source.write_bytes(b"\x00" * (4 << 20))
    target = tmp_path / "loadable" / "postgres_scanner.duckdb_extension"
    # spawn, not fork: a child forked from a test worker with threads (DuckDB's, polars') can
    # deadlock on a lock one of them held (it did, once, in CI); a timeout turns a hang into a failure
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map_async(_install, [(source, target)] * 64).get(
            timeout=120
        )  # raises if a rename lost its file
    assert target.read_bytes() == source.read_bytes()
    assert not list(target.parent.glob("*.tmp"))
