"""What a county admin sees in the Dagster UI, read through the webserver's GraphQL API (the
same queries the UI's pages make) and compared with what the warehouse holds.

洛南 (bigdata API) and 柞水 (xlsx workbook) are synced by their real Dagster jobs into a real
DAGSTER_HOME instance (the repo's dagster.yaml); then ``dagster-webserver`` is started on
loopback against that instance and asked for the group's assets, the latest materialization
metadata, the asset checks, the freshness policies and the schedules and sensors.

Everything runs in one test (10-25 s): the webserver starts while the counties sync, and
pytest-xdist would repeat a module-scoped setup on each worker.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import requests

from base import paths
from pipelines.defs.automation import automation_defs
from pipelines.defs.keys import entities_of
from pipelines.defs.metadata import LABELS_ZH
from pipelines.modes import mode_label, mode_label_zh
from pipelines.sync import MIN_RECORDS_FOR_RATE
from schemas.rules import label_zh
from seeds.registry import County, counties, county
from tests.conftest import serving
from tests.e2e.helpers import live, live_households, sync_county

pytestmark = pytest.mark.e2e

LUONAN = county("luonan")
ZHASHUI = county("zhashui")
REPOSITORY = {"repositoryName": "__repository__", "repositoryLocationName": "pipelines.definitions"}
# A few rejected households (two rules) and flagged ones, so the household's reject table has
# rows to compare; at the default test rate households carry no defect at all.
HOUSEHOLD_DEFECTS = {
    "negative_income": 0.01,
    "exit_before_identified": 0.01,
    "member_count_mismatch": 0.01,
}
WEBSERVER_START_TIMEOUT_S = 45

METADATA = """
fragment Meta on MetadataEntry {
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on PathMetadataEntry { path }
  ... on TableSchemaMetadataEntry { schema { columns { name type description } } }
}
"""

GROUP_QUERY = (
    METADATA
    + """
query Group($group: AssetGroupSelector!) {
  assetNodes(group: $group) {
    assetKey { path }
    groupName
    owners { ... on TeamAssetOwner { team } }
    metadataEntries { ...Meta }
    internalFreshnessPolicy {
      __typename
      ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization {
            status
            runId
            evaluation { success severity metadataEntries { ...Meta } }
          }
        }
      }
    }
  }
}
"""
)

LATEST_MATERIALIZATION_QUERY = (
    METADATA
    + """
