"""The warehouse as a package (issue 14): its SQL ships beside it as package data, the one
transaction helper, named statements, and the size limits of the renovation."""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

import duckdb
import pytest

import warehouse
from warehouse import statements
from warehouse.transaction import transaction

PACKAGE = Path(warehouse.__file__).resolve().parent
REPO = PACKAGE.parent


def test_every_sql_file_is_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert "warehouse*" in config["setuptools"]["packages"]["find"]["include"]
    globs = config["setuptools"]["package-data"]["warehouse"]
    sql = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.sql")]
    assert len(sql) > 20
    unshipped = [f for f in sql if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not unshipped, unshipped


def test_sql_is_read_from_the_package_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert statements.MIGRATIONS_DIR == PACKAGE / "migrations"
    assert statements.sql("ops/run_log.sql", "watermarks").startswith("SELECT name, value")
    con = duckdb.connect()
    assert warehouse.migrate(con)[0] == "001_init.sql"


def test_named_statements_are_unique_and_every_call_names_one():
    """Each ``-- name:`` appears once per file, and every statement the code runs exists."""
    for path in (PACKAGE / "sql").rglob("*.sql"):
        names = re.findall(r"^--\s*name:\s*(\w+)\s*$", path.read_text("utf-8"), re.M)
        assert len(names) == len(set(names)), path
    constants = {"CHECKS_SQL": "checks/asset_checks.sql", "SYNC_SQL": "sync/sync.sql"}
    constants["SEED_SQL"] = "ops/region_seed.sql"
    constants["DELTA_SQL"] = "marts/delta.sql"  # warehouse/mart_delta.py
    call = re.compile(
        r'(?:run|run_sql|batch\.run|sql)\(\s*(?:con,\s*)?("[\w/.]+"|[A-Z_]+),\s*"(\w+)"'
    )
    sources = [*PACKAGE.glob("*.py"), REPO / "pipelines/sync.py", REPO / "pipelines/defs/checks.py"]
    seen = 0
    for source in sources:
        for file, name in call.findall(source.read_text("utf-8")):
            file = constants.get(file, file.strip('"'))
            assert name in statements.statements(file), (source.name, file, name)
            seen += 1
    assert seen > 40


def test_transaction_commits_or_rolls_back_keeping_the_original_error(caplog):
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError), transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
        1 / 0  # noqa: B018
    assert con.execute("SELECT list(x) FROM t").fetchone()[0] == [1]
    # the rollback itself fails (no transaction is active): logged, the original error raised
    with pytest.raises(KeyError, match="original"), transaction(con):
        con.execute("COMMIT")
        raise KeyError("original")
    assert "ROLLBACK failed" in caplog.text


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("folder", ["warehouse", "schemas"])
def test_modules_under_600_lines_and_functions_under_80(folder):
    too_long = []
    for path in sorted((REPO / folder).glob("*.py")):
        lines = len(path.read_text("utf-8").splitlines())
        if lines > 600:
            too_long.append((path.name, lines))
        too_long += [(path.name, f, n) for f, n in _functions(path) if n > 80]
    assert not too_long, too_long


def test_begin_commit_rollback_are_written_once():
    """Only warehouse/transaction.py opens, commits or rolls back a transaction."""
    pattern = re.compile(r"""execute\(\s*["'](BEGIN|COMMIT|ROLLBACK)["']""")
    sources = [*PACKAGE.glob("*.py"), *(REPO / "pipelines").rglob("*.py")]
    copies = [
        p.name
        for p in sources
        if p.name != "transaction.py" and pattern.search(p.read_text("utf-8"))
    ]
    assert not copies, copies
