"""Seven step processes may prepare the DuckLake extensions at once (the first lake connect of
a parallel sync): none may rename the file from under another (found by bench/lake_city.py)."""

import subprocess
import sys

from warehouse.lake import extensions

# Each child loads the module by path (stdlib + duckdb only), not the whole ``warehouse``
# package: plain processes, no multiprocessing pool. A pool (fork, then spawn) hung twice under
# pytest-xdist with a child waiting on the pool's pipe at 0 CPU; a timeout now fails instead.
_CHILD = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("hub_extensions", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
for _ in range(8):
    module.install(Path(sys.argv[2]), Path(sys.argv[3]))
"""


def test_concurrent_installs_of_an_extension_file(tmp_path):
    source = tmp_path / "shipped.duckdb_extension"
    source.write_bytes(b"\x00" * (4 << 20))
    target = tmp_path / "loadable" / "postgres_scanner.duckdb_extension"
    args = [sys.executable, "-c", _CHILD, extensions.__file__, str(source), str(target)]
    children = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    try:
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err  # a rename that lost its file raises in a child
    finally:
        for child in children:
            child.kill()
    assert target.read_bytes() == source.read_bytes()
    assert not list(target.parent.glob("*.tmp"))