query Latest($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) { runId timestamp metadataEntries { ...Meta } }
    }
  }
}
"""
)

AUTOMATION_QUERY = """
query Automation($repo: RepositorySelector!) {
  schedulesOrError(repositorySelector: $repo) {
    __typename
    ... on Schedules {
      results {
        name cronSchedule executionTimezone pipelineName defaultStatus
        scheduleState { status }
      }
    }
  }
  sensorsOrError(repositorySelector: $repo) {
    __typename
    ... on Sensors {
      results { name sensorType defaultStatus targets { pipelineName } sensorState { status } }
    }
  }
}
"""


# ---------------------------------------------------------------------------------------------
# the webserver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webserver:
    """``dagster-webserver -m pipelines.definitions`` on loopback, in its own process group so
    stopping it also stops the code server it spawns."""

    def __init__(self, log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        exe = Path(sys.executable).with_name("dagster-webserver")
        self.process = subprocess.Popen(
            [str(exe), "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=paths.REPO,
            env=dict(os.environ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WEBSERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dagster-webserver exited {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"dagster-webserver not up after {WEBSERVER_START_TIMEOUT_S} s:\n{self.log()}")

    def graphql(self, query: str, **variables) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._log.close()


@pytest.fixture
def household_defect_simulator(monkeypatch):
    """The ``simulator`` fixture of tests/conftest.py, plus a few household-level defects."""
    with serving(monkeypatch, defect_rates=HOUSEHOLD_DEFECTS) as handle:
        yield handle


@pytest.fixture
def dagster_home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the repo's dagster.yaml (the duckdb_warehouse pool limit)."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(paths.REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


# ---------------------------------------------------------------------------------------------
# reading GraphQL answers


def _value(entry: dict):
    for field in ("intValue", "floatValue", "text", "mdStr", "path"):
        if field in entry:
            return entry[field]
    if "jsonString" in entry:
        return json.loads(entry["jsonString"])
    if "schema" in entry:
        return [c["name"] for c in entry["schema"]["columns"]]
    return None


def _metadata(entries: list[dict]) -> dict:
    return {e["label"]: _value(e) for e in entries}


def _nodes_by_key(ui: Webserver, county: County) -> dict[tuple[str, ...], dict]:
    nodes = ui.graphql(GROUP_QUERY, group={"groupName": county.slug, **REPOSITORY})["assetNodes"]
    return {tuple(n["assetKey"]["path"]): n for n in nodes}


def _checks(node: dict) -> dict[str, dict]:
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", checks
    return {c["name"]: c["executionForLatestMaterialization"] for c in checks["checks"]}


def _latest_materialization(ui: Webserver, county: County, entity: str) -> dict:
    answer = ui.graphql(LATEST_MATERIALIZATION_QUERY, key={"path": [county.slug, entity]})
    asset = answer["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    (event,) = asset["assetMaterializations"]
    return event


def _markdown_rows(table: str) -> list[list[str]]:
    """Body rows of a markdown table, cells stripped of backticks."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[c.strip().strip("`") for c in line.strip("|").split("|")] for line in lines[2:]]


def _sql_of(markdown: str) -> str:
    match = re.search(r"```sql\n(.*?);?\n```", markdown, re.S)
    assert match, markdown
    return match.group(1)


# ---------------------------------------------------------------------------------------------
# what the warehouse says


def _latest_sync(con, county: County) -> str:
    return con.execute(
        "SELECT sync_run_id FROM ops.sync_run WHERE county_code = ? AND status = 'succeeded' "
        "ORDER BY finished_at DESC LIMIT 1",
        [county.code],
    ).fetchone()[0]


def _sync_row(con, sync_id: str, county: County, entity: str) -> dict:
    cur = con.execute(
        "SELECT fetched, accepted, rejected, findings, deleted, source_count, "
        "inserted, updated, unchanged, epoch_ms(finished_at) AS finished_ms FROM ops.sync_run "
        "WHERE sync_run_id = ? AND county_code = ? AND entity = ?",
        [sync_id, county.code, entity],
    )
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def _reject_reasons(con, sync_id: str, county: County, entity: str | None) -> dict[tuple, int]:
    """Distinct rejected records per (rule, column) of one sync: of ``entity``, or of every
    entity (keyed (entity, rule, column)) when it is None."""
    rows = con.execute(
        "SELECT entity, rule, coalesce(column_name, ''), count(DISTINCT source_key) "
        "FROM ops.reject WHERE sync_run_id = ? AND county_code = ? GROUP BY ALL",
        [sync_id, county.code],
    ).fetchall()
    if entity is None:
        return {(e, rule, column): n for e, rule, column, n in rows}
    return {(rule, column): n for e, rule, column, n in rows if e == entity}


def _orphans(con, county: County, entity: str) -> int:
    from pipelines.defs.checks import REFERENCES

    column, parent, parent_column = REFERENCES[entity]
    return con.execute(
        f"""
        SELECT count(*) FROM core.{entity} c
        LEFT JOIN {parent} p ON p.{parent_column} = c.{column} AND p.deleted_at IS NULL
        WHERE c.county_code = ? AND c.deleted_at IS NULL AND c.{column} IS NOT NULL
          AND p.{parent_column} IS NULL
        """,
        [county.code],
    ).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# the assertions, one per thing the admin reads


def _assert_group(ui: Webserver, con, county: County) -> dict[tuple[str, ...], dict]:
    nodes = _nodes_by_key(ui, county)
    synced = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT entity FROM ops.sync_run WHERE county_code = ?", [county.code]
        ).fetchall()
    }
    assert set(nodes) == {(county.slug, "landing")} | {(county.slug, e) for e in synced}
    assert synced == set(entities_of(county))
    for node in nodes.values():
        assert node["groupName"] == county.slug
        assert node["owners"] == [{"team": county.owner.removeprefix("team:")}]
    return nodes


def _assert_freshness_policies(nodes: dict, county: County) -> None:
    fail_s, warn_s = (8 * 86400, 7 * 86400) if county.kind == "workbook" else (6 * 3600, 3 * 3600)
    for key, node in nodes.items():
        policy = node["internalFreshnessPolicy"]
        if key[-1] == "landing":
            assert policy is None, key  # the payload store is not what admins watch
            continue
        assert policy == {
            "__typename": "TimeWindowFreshnessPolicy",
            "failWindowSeconds": fail_s,
            "warnWindowSeconds": warn_s,
        }, key


def _assert_materialization(ui: Webserver, con, county: County, entity: str) -> dict:
    event = _latest_materialization(ui, county, entity)
    meta = _metadata(event["metadataEntries"])
    sync_id = _latest_sync(con, county)
    assert meta["sync_run_id"] == sync_id
    row = _sync_row(con, sync_id, county, entity)
    for field in ("fetched", "accepted", "rejected", "findings", "deleted"):
        assert meta[field] == row[field], field
    # an unchanged record is not news: accepted splits into inserted, updated, unchanged
    for field in ("inserted", "updated", "unchanged"):
        assert meta[field] == row[field], field
    assert meta["accepted"] == meta["inserted"] + meta["updated"] + meta["unchanged"]
    assert (
        meta["mode_label"]
        == f"{mode_label_zh(county, meta['mode'])} {mode_label(county, meta['mode'])}"
    )
    for key in ("fetched", "unchanged", "rejects_sql", "mode_label"):
        assert f"`{key}` | {LABELS_ZH[key]}" in meta["labels_zh"], key
    assert meta["source_count"] == (-1 if row["source_count"] is None else row["source_count"])
    assert meta["dagster/row_count"] == row["accepted"]
    assert meta["county"] == f"{county.name} ({county.code})"
    # "When did it last sync": the UI's materialization time follows the merge's commit.
    assert int(event["timestamp"]) >= row["finished_ms"]
    assert meta["duration_s"] > 0

    # The reasons table lists this entity's share of the sync's five most frequent reasons
    # (over all entities), each with its count of distinct rejected records.
    reasons = _reject_reasons(con, sync_id, county, entity)
    table = meta["top_reject_reasons"]
    if table == "无拒收记录 No rejected records.":
        fifth = sorted(_reject_reasons(con, sync_id, county, None).values(), reverse=True)[4:5]
        assert not reasons or (fifth and max(reasons.values()) <= fifth[0]), reasons
    else:
        rows = _markdown_rows(table)
        assert 0 < len(rows) <= 5, table
        for named, column, records, _example in rows:
            label, rule = named.split(" `")  # "<Chinese label> `<rule>`"
            assert label == label_zh(rule), named
            assert reasons[(rule, column)] == int(records), (rule, column)

    # The rejects query the admin copies lists exactly this sync's rejects of this entity.
    listed = con.execute(_sql_of(meta["rejects_sql"])).fetchall()
    assert len({r[0] for r in listed}) == row["rejected"]
    # ... and the CSV the merge step wrote holds every reject of the sync, for Excel
    if "rejects_csv" in meta:
        raw = Path(meta["rejects_csv"]).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        in_csv = len(list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))))
        assert (
            in_csv
            == con.execute(
                "SELECT count(*) FROM ops.reject WHERE sync_run_id = ? AND county_code = ?",
                [sync_id, county.code],
            ).fetchone()[0]
        )
    else:
        assert not con.execute(
            "SELECT count(*) FROM ops.reject WHERE sync_run_id = ? AND county_code = ?",
            [sync_id, county.code],
        ).fetchone()[0]
    assert (
        len(listed)
        == con.execute(
            "SELECT count(*) FROM ops.reject WHERE sync_run_id = ? AND county_code = ? AND entity = ?",
            [sync_id, county.code, entity],
        ).fetchone()[0]
    )
    return meta


