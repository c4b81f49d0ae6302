"""The analyst lake as the pipeline itself publishes it on the DuckLake backend: counties synced
through Dagster into a lake, then ``sync_city`` (marts, the analyst lake's publish); every value
of the analyst lake is scanned and ``hub sql`` reads it."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from base import settings
from pipelines.lake import tiers
from seeds.registry import county
from tests.e2e.helpers import sync_city, sync_county
from tests.pii_scan import pii_hits
from warehouse.lake import extensions

pytestmark = pytest.mark.lake


def test_the_city_step_on_the_lake_publishes_an_analyst_lake_without_identifiers(
    simulator, hub_home, postgres, monkeypatch
):
    main = postgres.database("pipeline_lake")
    postgres.database("pipeline_lake" + settings.ANALYST_CATALOG_SUFFIX)
    for key in ("HUB_ANALYST_LAKE_CATALOG", "HUB_ANALYST_LAKE_DATA_PATH"):
        monkeypatch.delenv(key, raising=False)  # the defaults: beside the main lake
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("HUB_LAKE_CATALOG", main)
    for slug in ("luonan", "danfeng"):  # an API county and a workbook county
        assert sync_county(county(slug), mode="full").success
    assert sync_city().success

    con = duckdb.connect()
    extensions.load(con)
    con.execute(tiers.attach_sql("analyst", settings.analyst_lake_catalog(),
                                 settings.analyst_lake_data_path(), read_only=True))  # fmt: skip
    con.execute(tiers.attach_sql("pii", main, settings.lake_data_path(), read_only=True))
    con.execute("USE analyst")
    assert pii_hits(con, "pii", ("core", "ops", "mart")) == []
    people = "SELECT count(*), count(DISTINCT person_key) FROM {}core.person"
    assert (
        con.execute(people.format("")).fetchone() == con.execute(people.format("pii.")).fetchone()
    )
    (author,) = con.execute(
        "SELECT author FROM snapshots() ORDER BY snapshot_id DESC LIMIT 1"
    ).fetchone()
    assert author == "hub publish"
    con.close()

    answer = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "sql", "--csv",
         "SELECT count(DISTINCT county_code) FROM core.household"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[1] == "2"
