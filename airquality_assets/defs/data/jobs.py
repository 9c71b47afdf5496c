"""The data half's jobs: one run pulls, or frames, every location over a range of months."""

import dagster as dg

from airquality_assets.catalog import FRAMES_GROUP, INGESTION_GROUP

INGESTION_JOB = "ingestion"
FRAMES_JOB = "frames"

ingestion_job = dg.define_asset_job(
    INGESTION_JOB,
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    description="Pull raw hourly air quality and weather, and the forecast issues not stored "
    "yet, for (month, location) partitions.",
)

frames_job = dg.define_asset_job(
    FRAMES_JOB,
    selection=dg.AssetSelection.groups(FRAMES_GROUP),
    description="Parse, merge, clean and validate hourly frames for (month, location) "
    "partitions; the hourly path runs them by automation condition after each pull.",
)
