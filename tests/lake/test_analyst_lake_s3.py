"""The analyst lake on object storage (``HUB_ANALYST_LAKE_DATA_PATH=s3://...``), end to end: a
county synced into a main lake in one bucket, the city step (Dagster's ``sync_city``) publishes
the analyst lake into another bucket with the hub's key, and the analysts' reader — with their
own key only, the hub's unset — reads the de-identified rows back through a fresh attach, in
safe mode, from Python, ``hub sql`` and its shell.

The S3 server is moto's (``ThreadedMotoServer`` on loopback, tests/lake/conftest.py) with its
IAM checks switched on after the set-up: every request must be signed by a key moto issued and
be allowed by that key's policy — the hub's key may do anything in both buckets, the analysts'
key has the read-only policy of docs/engineering/scale-out.md. moto emulates the S3 API and its
policy evaluation; a real store's latency and consistency are not tested here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import duckdb
import pytest

import warehouse
from base import settings
from pipelines import sync
from pipelines.lake import tiers
from schemas.columns import IDENTIFYING
from seeds.registry import county
from tests.e2e.helpers import sync_city
from tests.pii_scan import pii_hits
from warehouse.lake import catalog, extensions, object_store

pytestmark = [pytest.mark.lake, pytest.mark.e2e]
SHANYANG = county("shanyang")
MAIN_BUCKET, ANALYST_BUCKET = "hub-lake", "hub-analyst"
MAIN_PATH, ANALYST_PATH = f"s3://{MAIN_BUCKET}/shangluo/", f"s3://{ANALYST_BUCKET}/shangluo/"
HUB_KEY = ("HUB_LAKE_S3_KEY_ID", "HUB_LAKE_S3_SECRET")
#: The hub's policy: everything in both buckets (it writes, and expires old analyst files).
HUB_POLICY = [
    {
        "Effect": "Allow",
        "Action": "s3:*",
        "Resource": [
            f"arn:aws:s3:::{b}{k}" for b in (MAIN_BUCKET, ANALYST_BUCKET) for k in ("", "/*")
        ],
    }
]
#: The analysts' policy, as docs/engineering/scale-out.md gives it.
ANALYST_POLICY = [
    {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{ANALYST_BUCKET}/shangluo/*",
    },
    {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{ANALYST_BUCKET}",
        "Condition": {"StringLike": {"s3:prefix": "shangluo/*"}},
    },
]


@dataclass
class Store:
    url: str
    client: object  # boto3's S3 client, signed with the hub's key
    hub: tuple[str, str]  # key id, secret
    analyst: tuple[str, str]


def _user(iam, name: str, statements: list[dict]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-lake", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture
def s3_lakes(s3_server, postgres, hub_home, monkeypatch):
    import boto3
    import requests

    url = f"http://{s3_server}"
    setup = {"endpoint_url": url, "region_name": "us-east-1",
             "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}  # fmt: skip
    for bucket in (MAIN_BUCKET, ANALYST_BUCKET):
        boto3.client("s3", **setup).create_bucket(Bucket=bucket)
    iam = boto3.client("iam", **setup)
    hub, analyst = _user(iam, "hub", HUB_POLICY), _user(iam, "analyst", ANALYST_POLICY)
    # From here on every request is checked against the keys and policies above.
    requests.post(f"{url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    for key, value in {
        "HUB_WAREHOUSE_BACKEND": "ducklake",
        "HUB_LAKE_CATALOG": postgres.recreate_database("s3_tiers_main"),
        "HUB_ANALYST_LAKE_CATALOG": postgres.recreate_database("s3_tiers_analyst"),
        "HUB_LAKE_DATA_PATH": MAIN_PATH,
        "HUB_ANALYST_LAKE_DATA_PATH": ANALYST_PATH,
        "HUB_LAKE_S3_ENDPOINT": s3_server,  # the analysts' endpoint settings fall back to these
        "HUB_LAKE_S3_KEY_ID": hub[0],
        "HUB_LAKE_S3_SECRET": hub[1],
        "HUB_LAKE_S3_URL_STYLE": "path",
        "HUB_LAKE_S3_USE_SSL": "false",
        "HUB_ANALYST_LAKE_S3_KEY_ID": analyst[0],
        "HUB_ANALYST_LAKE_S3_SECRET": analyst[1],
    }.items():
        monkeypatch.setenv(key, value)
    catalog.forget()
    signed = {**setup, "aws_access_key_id": hub[0], "aws_secret_access_key": hub[1]}
    try:
        yield Store(url, boto3.client("s3", **signed), hub, analyst)
    finally:
        catalog.forget()  # moto's checks are per process: off again for the next test
        requests.post(f"{url}/moto-api/reset-auth", data=b"inf", timeout=10)


def _keys(client, bucket: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def _as_analyst(monkeypatch) -> dict[str, str]:
    """An analyst's machine: the analysts' key, not the hub's."""
    for name in HUB_KEY:
        monkeypatch.delenv(name)
    catalog.forget()
    return dict(os.environ)


