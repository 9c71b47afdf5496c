"""The operating loop: issued forecasts, their scores, drift, and the schedules and sensors
that retrain, alert and report metrics."""

from __future__ import annotations

import dagster as dg

from airquality_assets.settings import Settings


def definitions(settings: Settings) -> dg.Definitions:
    from airquality_assets.defs.loop.alerts import check_alert_sensor, run_failure_sensor
    from airquality_assets.defs.loop.assets import drift_report, forecast_accuracy, forecasts_asset
    from airquality_assets.defs.loop.jobs import forecasts_job, monitoring_job
    from airquality_assets.defs.loop.metrics import pipeline_metrics_sensor
    from airquality_assets.defs.loop.mlflow_sweep import mlflow_run_sweep_sensor
    from airquality_assets.defs.loop.pollution import pollution_alert_sensor
    from airquality_assets.defs.loop.schedules import schedules
    from airquality_assets.defs.loop.sensors import retraining_sensor

    return dg.Definitions(
        assets=[forecasts_asset(settings), forecast_accuracy, drift_report],
        jobs=[forecasts_job, monitoring_job],
        schedules=schedules,
        sensors=[
            retraining_sensor,
            check_alert_sensor,
            run_failure_sensor,
            pipeline_metrics_sensor,
            mlflow_run_sweep_sensor,
            pollution_alert_sensor,
        ],
    )
