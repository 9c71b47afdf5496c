"""Asset jobs. A date range of a partitioned job is one run per location."""

import dagster as dg

from airquality_assets.defs.mlflow import end_mlflow_run_on_failure, end_mlflow_run_on_success
from airquality_assets.settings import get_settings

ingestion_job = dg.define_asset_job(
    "ingestion",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Pull raw hourly air quality and weather for (day, location) partitions.",
)

frames_job = dg.define_asset_job(
    "frames",
    selection=dg.AssetSelection.groups("frames"),
    description="Parse, merge, clean and validate hourly frames for (month, location) "
    "partitions; the hourly path runs them by automation condition after each pull.",
)

# demo: candidates run one after another in one process, paying the ~20 s keras+mlflow
# import once. full: every candidate is its own process (2 at a time on 2 cores); a
# Kubernetes or Celery executor can spread them over machines instead.
_executor = (
    dg.in_process_executor
    if get_settings().profile == "demo"
    else dg.multiprocess_executor.configured({"max_concurrent": 2})
)

training_job = dg.define_asset_job(
    "training",
    selection=dg.AssetSelection.groups("model", "serving"),
    executor_def=_executor,
    hooks={end_mlflow_run_on_failure, end_mlflow_run_on_success},
    description=(
        "Sequence tensors, grid search in MLflow, evaluation, the promotion gate and the "
        "bento of the champion."
    ),
)
