"""Layers only point down (issue 14), checked from the source's own imports with ``ast``:

    seeds  <-  schemas  <-  pipelines (connectors/<kind> -> connectors.registry, http, landing)
                              ^
    simulator (test double) --+  registers itself as the demo connection source; never imported

Every import counts, including ones inside functions: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return files


def _offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in _sources(package):
        bad = sorted(
            m for m in imports_of(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if bad:
            out[str(path.relative_to(REPO))] = bad
    return out


#: Product code: the pipeline, and the warehouse package once its SQL moves there (issue 14).
PRODUCT = ["pipelines", *(["warehouse"] if (REPO / "warehouse" / "__init__.py").exists() else [])]


@pytest.mark.parametrize("package", PRODUCT)
def test_product_code_never_imports_the_simulator(package):
    assert _offending(package, ("simulator",)) == {}


@pytest.mark.parametrize("package", ["seeds", "base", "schemas"])
def test_the_lower_floors_import_neither_pipelines_nor_the_simulator(package):
    assert _offending(package, ("pipelines", "simulator")) == {}


def test_the_simulator_does_not_reach_into_the_pipeline():
    assert _offending("simulator", ("pipelines",)) == {}


def test_the_base_never_imports_a_kind():
    """The HTTP plumbing, landing, the connection sources and the registry know no kind: the
    kinds register themselves (the circle http -> clients -> http/landing is gone)."""
    for name in ("http.py", "landing.py", "connections.py", "connectors/registry.py"):
        kinds = {
            m
            for m in imports_of(REPO / "pipelines" / name)
            if m.startswith("pipelines.connectors.")
            and not m.startswith("pipelines.connectors.registry")
        }
        assert kinds == set(), name
    assert not any(
        m.startswith("pipelines.http") for m in imports_of(REPO / "pipelines" / "landing.py")
    )


def test_a_kind_imports_no_other_kind():
    kinds = [
        p.name
        for p in (REPO / "pipelines" / "connectors").iterdir()
        if (p / "__init__.py").exists()
    ]
    assert {"bigdata", "battle", "workbook"} <= set(kinds)
    for kind in kinds:
        others = tuple(f"pipelines.connectors.{k}" for k in kinds if k != kind)
        assert _offending(f"pipelines/connectors/{kind}", others) == {}, kind


def test_the_layer_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    probe = REPO / "pipelines" / "_probe_layers.py"  # not written: parse a string instead
    tree_text = "def f():\n    from simulator import embedded\n    import simulator.wiring\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: tree_text)
    assert {"simulator", "simulator.embedded", "simulator.wiring"} <= imports_of(probe)
