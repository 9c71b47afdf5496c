"""Hourly ingestion of the newest partition of every location (off by default).

"Newest" follows the deployment's clock (:mod:`airquality_assets.clock`): the tick's time for
the live APIs, the replay instant for the bundled data, so the schedule behaves the same
against both. The frames downstream carry an eager automation condition: once a month's
new raw bodies land, Dagster's automation sensor rebuilds that month's frames (and the
neighbouring months' observations).
"""

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from airquality_assets.defs.data.jobs import ingestion_job
from airquality_assets.defs.partitions import range_tags
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.sources.spans import months_to_refresh


def newest_partition_requests(
    now: datetime, location_names: Sequence[str], run_key_prefix: str = "hourly"
) -> list[dg.RunRequest]:
    """ONE run request for every location: the month holding the source's current hour (and
    the month before while its last hours are within the refetch window). Each partition
    then pulls only its newest hours (:func:`~airquality_assets.sources.spans.month_pull_span`).
    """
    months = months_to_refresh(now)
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{now:%Y%m%dT%H}",
            tags=range_tags(months[0].isoformat(), months[-1].isoformat(), list(location_names)),
        )
    ]


@dg.schedule(
    job=ingestion_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :05, pull the newest hours of every location, in one run.",
)
def hourly_ingestion_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> list[dg.RunRequest]:
    settings = deployment.settings
    clock = settings.clock
    now = clock.now() if clock.is_replay else clock.now(wall=context.scheduled_execution_time)
    return newest_partition_requests(now, settings.location_names)
