"""The Dagster code location of the hub: every county's group, the city assets, checks and automation."""

from __future__ import annotations

import dagster as dg
from dotenv import load_dotenv

from pipelines.defs.automation import automation_defs
from pipelines.defs.city import marts, snapshot
from pipelines.defs.counties import county_assets

load_dotenv()  # HUB_<SLUG>_URL/_KEY/_SECRET and HUB_PII_KEY may live in .env (git-ignored)

defs = dg.Definitions(
    assets=[*county_assets(), marts, snapshot],
    **automation_defs(),
)
