"""The data half: raw pulls, hourly frames, their checks, jobs and the hourly schedule."""

from __future__ import annotations

import dagster as dg

from airquality_assets.defs.partitions import DataPartitions


def definitions(partitions: DataPartitions) -> dg.Definitions:
    from airquality_assets.defs.data.frames import frame_assets
    from airquality_assets.defs.data.freshness import hourly_observations_freshness
    from airquality_assets.defs.data.ingestion import ingestion_assets
    from airquality_assets.defs.data.jobs import frames_job, ingestion_job
    from airquality_assets.defs.data.schedules import hourly_ingestion_schedule

    return dg.Definitions(
        assets=[*ingestion_assets(partitions), *frame_assets(partitions)],
        asset_checks=[hourly_observations_freshness],
        jobs=[ingestion_job, frames_job],
        schedules=[hourly_ingestion_schedule],
    )