def test_the_city_step_publishes_the_analyst_lake_into_its_bucket_and_analysts_read_it(
    s3_lakes, simulator, hub_home, monkeypatch, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    secrets_used = (s3_lakes.hub[1], s3_lakes.analyst[1])
    merged = sync.merge(SHANYANG, sync.land(SHANYANG, "full"))
    assert merged.counts["household"]["accepted"] > 0
    assert not _keys(s3_lakes.client, ANALYST_BUCKET)
    assert sync_city().success  # marts, then the analyst lake's publish (tiers.publish)
    with warehouse.connect(read_only=True) as con:
        live = con.execute(
            "SELECT count(*) FROM core.household WHERE deleted_at IS NULL"
        ).fetchone()[0]

    analyst_keys = _keys(s3_lakes.client, ANALYST_BUCKET)
    assert analyst_keys and all(k.startswith("shangluo/") for k in analyst_keys)
    assert not (hub_home / "analyst-lake").exists()  # nothing of it written locally
    assert not (hub_home / "lake" / "data").exists()
    _no_identifiers_anywhere()
    with tiers.restricted_connection() as con:  # the main lake in its bucket: the hub's key
        assert con.execute("SELECT count(name) FROM core.person").fetchone()[0] > 0

    env = _as_analyst(monkeypatch)
    with tiers.analyst_connection() as con:  # a fresh attach, the analysts' key only
        households = con.execute(
            "SELECT count(*) FROM core.household WHERE deleted_at IS NULL"
        ).fetchone()[0]
        files = con.execute(
            "SELECT data_file FROM ducklake_list_files('analyst', 'household', schema => 'core')"
        ).fetchall()
        secrets = con.execute("SELECT name, scope, secret_string FROM duckdb_secrets()").fetchall()
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = 'analyst' AND schema_name = 'core'"
        ).fetchall()
        with pytest.raises(duckdb.Error, match=r"disabled|not allowed|Permission"):
            con.execute(f"SELECT count(*) FROM read_parquet('{MAIN_PATH}**/*.parquet')")
    assert households == live > 0
    assert files and all(f.startswith(f"{ANALYST_PATH}core/household/") for (f,) in files)
    assert {f.removeprefix(f"s3://{ANALYST_BUCKET}/") for (f,) in files} <= analyst_keys
    assert [(name, scope) for name, scope, _ in secrets] == [
        (tiers.SECRETS[tiers.ANALYST_PATH], [ANALYST_PATH])
    ]
    assert f"key_id={s3_lakes.analyst[0]};" in secrets[0][2]
    assert s3_lakes.analyst[1] not in secrets[0][2]
    identifying = {(t, c) for t, cols in IDENTIFYING.items() for c in cols}
    identifying |= {(f"{t}_history", c) for t, c in identifying}
    assert columns and not identifying & set(columns)

    _the_analysts_key_only_reads(s3_lakes)
    _hub_sql_reads_it(env, str(live), secrets_used)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert not [secret for secret in secrets_used if secret in logged]


