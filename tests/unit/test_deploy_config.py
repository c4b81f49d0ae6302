"""deploy/dagster.postgres.yaml (docs/engineering/scale-out.md) is the repo's dagster.yaml plus
PostgreSQL storage: the two never drift apart."""

from __future__ import annotations

import yaml

from base.paths import REPO


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text(encoding="utf-8"))


def test_the_province_instance_is_the_repo_instance_plus_postgres_storage():
    province, local = _load("deploy/dagster.postgres.yaml"), _load("dagster.yaml")
    storage = province.pop("storage")
    local.pop("event_log_storage")  # the local SQLite event log (pipelines/event_log.py)
    assert province == local
    assert storage == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