def _assert_watermarks(meta: dict, con, county: County, entity: str) -> None:
    committed = dict(
        con.execute(
            "SELECT name, value FROM ops.watermark WHERE county_code = ?", [county.code]
        ).fetchall()
    )
    assert meta["watermark_before"] == {}  # the first sync of a fresh warehouse
    assert meta["watermark_after"] == {entity: committed[entity]}


def _assert_column_schema(node: dict, con, entity: str) -> None:
    declared = _metadata(node["metadataEntries"])
    assert declared["table"] == f"core.{entity}"
    # The Columns tab lists the staged frame's columns (schemas.validate.column_schema);
    # parse_errors is staging-only and is not stored in core (reported as a gap).
    columns = set(declared["dagster/column_schema"]) - {"parse_errors"}
    in_table = {r[0] for r in con.execute(f"DESCRIBE core.{entity}").fetchall()}
    assert columns and columns <= in_table, columns - in_table


def _assert_household_checks(node: dict, con, county: County) -> None:
    checks = _checks(node)
    assert set(checks) == {
        "count_matches_source",
        "references_resolve",
        "reject_rate_below_threshold",
        "no_new_conflicts",
    }
    sync_id = _latest_sync(con, county)
    run_ids = {c["runId"] for c in checks.values()}
    assert len(run_ids) == 1, "all checks come from the sync run's merge step"

    def status(passed: bool) -> str:
        return "SUCCEEDED" if passed else "FAILED"

    count = checks["count_matches_source"]
    live_rows = live_households(con, county.code)
    quarantined = con.execute(
        "SELECT count(DISTINCT source_key) FROM ops.reject "
        "WHERE sync_run_id = ? AND county_code = ? AND entity = 'household'",
        [sync_id, county.code],
    ).fetchone()[0]
    source = _sync_row(con, sync_id, county, "household")["source_count"]
    assert _metadata(count["evaluation"]["metadataEntries"]) == {
        "warehouse": live_rows,
        "quarantined": quarantined,
        "source": source,
    }
    assert count["status"] == status(live_rows + quarantined == source)

    references = checks["references_resolve"]
    orphans = _orphans(con, county, "household")
    assert _metadata(references["evaluation"]["metadataEntries"])["orphans"] == orphans
    assert references["status"] == status(orphans == 0)

    rate_check = checks["reject_rate_below_threshold"]
    rejected, total = con.execute(
        "SELECT sum(rejected), sum(accepted) + sum(rejected) FROM ops.sync_run "
        "WHERE sync_run_id = ? AND county_code = ?",
        [sync_id, county.code],
    ).fetchone()
    rate_meta = _metadata(rate_check["evaluation"]["metadataEntries"])
    assert rate_meta == {
        "reject_rate": round(rejected / total, 4),
        "threshold": county.reject_threshold,
        "records": total,
        "rejected": rejected,
        "min_records_for_rate": MIN_RECORDS_FOR_RATE,
    }
    assert rate_check["status"] == status(
        rejected / total <= county.reject_threshold or total < MIN_RECORDS_FOR_RATE
    )

    conflicts_check = checks["no_new_conflicts"]
    conflicts = con.execute(
        "SELECT count(*) FROM ops.conflict WHERE sync_run_id = ? AND ? IN (county_code_a, county_code_b)",
        [sync_id, county.code],
    ).fetchone()[0]
    conflicts_meta = _metadata(conflicts_check["evaluation"]["metadataEntries"])
    assert conflicts_meta["new_conflicts"] == conflicts
    assert conflicts_check["status"] == status(conflicts == 0)
    # A conflict warns (it needs a person to decide) rather than marking the asset failed.
    assert conflicts_check["evaluation"]["severity"] == "WARN"
    assert len(con.execute(_sql_of(conflicts_meta["sql"])).fetchall()) >= conflicts


