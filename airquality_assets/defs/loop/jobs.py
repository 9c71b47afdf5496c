"""The operating loop's jobs and the run tags its schedules and sensors write."""

import dagster as dg

FORECASTS_JOB = "issue_forecasts"
MONITORING_JOB = "monitoring"
#: Prefix of the loop's own run tags (retrain reason, evidence, the clock it acted at).
TAG_PREFIX = "airquality/"
RETRAIN_REASON_TAG = f"{TAG_PREFIX}retrain_reason"
CLOCK_TAG = f"{TAG_PREFIX}clock"

forecasts_job = dg.define_asset_job(
    FORECASTS_JOB,
    selection=dg.AssetSelection.assets("forecasts"),
    description="Issue the champion's hourly forecasts for (day, location) partitions.",
)

monitoring_job = dg.define_asset_job(
    MONITORING_JOB,
    selection=dg.AssetSelection.assets("forecast_accuracy", "drift_report"),
    description="Score the issued forecasts and measure drift against the champion's reference.",
)
