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
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _runtime_nodes(tree):
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


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)  # the else-branch runs
            continue
        todo.extend(ast.iter_child_nodes(node))


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


def _module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from pkg import sub`` counts as an
    arrow to ``pkg`` too: it runs the package's ``__init__`` first)."""
    modules = {
        _module(f): f
        for package in ("base", "seeds", "schemas", "warehouse", "simulator", "pipelines")
        for f in _sources(package)
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_through_a_circle():
    assert _cycles(_module_graph()) == []


def test_the_cycle_check_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_warehouse_imports_nothing_above_it():
    assert _offending("warehouse", ("pipelines", "simulator")) == {}
