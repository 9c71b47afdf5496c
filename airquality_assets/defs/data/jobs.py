"""The data half's jobs: one run pulls, or frames, every location over a range of months.

Both run their steps in the run's own process: each step already covers every location of
the run, and the multiprocess executor's price, a Python process per step that imports and
loads the definitions again (about as long as the step itself on a loaded 2-core machine),
bought no parallelism worth it (benchmarks/scale_locations.py, docs/results.md).
"""

import dagster as dg

from airquality_assets.catalog import FRAMES_GROUP, INGESTION_GROUP

INGESTION_JOB = "ingestion"
FRAMES_JOB = "frames"

ingestion_job = dg.define_asset_job(
    INGESTION_JOB,
    selection=dg.AssetSelection.groups(INGESTION_GROUP),
    executor_def=dg.in_process_executor,
    description="Pull raw hourly air quality and weather, and the forecast issues not stored "
    "yet, for (month, location) partitions.",
)

frames_job = dg.define_asset_job(
    FRAMES_JOB,
    selection=dg.AssetSelection.groups(FRAMES_GROUP),
    executor_def=dg.in_process_executor,
    description="Parse, merge, clean and validate hourly frames for (month, location) "
    "partitions; the hourly path runs them by automation condition after each pull.",
)
