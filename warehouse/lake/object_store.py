"""The lake's data path on object storage (``HUB_LAKE_DATA_PATH=s3://bucket/prefix/``).

DuckDB reads and writes ``s3://`` through its ``httpfs`` extension (loaded offline from the
pinned wheel, ``warehouse.lake.extensions``) with a secret made from the settings
(``base.settings.lake_s3``). The secret is TEMPORARY: it lives in the process's DuckDB instance
only, never in a file, and it is scoped to the lake's bucket. Neither the secret nor a
statement holding it ever reaches a log or an exception.
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


def prepare(con: duckdb.DuckDBPyConnection, data_path: str) -> None:
    """Make ``data_path`` usable from ``con``'s DuckDB instance: httpfs loaded, the secret made."""
    if not data_path.startswith("s3://"):
        raise ObjectStoreUnavailable(
            f"HUB_LAKE_DATA_PATH={data_path}: only local directories and s3:// (any store with "
            "the S3 API) are supported"
        )
    s3 = settings.lake_s3()
    bucket = data_path[len("s3://") :].split("/", 1)[0]
    options = [
        "TYPE s3",
        f"KEY_ID {literal(s3.key_id)}",
        f"SECRET {literal(s3.secret)}",
        f"REGION {literal(s3.region)}",
        f"URL_STYLE {literal(s3.url_style)}",
        f"USE_SSL {'true' if s3.use_ssl else 'false'}",
        f"SCOPE {literal(f's3://{bucket}/')}",
    ] + ([f"ENDPOINT {literal(s3.endpoint)}"] if s3.endpoint else [])
    extensions.load_httpfs(con)
    try:
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {SECRET_NAME} ({', '.join(options)})")
    except duckdb.Error as exc:
        message = str(exc).replace(s3.secret, "***").splitlines()[0]
        raise ObjectStoreUnavailable(
            f"cannot set up the S3 secret for {data_path}: {message}"
        ) from None
