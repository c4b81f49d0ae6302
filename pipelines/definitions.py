"""The Dagster code location of the hub: every county's group, the city assets, checks and automation."""

from __future__ import annotations

# First, before anything reads a setting (the registry, county URLs, the PII key): the
# environment and .env, the profile, the owner-only umask; production refuses to start without
# a proper HUB_PII_KEY (the code location then fails to load with that message). Schedules,
# sensors and step processes all run from this module, so they all see the same settings.
from base import settings

settings.load()
settings.check_pii_key()
# Dagster created its instance files (DAGSTER_HOME under HUB_HOME) before importing this module,
# under the caller's umask: make them, and anything older, owner-only too.
settings.secure_home()

import dagster as dg  # noqa: E402

from pipelines import executor_waits  # noqa: E402

# a run blocked on a pool slot waits instead of spinning a core (pipelines/executor_waits.py)
executor_waits.apply()

from pipelines.defs.automation import automation_defs  # noqa: E402
from pipelines.defs.city import marts, snapshot  # noqa: E402
from pipelines.defs.counties import county_assets  # noqa: E402

defs = dg.Definitions(
    assets=[*county_assets(), marts, snapshot],
    **automation_defs(),
)
