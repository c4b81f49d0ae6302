"""The warehouse backend's settings (base/settings.py)."""

from __future__ import annotations

import pytest

from base import settings


def test_backend_defaults_to_the_duckdb_file_and_rejects_unknown(monkeypatch):
    monkeypatch.delenv("HUB_WAREHOUSE_BACKEND", raising=False)
    assert settings.warehouse_backend() == "duckdb" and not settings.is_lake()
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "DuckLake")
    assert settings.is_lake()
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "iceberg")
    with pytest.raises(settings.SettingsError, match=r"'duckdb'.*'ducklake'"):
        settings.warehouse_backend()


def test_the_lake_needs_a_catalog_and_never_shows_its_password(monkeypatch, tmp_path):
    monkeypatch.delenv("HUB_LAKE_CATALOG", raising=False)
    with pytest.raises(settings.SettingsError, match="HUB_LAKE_CATALOG"):
        settings.lake_catalog()
    dsn = "host=db port=5432 dbname=hub_lake user=hub password=s3cret"
    assert "s3cret" not in settings.redact_dsn(dsn)
    assert "s3cret" not in settings.redact_dsn("host=db password='a b s3cret' dbname=x")
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    monkeypatch.delenv("HUB_LAKE_DATA_PATH", raising=False)
    assert settings.lake_data_path() == f"{tmp_path}/lake/data/"
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", "s3://city-lake/hub")
    assert settings.lake_data_path() == "s3://city-lake/hub/"


def test_counties_merge_in_their_own_pools_on_the_lake(monkeypatch):
    """DuckDB file: every merge in the one warehouse pool. DuckLake: one pool per county (limit
    1 each by dagster.yaml's default_limit), so the counties merge at the same time."""
    from pipelines.defs.keys import POOL, WAREHOUSE_TAG, merge_pool, merge_tags
    from seeds.registry import counties

    monkeypatch.delenv("HUB_WAREHOUSE_BACKEND", raising=False)
    assert {merge_pool(c) for c in counties()} == {POOL}
    assert all(merge_tags(c) == WAREHOUSE_TAG for c in counties())
    monkeypatch.setenv("HUB_WAREHOUSE_BACKEND", "ducklake")
    pools = [merge_pool(c) for c in counties()]
    assert len(set(pools)) == len(pools) == 7 and POOL not in pools
    assert len({merge_tags(c)["hub/warehouse"] for c in counties()}) == 7
