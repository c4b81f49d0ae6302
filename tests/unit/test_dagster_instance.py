"""``hub demo`` / ``hub ui`` / ``make`` put the repo's dagster.yaml in DAGSTER_HOME without ever
replacing an operator's instance file (pipelines/dagster_instance.py): real files, the real CLI
function and the real module command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from base.paths import REPO
from pipelines import cli, dagster_instance
from pipelines.dagster_instance import hub_copy, prepare, repo_file, written_by_hub

POOLS = ["duckdb_warehouse", "lake_merge_luonan"]


def _no_storage() -> dict[str, int]:
    return {}


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_absent_the_repo_file_is_written_owner_only(home, capsys):
    assert cli._dagster_home() == home
    written = (home / "dagster.yaml").read_bytes()
    assert written == hub_copy(repo_file()) and written.endswith(repo_file())
    assert stat.S_IMODE((home / "dagster.yaml").stat().st_mode) == 0o600
    assert os.environ["DAGSTER_HOME"] == str(home)
    assert f"wrote the repo's dagster.yaml to {home / 'dagster.yaml'}" in capsys.readouterr().out
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]  # no temp file left


@pytest.mark.parametrize(
    "earlier",
    [
        pytest.param(lambda: repo_file(), id="plain copy by make or an earlier hub"),
        pytest.param(
            lambda: hub_copy(b"concurrency:\n  pools:\n    default_limit: 1\n"),
            id="the hub's copy of an older repo file",
        ),
        pytest.param(
            lambda: (
                b"# an older header\n"
                + hub_copy(b"telemetry:\n  enabled: false\n")[len(dagster_instance.HEADER) :]
            ),
            id="an older header's wording",
        ),
    ],
)
def test_the_hubs_earlier_copy_is_refreshed(home, capsys, earlier):
    (home / "dagster.yaml").write_bytes(earlier())
    cli._dagster_home()
    assert (home / "dagster.yaml").read_bytes() == hub_copy(repo_file())
    assert "refreshed the hub's copy" in capsys.readouterr().out


def test_the_current_copy_is_left_alone_and_nothing_is_said(home, capsys):
    (home / "dagster.yaml").write_bytes(hub_copy(repo_file()))
    before = (home / "dagster.yaml").stat().st_mtime_ns
    os.utime(home / "dagster.yaml", ns=(before - 10**9, before - 10**9))
    assert prepare(home, POOLS, _no_storage).action == "current"
    assert (home / "dagster.yaml").stat().st_mtime_ns == before - 10**9  # not rewritten
    cli._dagster_home()
    assert capsys.readouterr().out == ""


def test_the_operators_postgres_file_is_kept_byte_for_byte_and_named(home, capsys):
    operator = (REPO / "deploy" / "dagster.postgres.yaml").read_bytes()
    (home / "dagster.yaml").write_bytes(operator)
    cli._dagster_home()
    assert (home / "dagster.yaml").read_bytes() == operator
    out = capsys.readouterr().out
    assert f"keeping your {home / 'dagster.yaml'} as it is" in out.replace("\n", "")
    assert "warning" not in out  # it has the pools' default limit


def test_an_edited_hub_copy_is_the_operators(home):
    edited = hub_copy(repo_file()).replace(
        b"default_limit: 1", b"default_limit: 1\n    granularity: op"
    )
    assert not written_by_hub(edited, repo_file())
    (home / "dagster.yaml").write_bytes(edited)
    assert prepare(home, POOLS, _no_storage).action == "kept"
    assert (home / "dagster.yaml").read_bytes() == edited


def test_a_marker_not_at_the_start_of_a_line_or_under_yaml_is_not_the_hubs():
    body = b"telemetry:\n  enabled: false\n"
    copy = hub_copy(body)
    marker_line = copy[len(dagster_instance.HEADER) :]
    assert written_by_hub(marker_line, b"x")  # the header lines themselves are optional
    assert not written_by_hub(b"run_coordinator: {}\n" + marker_line, b"x")
    assert not written_by_hub(b"# note" + marker_line, b"x")


def test_a_symlink_is_never_written_through(home, tmp_path):
    managed = tmp_path / "managed.yaml"
    managed.write_bytes(repo_file())  # even identical to the repo's: it is someone's link
    (home / "dagster.yaml").symlink_to(managed)
    assert prepare(home, POOLS, _no_storage).action == "kept"
    assert (home / "dagster.yaml").is_symlink() and managed.read_bytes() == repo_file()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (b"telemetry:\n  enabled: false\n", "duckdb_warehouse (unlimited), lake_merge_luonan"),
        (b"concurrency:\n  pools:\n    default_limit: 3\n", "duckdb_warehouse (3)"),
        (b"concurrency:\n  default_op_concurrency_limit: 2\n", "lake_merge_luonan (2)"),
        (b"storage: [not, a, mapping\n", "cannot be read as YAML"),
    ],
)
def test_an_operator_file_without_the_pool_limits_is_kept_with_a_warning(home, config, named):
    (home / "dagster.yaml").write_bytes(config)
    result = prepare(home, POOLS, _no_storage)
    assert result.action == "kept" and (home / "dagster.yaml").read_bytes() == config
    warning = result.lines()[-1]
    assert warning.startswith(f"warning: {home / 'dagster.yaml'} lacks") and named in warning


def test_the_older_default_limit_key_of_dagster_counts():
    config = {"concurrency": {"default_op_concurrency_limit": 1}}
    assert dagster_instance.missing(config, POOLS, {}) == []


def test_limits_set_per_pool_in_the_instance_storage_count(home):
    """A file without a default limit, the pools' limits set in the real instance's storage
    (`dagster instance concurrency set`): nothing is missing."""
    import dagster as dg

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.get() as instance:
        for pool in POOLS:
            instance.event_log_storage.set_concurrency_slots(pool, 1)
    assert prepare(home, POOLS).missing == []
    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.set_concurrency_slots("lake_merge_luonan", 2)
    assert "lake_merge_luonan (2)" in prepare(home, POOLS).missing[0]


def test_make_runs_the_same_rules(home, tmp_path):
    """`make dagster-home` (python -m pipelines.dagster_instance): the operator's file is kept
    and the line names it; an absent one is written."""
    operator = b"concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_bytes(operator)
    env = {**os.environ, "DAGSTER_HOME": str(home), "HUB_HOME": str(tmp_path / "hub")}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.dagster_instance"],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"keeping your {home / 'dagster.yaml'}" in done.stdout
    assert (home / "dagster.yaml").read_bytes() == operator
    fresh = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.dagster_instance"],
        capture_output=True, text=True, env={**env, "DAGSTER_HOME": str(fresh)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (fresh / "dagster.yaml").read_bytes() == hub_copy(repo_file())


def test_writing_where_there_was_none_never_replaces_a_file_that_appeared_meanwhile(home):
    """The absent case links its new file into place, which fails on an existing name: an
    operator's file written between the look and the write survives."""
    operator = b"telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_bytes(operator)
    assert (
        dagster_instance._write(home / "dagster.yaml", hub_copy(repo_file()), replace=False)
        is False
    )
    assert (home / "dagster.yaml").read_bytes() == operator
    assert [p.name for p in home.iterdir()] == ["dagster.yaml"]  # its temp file removed
