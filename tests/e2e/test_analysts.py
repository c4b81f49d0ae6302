"""What an analyst gets: the documented queries run on a real snapshot, `hub sql` as a user runs
it, a complete Chinese data dictionary, no PII in `mart`, and a reconciliation that adds up.

One warehouse per module (building it is most of the cost): all seven counties synced through
Dagster at test scale from the real simulator over HTTP, marts and snapshot published; a copy of
that first snapshot is kept for reconciliation; then the simulator's clock moves 30 days and
everything is synced again, so history has a second version of changed households.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest

from base import paths
from pipelines.sql_output import beijing_session
from tests.conftest import TEST_DEFECT_RATE, TEST_SCALE, _county_env_keys
from tests.pii_scan import pii_hits
from warehouse import merge as warehouse_module

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("analysts")]

REPO = paths.REPO
HUB = Path(sys.executable).parent / "hub"
ANALYSTS_DOC = REPO / "docs" / "analysts.md"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYS_AGO = 3  # the first build is placed this many days in the past (see _warehouse_clock)
ADVANCE_DAYS = 30
CJK = re.compile(r"[\u4e00-\u9fff]")

# The literals of the documented as-of query that the test replaces with a real household
# and date of the test warehouse (docs/analysts.md shows the demo's).
DOC_AS_OF_HOUSEHOLD = "6110210010010001"
DOC_AS_OF_DATE = "current_date"


@dataclass(frozen=True)
class Built:
    home: Path
    snapshot: Path  # after the second sync
    initial: Path  # copy of the snapshot after the first sync (source = report, scaled)
    live: Path
    changed_household: str  # a household whose record changed between the two syncs
    earlier_day: date  # a day (Asia/Shanghai) on which the warehouse held its first version
    today: date


@contextmanager
def _environment(values: dict[str, str], remove: list[str]) -> Iterator[None]:
    """monkeypatch.setenv for module scope: set/unset, then restore exactly."""
    saved = dict(os.environ)
    for key in remove:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _warehouse_clock(days_ago: int) -> Iterator[None]:
    """Stamp the merges run inside as if they ran ``days_ago`` days ago.

    History is kept in warehouse time (when a sync committed), and the as-of macros answer per
    calendar day, so a test cannot show "the earlier version on the earlier day" with two syncs
    a minute apart. Only warehouse.merge's wall clock moves (the merge's ``now``); the
    simulator, HTTP, Dagster and DuckDB run for real."""
    real = warehouse_module.datetime

    class Earlier(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - timedelta(days=days_ago)

    warehouse_module.datetime = Earlier
    try:
        yield
    finally:
        warehouse_module.datetime = real


def _sync_everything(instance: dg.DagsterInstance) -> None:
    from pipelines.definitions import defs

    counties_run = defs.resolve_job_def("sync_all_counties").execute_in_process(instance=instance)
    assert counties_run.success
    assert defs.resolve_job_def("sync_city").execute_in_process(instance=instance).success


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Built]:
    from simulator import embedded

    home = tmp_path_factory.mktemp("analysts") / "hub"
    handle = embedded.start_in_thread(seed=7, scale=TEST_SCALE, defect_rate=TEST_DEFECT_RATE)
    try:
        env = {**handle.env(), "HUB_HOME": str(home)}
        remove = ["HUB_WAREHOUSE", "HUB_SNAPSHOT", *_county_env_keys()]
        with _environment(env, remove):
            instance = dg.DagsterInstance.ephemeral()
            with _warehouse_clock(DAYS_AGO):
                _sync_everything(instance)
            initial = home / "initial-snapshot.duckdb"
            shutil.copyfile(paths.snapshot_db(), initial)

            handle.advance(days=ADVANCE_DAYS)
            _sync_everything(instance)
            snapshot, live = paths.snapshot_db(), paths.live_db()
        with duckdb.connect(str(snapshot), read_only=True) as con:
            household, first_from = con.execute(
                """
                SELECT household_no, valid_from FROM core.household_history
                WHERE closed_reason = 'changed' ORDER BY household_no, valid_from LIMIT 1
                """
            ).fetchone()
        yield Built(
            home=home,
            snapshot=snapshot,
            initial=initial,
            live=live,
            changed_household=household,
            earlier_day=first_from.astimezone(SHANGHAI).date(),
            today=datetime.now(UTC).astimezone(SHANGHAI).date(),
        )
    finally:
        handle.stop()


def _query(db: Path, sql: str, params=None) -> list[tuple]:
    """Run ``sql`` in a session as `hub sql` opens it (read-only, Beijing time)."""
    with duckdb.connect(str(db), read_only=True) as con:
        beijing_session(con)
        return con.execute(sql, params or []).fetchall()


# ------------------------------------------------------------------------------------------
# docs/analysts.md: every example query runs; some answers are checked


def _doc_queries() -> list[str]:
    text = ANALYSTS_DOC.read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)]


def _doc_query(title: str) -> str:
    found = [q for q in _doc_queries() if q.splitlines()[0].startswith(f"-- {title}")]
    assert len(found) == 1, f"exactly one documented query titled {title!r}"
    return found[0]


def test_every_documented_query_runs_and_returns_rows(built):
    """As written, on a first sync (what a fresh `make demo` gives) and after 30 simulated days:
    each query runs and returns rows, unless its title says it may not."""
    queries = _doc_queries()
    assert len(queries) >= 12
    failures = []
    for db in (built.initial, built.snapshot):
        for sql in queries:
            title = sql.splitlines()[0]
            try:
                rows = _query(db, sql)
            except duckdb.Error as e:
                failures.append(f"{db.name}: {title}: {e}")
                continue
            if not rows and "may return no rows" not in title:
                failures.append(f"{db.name}: {title}: no rows")
    assert failures == []


def test_documented_luonan_households_by_cause(built):
    rows = _query(built.snapshot, _doc_query("How many households in 洛南县 have not exited yet"))
    by_cause = {r[0]: r[3] for r in rows}
    (direct,) = _query(
        built.snapshot,
        "SELECT count(*) FROM core.household WHERE county_code = '611021' "
        "AND poverty_status <> 'exited' AND deleted_at IS NULL",
    )[0]
    assert direct > 0 and sum(by_cause.values()) == direct
    assert all(CJK.search(r[1]) and r[2] for r in rows), "each cause in Chinese and English"


def test_documented_as_of_query_returns_the_earlier_version(built):
    sql = _doc_query("What did the warehouse say about household")
    assert DOC_AS_OF_HOUSEHOLD in sql and DOC_AS_OF_DATE in sql
    earlier, current = _query(
        built.snapshot,
        """
        SELECT row_hash FROM core.household_history WHERE household_no = ?
        ORDER BY valid_from
        """,
        [built.changed_household],
    )[-2:]
    assert earlier != current

    def as_of(day: date) -> list[tuple]:
        real = sql.replace(DOC_AS_OF_HOUSEHOLD, built.changed_household)
        return _query(built.snapshot, real.replace(DOC_AS_OF_DATE, f"DATE '{day.isoformat()}'"))

    def hash_as_of(day: date) -> list[tuple]:
        return _query(
            built.snapshot,
            "SELECT row_hash FROM core.household_as_of(?::DATE) WHERE household_no = ?",
            [day.isoformat(), built.changed_household],
        )

    assert built.earlier_day < built.today
    assert hash_as_of(built.earlier_day) == [earlier]
    assert hash_as_of(built.today) == [current]
    then, now = as_of(built.earlier_day), as_of(built.today)
    assert len(then) == len(now) == 1 and then != now
    assert as_of(built.earlier_day - timedelta(days=1)) == []  # before the first sync
    assert _query(built.snapshot, sql.replace(DOC_AS_OF_HOUSEHOLD, built.changed_household)) == now


def test_as_of_current_date_is_today_in_beijing_on_a_utc_host(built):
    """On a UTC clock, from 16:00 to 24:00 UTC the UTC date is still yesterday in Beijing's
    terms; `hub sql` sessions run in Beijing time, so "today" is the city's today."""
    probe = (
        "SELECT current_setting('TimeZone') AS tz, "
        "current_date = CAST(timezone('Asia/Shanghai', now()) AS DATE) AS beijing_today, "
        "(SELECT count(*) FROM core.household_as_of(current_date)) AS as_of_today, "
        "(SELECT count(*) FROM core.household WHERE deleted_at IS NULL) AS live"
    )
    result = _hub_sql(built.home, probe, "--format", "json", TZ="UTC")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["tz"] == "Asia/Shanghai" and row["beijing_today"] is True
    assert row["as_of_today"] == row["live"] > 0


