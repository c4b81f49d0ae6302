"""Module-level job factories, so ``dagster.reconstructable`` can rebuild them in step processes
(``hub demo`` runs the same jobs the schedules launch, with the multiprocess executor)."""

from __future__ import annotations

from pipelines.forkserver import start_forkserver


def _job(name: str):
    from pipelines.definitions import defs

    return defs.resolve_job_def(name)


def sync_all_counties_job():
    start_forkserver("sync_all_counties")  # before the code location's import: `hub demo`
    return _job("sync_all_counties")


def sync_city_job():
    return _job("sync_city")
