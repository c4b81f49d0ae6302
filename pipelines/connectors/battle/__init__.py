"""The 脱贫攻坚作战平台 of 商南, 山阳, 镇安 (v3) and 商州 (v2) (shared/platforms/battle.md): a
login token, page-number paging; v2 cannot filter by time."""

from datetime import timedelta

from pipelines.connectors.battle.client import BattleClient
from pipelines.connectors.battle.layout import VERSIONS_WITHOUT_TIME_FILTER
from pipelines.connectors.battle.normalise import normalise
from pipelines.connectors.registry import Connector, register
from schemas.columns import ENTITY_ORDER

register(
    Connector(
        kind="battle",
        client=BattleClient,
        normalise=normalise,
        entities=ENTITY_ORDER,
        label="脱贫攻坚作战平台 (battle)",
        freshness_warn=timedelta(hours=3),
        freshness_fail=timedelta(hours=6),
        versions_without_time_filter=VERSIONS_WITHOUT_TIME_FILTER,
    )
)