def test_ref_code_labels_every_code_and_the_comments_point_to_it(built):
    with duckdb.connect(str(built.snapshot), read_only=True) as con:
        codes = con.execute("SELECT code_list, code, label_zh, label_en FROM ref.code").fetchall()
        comments = [
            c
            for (c,) in con.execute(
                "SELECT comment FROM duckdb_columns() WHERE comment IS NOT NULL"
            ).fetchall()
        ]
    with (REPO / "seeds" / "codes.csv").open(encoding="utf-8") as f:
        seeds = {(r["code_table"], r["code"]) for r in csv.DictReader(f)}
    assert {(r[0], r[1]) for r in codes} == seeds
    assert all(CJK.search(r[2]) and r[3] for r in codes)
    assert not [c for c in comments if "codes.md" in c]
    assert len([c for c in comments if "ref.code, code_list = " in c]) >= 22


def test_documented_city_row_is_the_sum_of_the_counties(built):
    rows = _query(built.snapshot, _doc_query("Households and persons per county"))
    city = [r for r in rows if r[0] == "611000"]
    assert len(city) == 1 and len(rows) == 8
    assert city[0][2] == sum(r[2] for r in rows if r[0] != "611000")
    assert all(r[1] for r in rows), "every county has a name"


# ------------------------------------------------------------------------------------------
# data dictionary


