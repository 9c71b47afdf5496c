"""Hourly ingestion of the newest partition of every location (off by default).

"Newest" follows the configured source's clock: wall time for the live APIs, the replay
instant for the bundled data, so the schedule behaves the same against both. The frames
downstream carry an eager automation condition: once a day's raw bodies land, Dagster's
automation sensor rebuilds that month's frames (and the neighbouring month's observations).
"""

from datetime import UTC, datetime

import dagster as dg

from airquality_assets.defs.jobs import ingestion_job
from airquality_assets.settings import get_settings


def newest_partition_requests(now: datetime, run_key_prefix: str = "hourly") -> list[dg.RunRequest]:
    """One run request per location for the day that holds the source's current hour."""
    settings = get_settings()
    day = now.date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{day}|{location}:{now:%Y%m%dT%H}",
            partition_key=dg.MultiPartitionKey({"date": day, "location": location}),
        )
        for location in settings.location_names
    ]


@dg.schedule(
    job=ingestion_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :05, pull the newest day of every location.",
)
def hourly_ingestion_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    settings = get_settings()
    if settings.source == "replay":
        now = settings.replay_now
    else:
        now = context.scheduled_execution_time.astimezone(UTC)
    return newest_partition_requests(now)
