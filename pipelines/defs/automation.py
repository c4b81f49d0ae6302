"""Jobs, schedules and sensors: when each county syncs, and what happens when a sync fails.

- API counties (bigdata, battle) sync incrementally every hour and in full every night (a full
  listing is the only way a battle platform reveals deletions).
- Workbook counties sync when a new file appears in their export index (one sensor each).
- A failed run is written to ``ops.sync_run`` by the run-failure sensor; sensors never open the
  live warehouse (it is single-writer), so the failure is queued in a file and the next step in
  the ``duckdb_warehouse`` pool records it.
"""

import dagster as dg

from pipelines import forkserver

# In a code server's run worker (the runs the daemon and the UI launch), the forkserver starts
# here, before the rest of the code location is imported: its preload then runs beside that
# import and the run's setup instead of before the run's first step (pipelines/forkserver.py).
forkserver.start_forkserver(forkserver.run_worker_job())

import warehouse  # noqa: E402
from base.settings import NotConfigured  # noqa: E402
from pipelines import notify  # noqa: E402
from pipelines.connectors.registry import connector_for  # noqa: E402
from pipelines.defs.city import MARTS, SNAPSHOT  # noqa: E402
from pipelines.defs.keys import LANDING_TAG, LANDINGS_AT_ONCE, WAREHOUSE_TAG  # noqa: E402
from pipelines.run_health import free_dead_runs  # noqa: E402
from pipelines.sources import client_for, connection_settings  # noqa: E402
from seeds.registry import County, counties  # noqa: E402


def polled_hourly(county: County) -> bool:
    """An API county (its connector's trigger is the schedule): synced incrementally hourly."""
    return connector_for(county).hourly


def watches_new_files(county: County) -> bool:
    """A county whose platform publishes export files: one new-file sensor each."""
    return not connector_for(county).hourly


#: Step processes a run may have at once: the landings (LANDING_TAG), one merge, and room for
#: one more. Dagster counts a step's process until it has exited, which is a while after its
#: step succeeded; with four landings in four slots, the next merge waited for that exit
#: (0.8-1.2 s under load) on the serial merge chain (bench/history.md, "The merge chain's gaps").
STEP_PROCESSES = LANDINGS_AT_ONCE + 2

#: Every sync job runs steps in processes started from a preloaded forkserver (a fresh
#: interpreter per step would re-import Dagster and polars, ~2 s each), fetches up to four
#: counties at once (LANDING_TAG), and runs the warehouse steps of a run one at a time (see
#: WAREHOUSE_TAG).
hub_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": STEP_PROCESSES,
        "start_method": {"forkserver": {"preload_modules": [forkserver.PRELOAD]}},
        "tag_concurrency_limits": [
            *({"key": k, "value": v, "limit": 1} for k, v in WAREHOUSE_TAG.items()),
            *({"key": k, "value": v, "limit": LANDINGS_AT_ONCE} for k, v in LANDING_TAG.items()),
        ],
    },
    name="hub_executor",
)


def _mode_config(selected: list[County], mode: str) -> dict:
    return {"ops": {f"{c.slug}__landing": {"config": {"mode": mode}} for c in selected}}


def _groups(selected: list[County]) -> dg.AssetSelection:
    return dg.AssetSelection.groups(*[c.slug for c in selected])


def county_job(county: County):
    return dg.define_asset_job(
        f"sync_{county.slug}",
        selection=_groups([county]),
        description=f"Sync {county.name} ({county.code}) into the warehouse.",
        executor_def=hub_executor,
        tags={"county": county.slug},
    )


sync_all_counties = dg.define_asset_job(
    "sync_all_counties",
    executor_def=hub_executor,
    selection=_groups(list(counties())),
    description="Sync every county of the registry (each county independent of the others).",
)
#: The city job's two steps run one after the other in the pool anyway, so they run in the run's
#: own process: no forkserver to start (a second import of the code location) and no step
#: processes, about 3 CPU-s and 2 s less per city run (bench/history.md, "The orchestration
#: floor"). The in-process executor claims the same pool slots and logs its process id
#: ("Executing steps in process (pid: …)"), which is how ``run_health`` finds a dead run.
sync_city = dg.define_asset_job(
    "sync_city",
    executor_def=dg.in_process_executor,
    selection=dg.AssetSelection.assets(MARTS, SNAPSHOT),
    description="Rebuild the marts and publish the analyst snapshot from what the warehouse holds.",
)

api_counties = [c for c in counties() if polled_hourly(c)]
api_job = dg.define_asset_job(
    "sync_api_counties",
    executor_def=hub_executor,
    selection=_groups(api_counties),
    description="Sync the counties with an API platform (bigdata, battle).",
)

