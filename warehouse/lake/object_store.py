"""A lake's data path on object storage (``HUB_LAKE_DATA_PATH`` or
``HUB_ANALYST_LAKE_DATA_PATH`` = ``s3://bucket/prefix/``).

DuckDB reads and writes ``s3://`` through its ``httpfs`` extension (loaded offline from the
pinned wheel, ``warehouse.lake.extensions``) with a secret made from the settings: the hub's
key (``base.settings.lake_s3``) wherever the hub writes, the analysts' read-only key
(``base.settings.analyst_lake_s3``) where analysts read (``pipelines.lake.tiers``). A secret is
TEMPORARY: it lives in the process's DuckDB instance only, never in a file, and it is scoped to
its lake's data path. Neither a secret nor a statement holding it ever reaches a log or an
exception.
"""

from __future__ import annotations

import duckdb

from base import settings
from base.errors import HubError
from warehouse.lake import extensions
from warehouse.statements import literal

SECRET_NAME = "hub_lake_data"


class ObjectStoreUnavailable(HubError):
    """The object store of the lake's data path cannot be used; says why, never the secret."""


def is_object_store(data_path: str) -> bool:
    return "://" in data_path


def _supported(data_path: str, setting: str) -> None:
    if not data_path.startswith("s3://"):
        raise ObjectStoreUnavailable(
            f"{setting}={data_path}: only local directories and s3:// (any store with "
            "the S3 API) are supported"
        )


def secret_statement(
    data_path: str,
    s3: settings.LakeS3 | None = None,
    name: str = SECRET_NAME,
    setting: str = "HUB_LAKE_DATA_PATH",
) -> str:
    """``CREATE TEMPORARY SECRET name`` for ``data_path`` (the value of ``setting``), from ``s3``
    (default: the hub's key, ``settings.lake_s3``), scoped to ``data_path`` itself: two lakes'
    secrets in one instance (the city step's publish) never answer for each other's files. The
    statement holds the key: execute it or hand it over privately, never log or show it."""
    _supported(data_path, setting)
    s3 = s3 or settings.lake_s3()
    options = [
        "TYPE s3",
        f"KEY_ID {literal(s3.key_id)}",
        f"SECRET {literal(s3.secret)}",
        f"REGION {literal(s3.region)}",
        f"URL_STYLE {literal(s3.url_style)}",
        f"USE_SSL {'true' if s3.use_ssl else 'false'}",
        f"SCOPE {literal(data_path)}",
    ] + ([f"ENDPOINT {literal(s3.endpoint)}"] if s3.endpoint else [])
    return f"CREATE OR REPLACE TEMPORARY SECRET {name} ({', '.join(options)})"


def prepare(
    con: duckdb.DuckDBPyConnection,
    data_path: str,
    s3: settings.LakeS3 | None = None,
    *,
    name: str = SECRET_NAME,
    setting: str = "HUB_LAKE_DATA_PATH",
) -> None:
    """Make ``data_path`` usable from ``con``'s DuckDB instance: httpfs loaded, the secret made
    (:func:`secret_statement`)."""
    _supported(data_path, setting)  # before the key's settings: the scheme is the problem
    s3 = s3 or settings.lake_s3()
    statement = secret_statement(data_path, s3, name, setting)
    extensions.load_httpfs(con)
    try:
        con.execute(statement)
    except duckdb.Error as exc:
        message = str(exc).replace(s3.secret, "***").splitlines()[0]
        raise ObjectStoreUnavailable(
            f"cannot set up the S3 secret ({s3.prefix}*) for {data_path}: {message}"
        ) from None