def _assert_every_entity_check(nodes: dict, con, county: County) -> None:
    """The count and reference checks of every entity agree with the warehouse."""
    sync_id = _latest_sync(con, county)
    for (_, entity), node in nodes.items():
        if entity == "landing":
            continue
        checks = _checks(node)
        if "references_resolve" in checks:
            orphans = _orphans(con, county, entity)
            assert checks["references_resolve"]["evaluation"]["success"] == (orphans == 0)
        if entity == "region":
            assert "count_matches_source" not in checks  # regions have no source count
            continue
        source = _sync_row(con, sync_id, county, entity)["source_count"]
        count_meta = _metadata(checks["count_matches_source"]["evaluation"]["metadataEntries"])
        if source is None or source < 0:
            assert count_meta["source"] == "not reported by this platform", entity
        else:
            assert count_meta["source"] == source, entity
            assert checks["count_matches_source"]["evaluation"]["success"] == (
                count_meta["warehouse"] + count_meta["quarantined"] == source
            )


def _assert_automation(ui: Webserver) -> None:
    data = ui.graphql(AUTOMATION_QUERY, repo=REPOSITORY)
    schedules = {s["name"]: s for s in data["schedulesOrError"]["results"]}
    defined = automation_defs()
    assert set(schedules) == {s.name for s in defined["schedules"]}
    hourly = schedules["hourly_incremental_api_counties"]
    assert (hourly["cronSchedule"], hourly["pipelineName"]) == ("5 * * * *", "sync_api_counties")
    nightly = schedules["nightly_full_all_counties"]
    assert (nightly["cronSchedule"], nightly["pipelineName"]) == ("30 2 * * *", "sync_all_counties")
    for schedule in schedules.values():
        assert schedule["executionTimezone"] == "Asia/Shanghai"
        # On from the first start: an admin never has to switch a schedule on.
        assert schedule["defaultStatus"] == "RUNNING"
        assert schedule["scheduleState"]["status"] == "RUNNING"

    sensors = {s["name"]: s for s in data["sensorsOrError"]["results"]}
    for c in counties():
        if c.kind == "workbook":
            sensor = sensors[f"{c.slug}_new_export"]
            assert sensor["targets"] == [{"pipelineName": f"sync_{c.slug}"}]
            assert sensor["defaultStatus"] == sensor["sensorState"]["status"] == "RUNNING"
        else:
            assert f"{c.slug}_new_export" not in sensors
    failures = sensors["record_sync_failures"]
    assert failures["sensorType"] == "RUN_STATUS"
    # Every sensor the hub defines runs from the first start, as the UI shows it.
    for sensor in defined["sensors"]:
        shown = sensors[sensor.name]
        assert shown["defaultStatus"] == shown["sensorState"]["status"] == "RUNNING", sensor.name