hourly_incremental = dg.ScheduleDefinition(
    name="hourly_incremental_api_counties",
    job=api_job,
    cron_schedule="5 * * * *",
    execution_timezone="Asia/Shanghai",
    run_config=_mode_config(api_counties, "incremental"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
nightly_full = dg.ScheduleDefinition(
    name="nightly_full_all_counties",
    job=sync_all_counties,
    cron_schedule="30 2 * * *",
    execution_timezone="Asia/Shanghai",
    run_config=_mode_config(list(counties()), "full"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
city_after_syncs = dg.ScheduleDefinition(
    name="city_marts_after_syncs",
    job=sync_city,
    cron_schedule="45 * * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Backstop for the automation condition: marts and snapshot every hour.",
)


#: HTTP knobs of a sensor's look at an export index (a sync's own retries would outlast the
#: sensor's timeout when the platform is down).
SENSOR_HTTP = {
    "HUB_HTTP_RETRIES": "1",
    "HUB_HTTP_BODY_ATTEMPTS": "2",
    "HUB_HTTP_READ_TIMEOUT": "30",
}


def new_file_sensor(county: County, job) -> dg.SensorDefinition:
    """Launches the county's job when its platform lists an export newer than the last one
    merged (a connector with trigger NEW_FILE: its client has ``export_names()``)."""

    @dg.sensor(
        name=f"{county.slug}_new_export",
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Launches sync_{county.slug} when a new file appears in {county.name}'s export index.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        try:
            # a quick look, well inside Dagster's sensor timeout: the next tick tries again
            client = client_for(county, {**connection_settings(county), **SENSOR_HTTP})
        except NotConfigured as not_configured:  # production without HUB_<SLUG>_URL
            return dg.SkipReason(str(not_configured))
        try:
            names = client.export_names()
        finally:
            client.close()
        processed = warehouse.read_state(county).get("file")
        new = names[names.index(processed) + 1 :] if processed in names else names
        if not new:
            return dg.SkipReason(f"no new export since {processed}")
        # run_key = newest file: one run per new file, however often the sensor ticks.
        return dg.RunRequest(
            run_key=f"{county.slug}:{new[-1]}", tags={"county": county.slug, "export": new[-1]}
        )

    return _sensor


@dg.run_failure_sensor(
    name="record_sync_failures",
    # Every failed run, whatever started it: runs launched from the UI or the schedules belong to
    # this code location, but `hub demo` (and any script) executes jobs in its own process, and
    # those runs have no code location at all; a sensor limited to its own location skips them.
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Queues every failed run's error for ops.sync_run (written by the next pool step).",
)
def record_sync_failures(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    current = context.instance.get_run_by_id(run.run_id)
    if current is not None and current.status == dg.DagsterRunStatus.CANCELED:
        return  # stopped by its user (Ctrl-C in hub demo marks the run canceled): not a failure
    error = context.failure_event.message if context.failure_event else "run failed"
    # A run of several counties (sync_all_counties, the schedules' jobs) has no county tag:
    # each failed step is recorded against the county whose step it is, so mart.sync_status
    # shows the county that failed rather than an anonymous run.
    failed: dict[str | None, str] = {}
    for step in context.get_step_failure_events():
        data = step.event_specific_data
        message = _root_message(data.error) if data is not None and data.error else error
        failed.setdefault(_county_of_step(step.step_key) or run.tags.get("county"), message)
    for county, message in (failed or {run.tags.get("county"): error}).items():
        warehouse.queue_failure(run_id=run.run_id, job=run.job_name, county=county, error=message)
        notify.run_failed(county, run.run_id, message)  # once: a no-op if the step told already


def _root_message(error) -> str:
    """The hub's own error under Dagster's wrapper ("Error occurred while executing op …")."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.message.strip()


def _county_of_step(step_key: str | None) -> str | None:
    """The slug of the county a step belongs to (``<slug>__landing``, ``<slug>_merge``)."""
    for county in counties():
        if step_key in (f"{county.slug}__landing", f"{county.slug}_merge"):
            return county.slug
    return None


# Evaluates the city assets' automation conditions (marts after county syncs, then the
# snapshot); Dagster's default automation sensor starts stopped, this one runs from the start.
city_automation = dg.AutomationConditionSensorDefinition(
    "city_after_county_syncs",
    target=dg.AssetSelection.groups("city"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Rebuilds the marts, then publishes the snapshot, after county syncs.",
)


def automation_defs() -> dict:
    jobs = [sync_all_counties, sync_city, api_job]
    sensors = [record_sync_failures, city_automation, free_dead_runs]
    for county in counties():
        job = county_job(county)
        jobs.append(job)
        if watches_new_files(county):
            sensors.append(new_file_sensor(county, job))
    from pipelines.defs import notifications  # weekly letters and the freshness watch

    return {
        "jobs": [*jobs, notifications.weekly_quality_letters],
        "schedules": [
            hourly_incremental,
            nightly_full,
            city_after_syncs,
            notifications.weekly_letters_schedule,
        ],
        "sensors": [*sensors, notifications.stale_counties_sensor],
    }
