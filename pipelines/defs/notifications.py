"""Dagster side of closing the loop with the counties: the weekly data-quality letters and the
freshness watch. The work is in ``pipelines.weekly_report`` and ``pipelines.notify``."""

import dagster as dg

from pipelines import notify
from seeds.registry import counties


class LetterConfig(dg.Config):
    week: str = "last"  # ISO week (2026-W49), a date in it, "this" or "last"
    send: bool = True


@dg.op(description="Write every county's weekly data-quality letter and send or link it.")
def weekly_letters(context: dg.OpExecutionContext, config: LetterConfig) -> None:
    from pipelines.weekly_report import Week, send_letter, write_letter

    week = Week.parse(config.week)
    for county in counties():
        letter = write_letter(county, week)
        sent = send_letter(letter) if config.send else False
        context.log.info(
            f"{county.slug} {week.label}: {letter.open_issues} records, {letter.path.name}, "
            f"{'sent' if sent else 'not sent'}"
        )


@dg.job(description="The counties' weekly data-quality letters (数据质量周报), from the snapshot.")
def weekly_quality_letters():
    weekly_letters()


weekly_letters_schedule = dg.ScheduleDefinition(
    name="weekly_quality_letters_monday",
    job=weekly_quality_letters,
    cron_schedule="0 8 * * 1",  # Monday 08:00, for the week that just ended
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.sensor(
    name="notify_stale_counties",
    minimum_interval_seconds=900,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Tells a county (and the city) when its data is older than its freshness window.",
)
def stale_counties_sensor(context: dg.SensorEvaluationContext):
    stale = notify.stale_counties()
    return dg.SkipReason(f"stale: {', '.join(stale)}" if stale else "every county is fresh")
