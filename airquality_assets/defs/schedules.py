"""Hourly ingestion of the newest partition of every location (off by default).

"Newest" follows the deployment's clock (:mod:`airquality_assets.clock`): the tick's time for
the live APIs, the replay instant for the bundled data, so the schedule behaves the same
against both. The frames
downstream carry an eager automation condition: once a day's raw bodies land, Dagster's
automation sensor rebuilds that month's frames (and the neighbouring month's observations).
"""

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from airquality_assets.defs.jobs import ingestion_job
from airquality_assets.defs.resources import DeploymentResource


def newest_partition_requests(
    now: datetime, location_names: Sequence[str], run_key_prefix: str = "hourly"
) -> list[dg.RunRequest]:
    """One run request per location for the day that holds the source's current hour."""
    day = now.date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{day}|{location}:{now:%Y%m%dT%H}",
            partition_key=dg.MultiPartitionKey({"date": day, "location": location}),
        )
        for location in location_names
    ]


@dg.schedule(
    job=ingestion_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :05, pull the newest day of every location.",
)
def hourly_ingestion_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> list[dg.RunRequest]:
    settings = deployment.settings
    clock = settings.clock
    now = clock.now() if clock.is_replay else clock.now(wall=context.scheduled_execution_time)
    return newest_partition_requests(now, settings.location_names)
