"""Asset jobs. A date range of a partitioned job is one run per location."""

import dagster as dg

from airquality_assets.defs.mlflow import end_mlflow_run_on_failure, end_mlflow_run_on_success

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


def training_execution(profile: str) -> dict:
    """The training job's default executor config for a grid profile.

    demo: candidates run one after another in one process, paying the keras+mlflow import
    once. full: every candidate is its own process (2 at a time on 2 cores); a Kubernetes or
    Celery executor can spread them over machines instead. Run config can override either.
    """
    if profile == "demo":
        return {"config": {"in_process": {}}}
    return {"config": {"multiprocess": {"max_concurrent": 2}}}


def build_training_job(profile: str):
    return dg.define_asset_job(
        "training",
        selection=dg.AssetSelection.groups("model", "serving"),
        executor_def=dg.multi_or_in_process_executor,
        config={"execution": training_execution(profile)},
        hooks={end_mlflow_run_on_failure, end_mlflow_run_on_success},
        description=(
            "Sequence tensors, grid search in MLflow, evaluation, the promotion gate and the "
            "bento of the champion."
        ),
    )
