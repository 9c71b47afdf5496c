"""Hourly ingestion of the newest partition of every location (off by default).

"Newest" follows the deployment's clock (:mod:`airquality_assets.clock`): the tick's time for
the live APIs, the replay instant for the bundled data, so the schedule behaves the same
against both. The frames downstream carry an eager automation condition: once a month's
new raw bodies land, Dagster's automation sensor rebuilds that month's frames (and the
neighbouring months' observations).

The forecast pulls ride along when a forecast issue is due that some location has not
stored yet (every ``AIRQUALITY_FORECAST_ISSUE_HOURS`` from 00 UTC); the other ticks pull
the observations only, so the forecast assets (and their frames) do not churn every hour.
"""

from collections.abc import Sequence
from datetime import date, datetime

import dagster as dg

from airquality_assets.defs.data.ingestion import (
    RAW_AIR_POLLUTION_FORECAST,
    RAW_WEATHER_FORECAST,
)
from airquality_assets.defs.data.jobs import ingestion_job
from airquality_assets.defs.partitions import range_tags
from airquality_assets.defs.resources import DeploymentResource, RawStore
from airquality_assets.sources.spans import due_issue, months_to_refresh

#: What a tick pulls when no forecast issue is due.
OBSERVATION_ASSETS = ("raw_air_quality", "raw_weather")
FORECAST_ASSETS = (RAW_WEATHER_FORECAST, RAW_AIR_POLLUTION_FORECAST)


def newest_partition_requests(
    now: datetime,
    location_names: Sequence[str],
    run_key_prefix: str = "hourly",
    forecasts: bool = True,
) -> list[dg.RunRequest]:
    """ONE run request for every location: the month holding the source's current hour (and
    the month before while its last hours are within the refetch window). Each partition
    then pulls only its newest hours (:func:`~airquality_assets.sources.spans.month_pull_span`)
    and, with ``forecasts``, the forecast issues it has not stored. The month that just
    closed is stored whole already (by the first tick after its close), so the request asks
    for ``refetch_closed_months``: its last hours get their second chance, as an open
    month's do."""
    months = months_to_refresh(now)
    selection = None if forecasts else [dg.AssetKey(name) for name in OBSERVATION_ASSETS]
    refetch = {"config": {"refetch_closed_months": True}}
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{now:%Y%m%dT%H}",
            tags=range_tags(months[0].isoformat(), months[-1].isoformat(), list(location_names)),
            asset_selection=selection,
            run_config={"ops": dict.fromkeys(OBSERVATION_ASSETS, refetch)},
        )
    ]


def forecast_issue_missing(
    raw_store: RawStore,
    location_names: Sequence[str],
    now: datetime,
    every_hours: int,
    assets: Sequence[str] = (RAW_WEATHER_FORECAST,),
) -> bool:
    """Whether some location has not stored the forecast issue due at ``now`` in one of
    ``assets`` (live: both forecasts, so an air-pollution issue that failed is retried while
    it is due; replay has no air-pollution forecast to wait for)."""
    issue = due_issue(now, every_hours)
    month = date(issue.year, issue.month, 1)
    return any(
        issue not in raw_store.stored_issues(asset, name, month)
        for asset in assets
        for name in location_names
    )


@dg.schedule(
    job=ingestion_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :05, pull the newest hours of every location, in one run; "
    "with them the forecast issue when a new one is due.",
)
def hourly_ingestion_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource, raw_store: RawStore
) -> list[dg.RunRequest]:
    settings = deployment.settings
    clock = settings.clock
    now = clock.now() if clock.is_replay else clock.now(wall=context.scheduled_execution_time)
    assets = FORECAST_ASSETS if settings.source == "live" else (RAW_WEATHER_FORECAST,)
    due = forecast_issue_missing(
        raw_store, settings.location_names, now, settings.forecast_issue_hours, assets
    )
    return newest_partition_requests(now, settings.location_names, forecasts=due)
