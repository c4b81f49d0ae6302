"""A toy platform kind, to prove that a new kind is one folder plus one registration line.

The "toy" platform serves two JSON listings, ``/regions`` and ``/projects``, behind a bearer
key. This package is what a real kind is (``pipelines/connectors/<kind>/``): a client, a
normaliser and the one ``register`` call below; nothing else in the hub is edited.
"""

from datetime import timedelta

from pipelines.connectors.registry import Connector, register
from tests.e2e.toy_kind.client import ToyClient
from tests.e2e.toy_kind.normalise import normalise

register(
    Connector(
        kind="toy",
        client=ToyClient,
        normalise=normalise,
        entities=("region", "project"),
        label="玩具平台 (toy)",
        freshness_warn=timedelta(hours=3),
        freshness_fail=timedelta(hours=6),
    )
)
