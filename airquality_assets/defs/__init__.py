"""Dagster wiring only: every module here is thin and calls into sources/, transforms/, ml/.

:func:`build_definitions` assembles one deployment from its :class:`Settings`; partitions,
the training job's executor and every resource are derived from them here, at load.
"""

from __future__ import annotations

import dagster as dg

from airquality_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check, job, schedule and resource of the deployment ``settings`` describe."""
    from airquality_assets.defs import (
        freshness,
        jobs,
        loop,
        model_checks,
        schedules,
        serving,
        tensors,
        training,
    )
    from airquality_assets.defs.frames import frame_assets
    from airquality_assets.defs.ingestion import ingestion_assets
    from airquality_assets.defs.operations import (
        drift_report,
        forecast_accuracy,
        operations_assets,
    )
    from airquality_assets.defs.partitions import build_partitions
    from airquality_assets.defs.resources import build_resources

    partitions = build_partitions(settings)
    return dg.Definitions(
        assets=[
            *ingestion_assets(partitions),
            *frame_assets(partitions),
            tensors.sequence_tensors,
            training.tuned_lstm,
            training.model_evaluation,
            training.champion_model,
            serving.bento,
            *operations_assets(settings),
            forecast_accuracy,
            drift_report,
        ],
        asset_checks=[
            freshness.hourly_observations_freshness,
            model_checks.champion_is_servable,
            model_checks.bento_serves_champion,
        ],
        jobs=[
            jobs.ingestion_job,
            jobs.frames_job,
            jobs.build_training_job(settings.profile, settings.executor),
            *loop.jobs,
        ],
        schedules=[schedules.hourly_ingestion_schedule, *loop.schedules],
        sensors=loop.sensors,
        resources=build_resources(settings),
    )
