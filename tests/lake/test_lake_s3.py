"""A lake whose data path is an ``s3://`` bucket: one county synced into it and read back.

The S3 server is moto's (``ThreadedMotoServer``, an S3-compatible HTTP server on loopback), not
a cloud store: it shows that DuckDB's httpfs, the secret made from the settings and DuckLake's
object-store data path work together; a real store's permissions, latency and consistency are
not tested here."""

from __future__ import annotations

import logging

import pytest

import warehouse
from pipelines import sync
from seeds.registry import county
from tests.e2e.helpers import live_households
from warehouse.lake import catalog, object_store

pytestmark = [pytest.mark.lake, pytest.mark.e2e]
SHANYANG = county("shanyang")
SECRET = "s3cr3t-never-logged-Q7"
BUCKET = "hub-lake"


@pytest.fixture
def s3_lake(s3_server, lake_dsn, hub_home, monkeypatch):
    import boto3

    client = boto3.client(
        "s3", endpoint_url=f"http://{s3_server}", aws_access_key_id="hub",
        aws_secret_access_key=SECRET, region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    for key, value in {
        "HUB_WAREHOUSE_BACKEND": "ducklake",
        "HUB_LAKE_CATALOG": lake_dsn,
        "HUB_LAKE_DATA_PATH": f"s3://{BUCKET}/shangluo/",
        "HUB_LAKE_S3_ENDPOINT": s3_server,
        "HUB_LAKE_S3_KEY_ID": "hub",
        "HUB_LAKE_S3_SECRET": SECRET,
        "HUB_LAKE_S3_URL_STYLE": "path",
        "HUB_LAKE_S3_USE_SSL": "false",
    }.items():
        monkeypatch.setenv(key, value)
    catalog.forget()
    yield client
    catalog.forget()


def test_a_county_synced_into_a_lake_on_s3_reads_back(s3_lake, simulator, hub_home, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    merged = sync.merge(SHANYANG, sync.land(SHANYANG, "full"))
    accepted = merged.counts["household"]["accepted"]
    assert accepted > 0

    catalog.forget()  # a fresh attach: the rows come back from the bucket, not from a cache
    with warehouse.connect(read_only=True) as con:
        households = live_households(con, SHANYANG.code)
        files = con.execute(
            "SELECT data_file FROM ducklake_list_files(current_database(), 'household', "
            "schema => 'core')"
        ).fetchall()
    assert households == accepted
    assert files and all(f.startswith(f"s3://{BUCKET}/shangluo/core/household/") for (f,) in files)
    keys = {o["Key"] for o in s3_lake.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f.removeprefix(f"s3://{BUCKET}/") for (f,) in files} <= keys
    assert not (hub_home / "lake" / "data").exists()  # nothing went to the local default
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text + out + err


def _attach() -> None:
    with warehouse.connect(read_only=True):
        pass


def test_bad_s3_settings_fail_clearly_and_never_show_the_secret(s3_lake, monkeypatch):
    from base import settings

    assert SECRET not in repr(settings.lake_s3()) and "secret='***'" in repr(settings.lake_s3())
    monkeypatch.setenv("HUB_LAKE_S3_URL_STYLE", "sideways")
    catalog.forget()
    with pytest.raises(settings.SettingsError, match="HUB_LAKE_S3_URL_STYLE") as raised:
        _attach()
    assert SECRET not in str(raised.value)
    monkeypatch.setenv("HUB_LAKE_S3_URL_STYLE", "path")
    monkeypatch.delenv("HUB_LAKE_S3_SECRET")
    catalog.forget()
    with pytest.raises(settings.SettingsError, match="HUB_LAKE_S3_KEY_ID and HUB_LAKE_S3_SECRET"):
        _attach()
    monkeypatch.setenv("HUB_LAKE_DATA_PATH", "gs://elsewhere/")
    catalog.forget()
    with pytest.raises(object_store.ObjectStoreUnavailable, match="only local directories"):
        _attach()
