"""The data half's jobs: one run pulls, or frames, every location over a range of months."""

import dagster as dg

INGESTION_JOB = "ingestion"
FRAMES_JOB = "frames"

ingestion_job = dg.define_asset_job(
    INGESTION_JOB,
    selection=dg.AssetSelection.groups("ingestion"),
    description="Pull raw hourly air quality and weather for (month, location) partitions.",
)

frames_job = dg.define_asset_job(
    FRAMES_JOB,
    selection=dg.AssetSelection.groups("frames"),
    description="Parse, merge, clean and validate hourly frames for (month, location) "
    "partitions; the hourly path runs them by automation condition after each pull.",
)