def _the_analysts_key_only_reads(store: Store) -> None:
    """Outside safe mode, the analysts' key itself (the store's policy) writes nothing in the
    analyst prefix and reads nothing of the main lake."""
    main_file = sorted(_keys(store.client, MAIN_BUCKET))[0]
    con = duckdb.connect()
    try:
        for path, name in [(ANALYST_PATH, "a"), (MAIN_PATH, "m")]:
            object_store.prepare(con, path, settings.analyst_lake_s3(), name=name)
        with pytest.raises(duckdb.Error, match=r"403|Forbidden|AccessDenied"):
            con.execute(f"COPY (SELECT 1 AS x) TO '{ANALYST_PATH}planted.parquet'")
        with pytest.raises(duckdb.Error, match=r"403|Forbidden|AccessDenied"):
            con.execute(f"SELECT count(*) FROM read_parquet('s3://{MAIN_BUCKET}/{main_file}')")
    finally:
        con.close()
    assert "shangluo/planted.parquet" not in _keys(store.client, ANALYST_BUCKET)


def _no_identifiers_anywhere() -> None:
    """The PII scan of every value of the analyst lake in the bucket (tests/pii_scan.py), beside
    the main lake it came from (the hub's key: both attached read-only)."""
    con = duckdb.connect()
    try:
        extensions.load(con)
        object_store.prepare(con, MAIN_PATH)
        object_store.prepare(con, ANALYST_PATH, name="analyst_data")
        for alias, dsn, path in [
            ("analyst", settings.analyst_lake_catalog(), ANALYST_PATH),
            ("pii", settings.lake_catalog(), MAIN_PATH),
        ]:
            con.execute(tiers.attach_sql(alias, dsn, path, read_only=True))
        con.execute("USE analyst")
        assert con.execute("SELECT count(*) FROM core.person").fetchone()[0] > 0
        assert pii_hits(con, "pii", ("core", "ops", "mart")) == []
    finally:
        con.close()


def _hub_sql_reads_it(env: dict[str, str], live: str, secrets: tuple[str, str]) -> None:
    """``hub sql`` and its DuckDB shell on the analysts' machine: the rows, and the secret in
    no argument of the shell (its commands come through a pipe) and in no output."""

    def hub_sql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "sql", *args],
            input=stdin, capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    counted = hub_sql("--csv", "SELECT count(*) FROM core.household WHERE deleted_at IS NULL")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.splitlines()[1] == live
    shell = hub_sql(stdin="SELECT count(*) AS n FROM core.household WHERE deleted_at IS NULL;\n")
    assert shell.returncode == 0 and live in shell.stdout, shell.stdout + shell.stderr
    command = tiers.analyst_shell_command()
    os.close(int(command[-1].rsplit("/", 1)[1]))  # the pipe this process would hand over
    assert not [arg for arg in command for secret in secrets if secret in arg]
    for done in (counted, shell):
        assert not [secret for secret in secrets if secret in done.stdout + done.stderr]


def test_the_analysts_reader_needs_their_own_key_and_says_which_setting(s3_lakes, monkeypatch):
    _as_analyst(monkeypatch)
    monkeypatch.delenv("HUB_ANALYST_LAKE_S3_SECRET")
    with pytest.raises(settings.SettingsError, match="HUB_ANALYST_LAKE_S3_SECRET") as raised:
        tiers.analyst_connection()
    assert "HUB_ANALYST_LAKE_DATA_PATH=" + ANALYST_PATH in str(raised.value)
    monkeypatch.setenv("HUB_ANALYST_LAKE_S3_SECRET", s3_lakes.analyst[1])
    monkeypatch.setenv("HUB_LAKE_S3_KEY_ID", s3_lakes.analyst[0])  # analysts given the hub's
    with pytest.raises(settings.SettingsError, match="separate key") as raised:
        tiers.analyst_connection()
    assert s3_lakes.analyst[1] not in str(raised.value)
    monkeypatch.setenv("HUB_ANALYST_LAKE_DATA_PATH", "gs://elsewhere/")
    monkeypatch.delenv("HUB_LAKE_S3_KEY_ID")
    with pytest.raises(object_store.ObjectStoreUnavailable, match="HUB_ANALYST_LAKE_DATA_PATH="):
        tiers.analyst_connection()
