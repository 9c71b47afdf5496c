"""The operating loop's schedules (all off by default; see docs/operations.md).

* ``hourly_forecast_schedule``: at :10 every hour, the current day's ``forecasts`` per
  location (issues the hours not issued yet).
* ``daily_monitoring_schedule``: at 00:30 UTC, ``forecast_accuracy`` and ``drift_report``.
* ``weekly_retrain_schedule``: Mondays 03:00 UTC, the model half (fallback retrain).

"Now" is the deployment's clock at the tick: the tick's scheduled time when live, the replay
instant otherwise (:meth:`airquality_assets.clock.Clock.now`).
"""

import dagster as dg

from airquality_assets.defs.loop.jobs import (
    CLOCK_TAG,
    RETRAIN_REASON_TAG,
    forecasts_job,
    monitoring_job,
)
from airquality_assets.defs.model.jobs import TRAINING_JOB
from airquality_assets.defs.resources import DeploymentResource


@dg.schedule(
    job=forecasts_job,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :10, issue the newest hour's forecast of every location.",
)
def hourly_forecast_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> list[dg.RunRequest]:
    now = deployment.settings.clock.now(wall=context.scheduled_execution_time)
    day = now.date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"forecasts:{day}|{location}:{now:%Y%m%dT%H}",
            partition_key=dg.MultiPartitionKey({"date": day, "location": location}),
        )
        for location in deployment.settings.location_names
    ]


@dg.schedule(
    job=monitoring_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 00:30 UTC: forecast accuracy and drift.",
)
def daily_monitoring_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> dg.RunRequest:
    now = deployment.settings.clock.now(wall=context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"monitoring:{now:%Y-%m-%dT%H}")


@dg.schedule(
    job_name=TRAINING_JOB,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 03:00 UTC: retrain on the newest data even without a trigger.",
)
def weekly_retrain_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> dg.RunRequest:
    now = deployment.settings.clock.now(wall=context.scheduled_execution_time)
    return dg.RunRequest(
        run_key=f"weekly-retrain:{now:%Y-%m-%d}",
        tags={RETRAIN_REASON_TAG: "schedule", CLOCK_TAG: now.isoformat()},
    )


schedules = [hourly_forecast_schedule, daily_monitoring_schedule, weekly_retrain_schedule]