def _dictionary_module():
    spec = importlib.util.spec_from_file_location(
        "gen_data_dictionary", REPO / "scripts" / "gen_data_dictionary.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_and_column_has_a_chinese_comment(built):
    undocumented = _query(
        built.snapshot,
        """
        SELECT schema_name || '.' || table_name, comment FROM duckdb_tables()
        WHERE schema_name IN ('core', 'mart', 'ops', 'ref')
        UNION ALL
        SELECT schema_name || '.' || table_name || '.' || column_name, comment
        FROM duckdb_columns() WHERE schema_name IN ('core', 'mart', 'ops', 'ref')
        """,
    )
    assert len(undocumented) > 300
    missing = [name for name, comment in undocumented if not (comment and CJK.search(comment))]
    assert missing == []


def test_committed_dictionary_is_up_to_date(built):
    gen = _dictionary_module()
    committed = gen.DEFAULT_OUT.read_text(encoding="utf-8")
    from_code = gen.render_fresh()  # migrations + mart SQL on an empty warehouse
    from_snapshot = gen.render_file(built.snapshot)
    assert from_snapshot == from_code, "the dictionary must not depend on the data"
    assert committed == from_code, "run: .venv/bin/python scripts/gen_data_dictionary.py"
    assert "`core.household_as_of(d)`" in committed


# ------------------------------------------------------------------------------------------
# hub sql, run as a user runs it


def _hub_sql(
    home: Path, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_WAREHOUSE", "HUB_SNAPSHOT")}
    env["HUB_HOME"] = str(home)
    env.update(extra)
    return subprocess.run(
        [str(HUB), "sql", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hub_sql_prints_a_table_and_csv(built):
    query = "SELECT county_code, county_name, households FROM mart.county_summary ORDER BY 1"
    expected = _query(built.snapshot, query)
    table = _hub_sql(built.home, query)
    assert table.returncode == 0, table.stderr
    assert "county_name" in table.stdout and "商洛市" in table.stdout
    assert str(expected[0][2]) in table.stdout

    as_csv = _hub_sql(built.home, query, "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["county_code"], r["county_name"], int(r["households"])) for r in rows] == expected


def test_hub_sql_formats(built):
    query = (
        "SELECT county_code AS county_code_of_the_summary_row, county_name, households "
        "FROM mart.county_summary ORDER BY 1"
    )
    expected = _query(built.snapshot, query)
    as_json = _hub_sql(built.home, query, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert [tuple(r.values()) for r in json.loads(as_json.stdout)] == expected

    markdown = _hub_sql(built.home, query, "--format", "markdown")
    lines = markdown.stdout.splitlines()
    assert lines[0] == "| county_code_of_the_summary_row | county_name | households |"
    assert lines[1] == "|---|---|---:|" and len(lines) == 2 + len(expected)

    table = _hub_sql(built.home, query)
    assert "county_code_of_the_summary_row" in table.stdout, "headers are never cut"
    rows = [ln for ln in table.stdout.splitlines() if "611000" in ln]
    cells = rows[0].strip("│ ").split("│")
    households = cells[-1]
    assert households.endswith(str(expected[0][2])) and households.startswith("  ")

    bad = _hub_sql(built.home, query, "--format", "xml")
    assert bad.returncode == 2 and "markdown" in bad.stderr


def test_hub_sql_reports_a_bad_query_plainly(built):
    result = _hub_sql(built.home, "SELECT * FROM mart.no_such_table")
    assert result.returncode == 1
    assert "no_such_table" in result.stderr and "Traceback" not in result.stderr


def test_hub_sql_without_a_snapshot_says_so(tmp_path):
    result = _hub_sql(tmp_path / "empty-hub", "SELECT 1")
    assert result.returncode == 1
    assert "No snapshot" in result.stderr and "make demo" in result.stderr
    assert result.stdout == ""


def test_hub_sql_works_while_a_sync_holds_the_live_warehouse(built):
    holder = duckdb.connect(str(built.live))  # read-write, as a merge step holds it
    try:
        # the lock is real: another process cannot even read the live file now ...
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import duckdb; duckdb.connect({str(built.live)!r}, read_only=True)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode != 0 and "lock" in probe.stderr.lower()
        # ... and hub sql still answers, from the snapshot
        result = _hub_sql(built.home, "SELECT count(*) AS n FROM core.household", "--csv")
        assert result.returncode == 0, result.stderr
        assert int(result.stdout.splitlines()[1]) > 0
    finally:
        holder.close()


def test_hub_sql_without_a_query_opens_the_duckdb_shell_read_only(built):
    answer = _hub_sql(built.home, stdin="SELECT 42 AS answer;\n")
    assert answer.returncode == 0, answer.stderr
    assert "42" in answer.stdout and "answer" in answer.stdout
    write = _hub_sql(built.home, stdin="CREATE TABLE mart.scratch AS SELECT 1 AS x;\n")
    assert "read-only" in (write.stdout + write.stderr)
    assert _query(
        built.snapshot, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'"
    ) == [(0,)]


# ------------------------------------------------------------------------------------------
# hub sql is locked to the analyst snapshot (DuckDB safe mode): every escape is refused


def _landed_file(built: Built) -> Path:
    return next((built.home / "landing").rglob("*.json"))


def _escapes(built: Built, outside: Path) -> dict[str, str]:
    """What an analyst could try, by name: SQL reaching past the analyst snapshot."""
    return {
        "attach the live warehouse": f"ATTACH '{built.live}' AS live (READ_ONLY)",
        "attach the PII snapshot": f"ATTACH '{_pii_snapshot(built)}' AS pii",
        "read_json a landed payload": f"SELECT * FROM read_json('{_landed_file(built)}')",
        "read a landed payload by path": f"SELECT * FROM '{_landed_file(built)}'",
        "read_csv a local file": "SELECT * FROM read_csv('/etc/passwd')",
        "read_text a local file": "SELECT * FROM read_text('/etc/hostname')",
        "glob the hub home": f"SELECT * FROM glob('{built.home}/**')",
        "COPY TO a file": f"COPY (SELECT * FROM core.person) TO '{outside}'",
        "EXPORT DATABASE": f"EXPORT DATABASE '{outside.parent / 'export'}'",
        "turn external access back on": "SET enable_external_access = true",
        "unlock the configuration": "SET lock_configuration = false",
        "load an extension": "LOAD httpfs",
    }


def test_hub_sql_refuses_every_escape(built, tmp_path):
    outside = tmp_path / "stolen.csv"
    for name, statement in _escapes(built, outside).items():
        result = _hub_sql(built.home, statement)
        assert result.returncode == 1, f"{name}: {result.stdout}"
        message = result.stderr.lower()
        assert "permission" in message or "configuration" in message or "lock" in message, (
            f"{name}: {result.stderr}"
        )
    assert not outside.exists() and not (tmp_path / "export").exists()
    # the refused ATTACH took no lock on the live file: the pipeline can still write it
    with duckdb.connect(str(built.live)) as writer:
        assert writer.execute("SELECT count(*) FROM ops.sync_run").fetchone()[0] > 0


def test_make_sql_shell_refuses_every_escape(built, tmp_path):
    outside = tmp_path / "stolen.csv"
    marker = tmp_path / "shell-ran"
    statements = [f"{s};" for s in _escapes(built, outside).values()]
    dot_commands = [
        f".shell touch {marker}",
        f".system touch {marker}",
        f".open {built.live}",
        f".output {outside}",
        f".once {outside}",
        f".read {_landed_file(built)}",
        f".import {_landed_file(built)} stolen",
        f".log {outside}",
    ]
    script = "\n".join([*statements, *dot_commands, "SELECT 'still here' AS alive;", ""])
    result = _hub_sql(built.home, stdin=script)
    output = result.stdout + result.stderr
    assert "still here" in result.stdout  # the shell ran all of it ...
    assert output.count("Permission Error") >= 9  # ... and refused each statement
    assert output.count("cannot be used in -safe mode") == len(dot_commands)
    assert not marker.exists() and not outside.exists()


def test_hub_sql_opens_nothing_but_an_analyst_snapshot(built):
    """HUB_SNAPSHOT pointed at the live warehouse or the PII snapshot is refused, query and shell."""
    for other in (built.live, _pii_snapshot(built)):
        for stdin, args in ((None, ("SELECT count(*) FROM core.person",)), ("SELECT 1;\n", ())):
            result = _hub_sql(built.home, *args, stdin=stdin, HUB_SNAPSHOT=str(other))
            assert result.returncode == 1, result.stdout
            assert "not the analyst snapshot" in result.stderr, result.stderr
            assert result.stdout == ""


# ------------------------------------------------------------------------------------------
# PII: nothing in the analyst snapshot identifies a person


def _pii_hits(
    db: Path, pii_db: Path, schemas: tuple[str, ...], tables: list[str] | None = None
) -> list[tuple]:
    """(kind, cells, an example) of every kind of identifier found in the VALUES of the tables
    of ``db`` (``tests.pii_scan``), against what the PII snapshot ``pii_db`` holds."""
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(f"ATTACH '{pii_db}' AS pii (READ_ONLY)")
        return pii_hits(con, "pii", schemas, tables)


def _pii_snapshot(built: Built) -> Path:
    return built.home / "restricted" / "pii-snapshot.duckdb"


def test_analyst_snapshot_values_hold_no_identifier(built):
    """Every value of every table of the analyst snapshot (core, ops and mart; not the column
    names) is scanned for ID-number and phone shapes and for the names, ID numbers and phones
    the hub holds."""
    assert _pii_hits(built.snapshot, _pii_snapshot(built), ("core", "ops", "mart")) == []


def test_analyst_snapshot_keeps_what_analysts_join_and_count_by(built):
    columns = set(
        _query(
            built.snapshot,
            "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
            "WHERE schema_name IN ('core', 'ops', 'mart')",
        )
    )
    assert {("core.person.person_key",), ("core.person.birth_year",)} <= columns
    assert {("core.person_history.birth_year",), ("mart.person.birth_year",)} <= columns
    people = ("core.person", "core.person_history", "core.cadre")
    households = ("core.household", "core.household_history")
    identifying = {f"{t}.{c}" for t in people for c in ("name", "id_number", "phone")}
    identifying |= {f"{t}.phone" for t in households}
    assert not identifying & {c for (c,) in columns}
    assert not {c for (c,) in columns if "birth_date" in c}
    tables = {t for (t,) in _query(built.snapshot, "SELECT table_name FROM duckdb_tables()")}
    assert "quarantine" not in tables
    # rejects keep rule, column, key and reason; identifying values are masked
    masked = _query(
        built.snapshot,
        "SELECT count(*), count(DISTINCT rule) FROM ops.reject WHERE value = '***' "
        "AND source_key IS NOT NULL AND rule IS NOT NULL AND message IS NOT NULL",
    )[0]
    assert masked[0] > 0 and masked[1] >= 2
    # ... and the same people are found by person_key in both files
    assert _query(built.snapshot, "SELECT count(DISTINCT person_key) FROM core.person") == _query(
        _pii_snapshot(built), "SELECT count(DISTINCT person_key) FROM core.person"
    )


def test_the_pii_scan_finds_pii_where_it_is(built):
    """The scan above would see PII: on the restricted snapshot it flags every kind."""
    pii = _pii_snapshot(built)
    hits = {kind for kind, _, _ in _pii_hits(pii, pii, (), ["core.person", "core.cadre"])}
    assert hits >= {"id-shaped", "phone-shaped", "a held name", "a held id_number", "a held phone"}
    quarantine = {kind for kind, _, _ in _pii_hits(pii, pii, (), ["ops.quarantine", "ops.reject"])}
    assert {"contains a held name", "contains a held id_number"} <= quarantine


def test_the_pii_snapshot_is_owner_only_and_complete(built):
    pii = _pii_snapshot(built)
    assert pii.stat().st_mode & 0o777 == 0o600 and pii.parent.stat().st_mode & 0o777 == 0o700
    held = _query(pii, "SELECT count(*) FROM ops.quarantine")[0][0]
    assert held > 0
    assert _query(pii, "SELECT count(*) FROM core.person WHERE id_number IS NULL") == [(0,)]


# ------------------------------------------------------------------------------------------
# reconciliation with the city's report


def _scaled(figure: float) -> int:
    """The simulator's count for a report figure: round half up of figure x scale."""
    return int((Decimal(str(figure)) * Decimal(str(TEST_SCALE))).to_integral_value(ROUND_HALF_UP))


def test_reconciliation_accounts_for_every_household_and_person(built):
    rows = {
        r[0]: r[1:]
        for r in _query(
            built.initial,
            """
            SELECT figure_id, reported_value, warehouse_value, difference, quarantined,
                   duplicates, deleted, accounted_difference, unexplained_difference, explanation
            FROM mart.reconciliation
            WHERE figure_id SIMILAR TO '(households|persons)_(total|general|dibao|tekun)'
            """,
        )
    }
    assert len(rows) == 8
    for measure in ("households", "persons"):
        # what the source holds: the simulator makes round(figure x scale) per attribute
        source = {
            attr: _scaled(rows[f"{measure}_{attr}"][0]) for attr in ("general", "dibao", "tekun")
        }
        unattributed = 0
        for figure_id in [f"{measure}_{a}" for a in source] + [f"{measure}_total"]:
            reported, value, diff, quarantined, dups, deleted, accounted, unexplained, why = rows[
                figure_id
            ]
            # the columns say what they claim
            assert diff == value - reported
            assert accounted == -(quarantined + dups + deleted)
            assert unexplained == diff - accounted
            assert f"warehouse {int(value)} vs reported {int(reported)}" in why
            assert f"{quarantined} rejected" in why and f"{dups} duplicate" in why
            if measure == "households":
                assert dups == 0
            if figure_id.endswith("_total"):
                # every record the source holds is live, quarantined or a duplicate: exactly
                assert value - accounted == sum(source.values()), figure_id
                assert quarantined > 0 or measure == "households"
            else:
                # by attribute too (a person whose household number existed nowhere could not
                # be attributed; the simulator injects orphan references on measures and loans)
                missing = source[figure_id.split("_")[1]] - (value - accounted)
                assert missing == 0, figure_id
                unattributed += missing
        total_quarantined = rows[f"{measure}_total"][3]
        attributed = sum(rows[f"{measure}_{a}"][3] for a in source)
        assert unattributed == total_quarantined - attributed, measure
