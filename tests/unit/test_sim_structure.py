"""The simulator's shape: small modules and functions, and arrows that only point down.

Sizes: no source file over 600 lines, no function over 80 lines (the team's limits), anywhere
outside the tests.
Imports: the simulator stands on ``seeds`` and the canonical columns only; it never imports the
hub (``pipelines``), so a test double cannot come to depend on what it stands in for.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: every source folder outside tests/ (the limits hold for the whole tree)
SCOPE = ["base", "seeds", "schemas", "warehouse", "simulator", "pipelines", "bench", "scripts"]
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80


def _sources() -> list[Path]:
    files: list[Path] = []
    for entry in SCOPE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    # not ours: hidden folders such as bench/.dlt-venv (dlt_vs_hub.py's git-ignored venv)
    return [f for f in files if not any(p.startswith(".") for p in f.relative_to(ROOT).parts)]


def test_files_and_functions_stay_small():
    too_long = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        if text.count("\n") > MAX_FILE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "over the limits:\n" + "\n".join(too_long)


def test_the_simulator_never_imports_the_hub():
    """Every simulator module imported in a fresh interpreter leaves no ``pipelines`` module."""
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((ROOT / "simulator").rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
        "('pipelines', 'schemas', 'seeds', 'simulator')}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('schemas.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "['schemas', 'seeds', 'simulator']", out
    assert out[1] == "['schemas.columns']", out
