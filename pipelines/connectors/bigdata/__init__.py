"""洛南's 精准扶贫大数据平台 (shared/platforms/bigdata.md): an appKey/appSecret token API with
cursor paging, a deletion feed and per-entity statistics."""

from datetime import timedelta

from pipelines.connectors.bigdata.client import BigdataClient
from pipelines.connectors.bigdata.normalise import normalise
from pipelines.connectors.registry import Connector, register
from schemas.columns import ENTITY_ORDER

register(
    Connector(
        kind="bigdata",
        client=BigdataClient,
        normalise=normalise,
        entities=ENTITY_ORDER,
        label="精准扶贫大数据平台 (bigdata)",
        freshness_warn=timedelta(hours=3),  # synced hourly: a few hours is late
        freshness_fail=timedelta(hours=6),
    )
)