def test_county_admin_sees_in_the_ui_what_the_warehouse_holds(
    household_defect_simulator, hub_home, dagster_home, tmp_path
):
    # Create the instance's storage before the webserver opens it, then sync while it starts.
    with dg.DagsterInstance.get() as instance:
        ui = Webserver(tmp_path / "webserver.log")
        try:
            assert sync_county(LUONAN, instance=instance).success
            assert sync_county(ZHASHUI, instance=instance).success
            ui.wait_ready()

            with live() as con:
                luonan = _assert_group(ui, con, LUONAN)
                _assert_freshness_policies(luonan, LUONAN)
                household = _assert_materialization(ui, con, LUONAN, "household")
                assert household["rejected"] > 0, "no rejected household to show"
                assert household["mode"] == "full"  # a first sync lists everything
                _assert_watermarks(household, con, LUONAN, "household")
                _assert_column_schema(luonan[(LUONAN.slug, "household")], con, "household")
                _assert_household_checks(luonan[(LUONAN.slug, "household")], con, LUONAN)
                _assert_every_entity_check(luonan, con, LUONAN)
                for entity in ("person", "measure"):
                    _assert_materialization(ui, con, LUONAN, entity)

                zhashui = _assert_group(ui, con, ZHASHUI)
                _assert_freshness_policies(zhashui, ZHASHUI)
                _assert_materialization(ui, con, ZHASHUI, "household")
                _assert_household_checks(zhashui[(ZHASHUI.slug, "household")], con, ZHASHUI)
                _assert_every_entity_check(zhashui, con, ZHASHUI)

            _assert_automation(ui)
        finally:
            ui.stop()


def test_city_marts_rebuild_after_county_syncs_without_switching_anything_on():
    """The marts follow the county syncs only if a running sensor evaluates their automation
    condition: Dagster's default automation sensor starts stopped."""
    from pipelines.definitions import defs
    from pipelines.defs.city import MARTS

    repository = defs.get_repository_def()
    automation_sensors = [
        s
        for s in repository.sensor_defs
        if isinstance(s, dg.AutomationConditionSensorDefinition)
        and MARTS in s.asset_selection.resolve(repository.asset_graph)
    ]
    assert automation_sensors
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in automation_sensors)
