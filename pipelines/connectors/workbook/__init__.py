"""The workbook uploads of 柞水 (xlsx) and 丹凤 (csv) (shared/platforms/workbook.md): an export
index and files behind optional basic auth; regions are derived from the files' names."""

from datetime import timedelta

from pipelines.connectors.registry import NEW_FILE, Connector, register
from pipelines.connectors.workbook.client import WorkbookClient
from pipelines.connectors.workbook.normalise import normalise
from schemas.columns import WORKBOOK_ENTITIES

register(
    Connector(
        kind="workbook",
        client=WorkbookClient,
        normalise=normalise,
        entities=("region", *WORKBOOK_ENTITIES),  # regions are derived from the file's names
        label="扶贫数据报送 workbook drop",
        freshness_warn=timedelta(days=7),  # exports arrive about weekly
        freshness_fail=timedelta(days=8),
        trigger=NEW_FILE,
        credentials_required=False,
        stale_hint_zh="请上传新的导出文件（或检查文件服务）",
    )
)
