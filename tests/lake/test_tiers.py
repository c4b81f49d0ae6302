"""The PII tiers on DuckLake: the analyst lake holds no identifier, readers attach read-only,
each publish is one snapshot that analysts can travel back from, and the files are owner-only.

One real warehouse per module: all seven counties synced through Dagster at test scale from the
real simulator over HTTP into the DuckDB backend, then copied table by table into a main lake on
the test PostgreSQL (so these tests do not depend on the DuckLake merge path), then published.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from base import paths
from pipelines.lake import tiers
from tests.conftest import TEST_DEFECT_RATE, TEST_SCALE, _county_env_keys
from tests.pii_scan import pii_hits
from warehouse.lake import extensions
from warehouse.lake_publish import copy_macros

pytestmark = [pytest.mark.lake, pytest.mark.xdist_group("lake_tiers")]


@dataclass(frozen=True)
class Lakes:
    main_dsn: str
    main_data: str
    analyst_dsn: str
    analyst_data: str
    first: tiers.LakePublish


def _copy_into_lake(live: Path, dsn: str, data: str) -> None:
    """The DuckDB warehouse into a new main lake: every table (rows, comments) and macro."""
    con = duckdb.connect()
    extensions.load(con)
    con.execute(f"ATTACH '{live}' AS src (READ_ONLY)")
    con.execute(tiers.attach_sql("lake", dsn, data, read_only=False))
    tables = con.execute(
        "SELECT schema_name, table_name, comment FROM duckdb_tables() "
        "WHERE database_name = 'src' ORDER BY 1, 2"
    ).fetchall()
    con.execute("BEGIN")
    for schema in sorted({s for s, _, _ in tables}):
        con.execute(f"CREATE SCHEMA lake.{schema}")
    for schema, table, comment in tables:
        con.execute(f"CREATE TABLE lake.{schema}.{table} AS SELECT * FROM src.{schema}.{table}")
        if comment:
            con.execute(f"COMMENT ON TABLE lake.{schema}.{table} IS $${comment}$$")
    for schema, table, column, comment in con.execute(
        "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
        "WHERE database_name = 'src' AND comment IS NOT NULL"
    ).fetchall():
        con.execute(f'COMMENT ON COLUMN lake.{schema}.{table}."{column}" IS $${comment}$$')
    copy_macros(con, "src", "lake")
    con.execute("COMMIT")
    con.close()


@pytest.fixture(scope="module")
def lakes(postgres, tmp_path_factory):
    from pipelines.definitions import defs
    from simulator import embedded

    root = tmp_path_factory.mktemp("tiers")
    handle = embedded.start_in_thread(seed=7, scale=TEST_SCALE, defect_rate=TEST_DEFECT_RATE)
    with pytest.MonkeyPatch.context() as mp:
        try:
            for key in ("HUB_WAREHOUSE", "HUB_SNAPSHOT", "HUB_PII_SNAPSHOT", *_county_env_keys()):
                mp.delenv(key, raising=False)
            for key in list(os.environ):
                if key.startswith(("HUB_LAKE_", "HUB_ANALYST_LAKE_", "HUB_WAREHOUSE_BACKEND")):
                    mp.delenv(key)
            mp.setenv("HUB_HOME", str(root / "hub"))
            for key, value in handle.env().items():
                mp.setenv(key, value)
            instance = dg.DagsterInstance.ephemeral()
            for job in ("sync_all_counties", "sync_city"):  # the DuckDB backend
                assert defs.resolve_job_def(job).execute_in_process(instance=instance).success
        finally:
            handle.stop()
        main_dsn, main_data = postgres.database("tiers_main"), str(root / "lake" / "data") + "/"
        _copy_into_lake(paths.live_db(), main_dsn, main_data)
        analyst_dsn = postgres.database("tiers_analyst")
        analyst_data = str(root / "published" / "analyst-lake") + "/"
        mp.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
        mp.setenv("HUB_LAKE_CATALOG", main_dsn)
        mp.setenv("HUB_LAKE_DATA_PATH", main_data)
        mp.setenv("HUB_ANALYST_LAKE_CATALOG", analyst_dsn)
        mp.setenv("HUB_ANALYST_LAKE_DATA_PATH", analyst_data)
        yield Lakes(main_dsn, main_data, analyst_dsn, analyst_data, tiers.publish())


def _both(lakes: Lakes) -> duckdb.DuckDBPyConnection:
    """The analyst lake (current database) and the main lake as ``pii``, both read-only."""
    con = duckdb.connect()
    extensions.load(con)
    con.execute(tiers.attach_sql("analyst", lakes.analyst_dsn, lakes.analyst_data, True))
    con.execute(tiers.attach_sql("pii", lakes.main_dsn, lakes.main_data, True))
    con.execute("USE analyst")
    return con


def test_the_first_publish_is_one_commit_of_every_published_table(lakes):
    first = lakes.first
    assert first.analyst_snapshot is not None and not first.dropped
    assert {"core.person", "core.household_history", "ops.reject", "mart.county_summary"} <= set(
        first.rewritten
    )
    assert not {t for t in first.rewritten if t.startswith("raw.")}
    assert "ops.quarantine" not in first.rewritten
    with _both(lakes) as con:
        (commit,) = con.execute(
            "SELECT commit_extra_info FROM snapshots() WHERE snapshot_id = ? AND author = ?",
            [first.analyst_snapshot, "hub publish"],
        ).fetchone()
        assert json.loads(commit)["source_snapshot"] == first.source_snapshot


def test_analyst_lake_values_hold_no_identifier(lakes):
    """Every value of every table of the analyst lake (core, ops, mart) is scanned for ID-number
    and phone shapes and for every name, ID number, phone and birth date the main lake holds."""
    with _both(lakes) as con:
        assert pii_hits(con, "pii", ("core", "ops", "mart")) == []
        # ... and the same scan sees PII where it is: in the main lake
        con.execute("USE pii")
        found = {kind for kind, _, _ in pii_hits(con, "pii", (), ["core.person", "core.cadre"])}
        assert {"id-shaped", "phone-shaped", "a held name", "a held id_number"} <= found


def test_analyst_lake_keeps_what_analysts_join_and_count_by(lakes):
    with _both(lakes) as con:
        columns = {
            f"{s}.{t}.{c}"
            for s, t, c in con.execute(
                "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = 'analyst'"
            ).fetchall()
        }
        assert {"core.person.person_key", "core.person.birth_year"} <= columns
        people = ("core.person", "core.person_history", "core.cadre")
        identifying = {f"{t}.{c}" for t in people for c in ("name", "id_number", "phone")}
        identifying |= {f"core.{t}.phone" for t in ("household", "household_history")}
        assert not identifying & columns
        assert not {c for c in columns if "birth_date" in c}
        assert not {c for c in columns if c.startswith(("raw.", "ops.quarantine."))}
        # comments and the as-of macros came along, on de-identified history
        (comment,) = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE database_name = 'analyst' "
            "AND schema_name = 'core' AND table_name = 'household' AND column_name = 'main_cause'"
        ).fetchone()
        assert comment and "poverty_cause" in comment
        today = con.execute("SELECT count(*) FROM core.person_as_of(current_date + 1)").fetchone()
        live = con.execute("SELECT count(*) FROM core.person WHERE deleted_at IS NULL").fetchone()
        assert today == live and today[0] > 0
        masked = con.execute("SELECT count(*) FROM ops.reject WHERE value = '***'").fetchone()[0]
        assert masked > 0
        assert con.execute("SELECT count(DISTINCT person_key) FROM core.person").fetchone() == (
            con.execute("SELECT count(DISTINCT person_key) FROM pii.core.person").fetchone()
        )


def test_readers_attach_read_only_in_safe_mode(lakes):
    with tiers.analyst_connection() as con:
        assert con.execute("SELECT count(*) FROM core.household").fetchone()[0] > 0
        refused = {
            "INSERT INTO core.household BY NAME SELECT * FROM core.household LIMIT 1": "read-only",
            "DELETE FROM ops.reject": "read-only",
            "CREATE TABLE core.x (a INTEGER)": "read-only",
            f"ATTACH 'ducklake:postgres:{lakes.main_dsn}' AS other": "disabled",
            "SELECT * FROM read_csv('/etc/hostname')": "disabled",
            f"SELECT * FROM read_parquet('{lakes.main_data}**/*.parquet')": "disabled",
            "SET enable_external_access = true": "locked",
        }
        for statement, why in refused.items():
            with pytest.raises(duckdb.Error, match=why):
                con.execute(statement)
    with tiers.restricted_connection() as con:  # the main lake: PII, read-only
        assert con.execute("SELECT count(name) FROM core.person").fetchone()[0] > 0
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("UPDATE core.person SET name = 'x'")


def test_the_weekly_letter_reads_the_analyst_lake(lakes):
    from pipelines.weekly_report import Week, write_letter
    from seeds.registry import county

    letter = write_letter(county("shangnan"), Week.parse("this"))
    assert letter.path.exists() and letter.summary.height > 0
    assert int(letter.summary["this_week"].sum()) > 0  # the rejects of this week's first sync


def test_an_analyst_role_reads_the_analyst_lake_and_nothing_else(lakes):
    """The documented grants, on the real PostgreSQL: a role that may read the analyst catalog
    reads the analyst lake, cannot write it even attached read-write, and cannot attach the
    main lake at all."""
    role = f"reader_{os.getpid()}"
    owner = duckdb.connect()
    extensions.load(owner)
    owner.execute(f"ATTACH '{lakes.analyst_dsn}' AS analyst_catalog (TYPE postgres)")
    owner.execute(f"ATTACH '{lakes.main_dsn}' AS main_catalog (TYPE postgres)")
    owner.execute(f"CALL postgres_execute('analyst_catalog', 'CREATE ROLE {role} LOGIN')")
    for grant in tiers.analyst_grants(role, "tiers_analyst"):
        owner.execute("CALL postgres_execute('analyst_catalog', ?)", [grant])
    owner.execute(
        "CALL postgres_execute('main_catalog', 'REVOKE CONNECT ON DATABASE tiers_main FROM PUBLIC')"
    )
    owner.close()
    as_role = {
        dsn: dsn.replace("user=hub", f"user={role}") for dsn in (lakes.analyst_dsn, lakes.main_dsn)
    }

    reader = duckdb.connect()
    extensions.load(reader)
    reader.execute(
        tiers.attach_sql("analyst", as_role[lakes.analyst_dsn], lakes.analyst_data, read_only=True)
    )
    assert reader.execute("SELECT count(*) FROM analyst.core.person").fetchone()[0] > 0
    with pytest.raises(duckdb.Error, match="permission denied"):
        reader.execute(tiers.attach_sql("m", as_role[lakes.main_dsn], lakes.main_data, True))
    reader.close()
    writer = duckdb.connect()
    extensions.load(writer)
    with pytest.raises(duckdb.Error, match="permission denied"):
        writer.execute(
            tiers.attach_sql("rw", as_role[lakes.analyst_dsn], lakes.analyst_data, read_only=False)
        )
        writer.execute("DELETE FROM rw.ops.reject")
    writer.close()


def test_hub_sql_reads_the_analyst_lake(lakes):
    def hub_sql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "sql", *args],
            input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    counted = hub_sql("--csv", "SELECT count(*) AS n FROM mart.county_summary")
    assert counted.returncode == 0, counted.stderr
    assert int(counted.stdout.splitlines()[1]) > 0
    names = hub_sql("SELECT name FROM core.person")
    assert names.returncode == 1 and 'column "name"' in names.stderr.lower()
    shell = hub_sql(stdin="SELECT 40 + 2 AS answer;\n.shell echo pwned\n")
    assert "42" in shell.stdout and "pwned" not in shell.stdout, shell.stdout + shell.stderr
    assert "cannot be used in -safe mode" in shell.stdout + shell.stderr


def test_hub_sql_before_any_publish_says_so(lakes, postgres, monkeypatch):
    monkeypatch.setenv("HUB_ANALYST_LAKE_CATALOG", postgres.database("tiers_unpublished"))
    for args in (("SELECT 1",), ()):
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "sql", *args],
            input="", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert "No analyst lake has been published there yet" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_second_publish_is_a_new_version_and_the_old_one_stays_readable(lakes):
    household = "SELECT household_no, income_per_capita FROM core.household ORDER BY 1 LIMIT 1"
    with _both(lakes) as con:
        before = con.execute(household).fetchone()
    assert tiers.publish().analyst_snapshot is None  # nothing changed: no new snapshot
    main = duckdb.connect()
    extensions.load(main)
    main.execute(tiers.attach_sql("lake", lakes.main_dsn, lakes.main_data, read_only=False))
    main.execute(
        "UPDATE lake.core.household SET income_per_capita = income_per_capita + 1000 "
        "WHERE household_no = ?",
        [before[0]],
    )
    main.close()
    reader = tiers.analyst_connection()  # opened before the publish
    old_version = reader.execute("SELECT max(snapshot_id) FROM snapshots()").fetchone()[0]
    second = tiers.publish()
    assert second.rewritten == ["core.household"]  # only the changed table is rewritten
    assert second.analyst_snapshot > old_version
    with reader:
        now = reader.execute(household).fetchone()
        assert now == (before[0], before[1] + 1000)  # the latest commit, no copy, no reconnect
        back = reader.execute(
            household.replace("core.household", "core.household AT (VERSION => $v)"),
            {"v": old_version},
        ).fetchone()
        assert back == before
        at_time = reader.execute(
            "SELECT snapshot_time FROM snapshots() WHERE snapshot_id = ?", [old_version]
        ).fetchone()[0]
        by_time = reader.execute(
            household.replace("core.household", "core.household AT (TIMESTAMP => $t)"),
            {"t": at_time},
        ).fetchone()
        assert by_time == before


def test_the_documented_lake_queries_run(lakes):
    """docs/analysts.md's ```sql lake blocks, on the analyst lake as `hub sql` opens it."""
    text = (paths.REPO / "docs" / "analysts.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql lake\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 2
    with tiers.analyst_connection(timezone="Asia/Shanghai") as con:
        for block in blocks:
            assert con.execute(block).fetchall(), block


def test_a_main_lake_history_expired_since_the_last_publish_means_republishing_all(lakes):
    """The change sets between two publishes are the main lake's snapshots; when some were
    expired meanwhile, nothing can say what changed, so everything is republished."""
    tiers.publish()  # up to date first
    main = duckdb.connect()
    extensions.load(main)
    main.execute(tiers.attach_sql("lake", lakes.main_dsn, lakes.main_data, read_only=False))
    for _ in range(2):  # two commits after the publish; the first is then expired
        main.execute("UPDATE lake.ref.code SET label_en = label_en")
    main.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
    main.close()
    assert set(tiers.publish().rewritten) == set(lakes.first.rewritten)


def test_publishes_older_than_the_kept_days_are_forgotten(lakes, postgres, tmp_path, monkeypatch):
    """HUB_ANALYST_LAKE_KEEP_DAYS=0 keeps only the latest publish: earlier versions are gone
    from time travel and their files from the data path (a fresh analyst lake of the same main
    lake; its second publish is forced by dropping a table there)."""
    monkeypatch.setenv("HUB_ANALYST_LAKE_CATALOG", postgres.database("tiers_keep"))
    monkeypatch.setenv("HUB_ANALYST_LAKE_DATA_PATH", str(tmp_path / "keep") + "/")
    monkeypatch.setenv("HUB_ANALYST_LAKE_KEEP_DAYS", "0")
    first = tiers.publish()
    with tiers.analyst_connection() as con:
        files_first = set(
            con.execute(
                "SELECT data_file FROM ducklake_list_files('analyst', 'household', schema => 'core')"
            ).fetchall()
        )
    owner = duckdb.connect()
    extensions.load(owner)
    owner.execute(
        tiers.attach_sql(
            "a", os.environ["HUB_ANALYST_LAKE_CATALOG"], str(tmp_path / "keep") + "/", False
        )
    )
    owner.execute("DROP TABLE a.core.household")
    owner.close()
    second = tiers.publish()
    assert second.rewritten == ["core.household"]
    with tiers.analyst_connection() as con:
        assert [v for (v,) in con.execute("SELECT snapshot_id FROM snapshots()").fetchall()] == [
            second.analyst_snapshot
        ]
        with pytest.raises(duckdb.Error, match=r"(?i)snapshot"):
            con.execute(
                f"SELECT count(*) FROM core.household AT (VERSION => {first.analyst_snapshot})"
            )
        assert con.execute("SELECT count(*) FROM core.household").fetchone()[0] > 0
    assert files_first  # the first version's household rows were in Parquet files
    on_disk = {str(p) for p in (tmp_path / "keep").rglob("*.parquet")}
    assert not {f for (f,) in files_first} & on_disk


def _modes(root: str) -> tuple[set[int], set[int]]:
    files, dirs = set(), set()
    for top, _subdirs, names in os.walk(root):
        dirs.add(stat.S_IMODE(os.stat(top).st_mode))
        files.update(stat.S_IMODE(os.stat(os.path.join(top, n)).st_mode) for n in names)
    assert files, f"no data files under {root}"
    return files, dirs


def test_analyst_files_are_owner_only_or_group_readable_as_set(lakes, monkeypatch):
    assert _modes(lakes.analyst_data) == ({0o600}, {0o700})
    assert _modes(lakes.main_data)[0] == {0o600}
    monkeypatch.setenv("HUB_SNAPSHOT_MODE", "0640")
    main = duckdb.connect()
    extensions.load(main)
    main.execute(tiers.attach_sql("lake", lakes.main_dsn, lakes.main_data, read_only=False))
    main.execute("UPDATE lake.mart.county_summary SET households = households")
    main.close()
    assert tiers.publish().rewritten == ["mart.county_summary"]
    assert _modes(lakes.analyst_data) == ({0o640}, {0o750})
