"""The model half's job: tensors, grid search, evaluation, the promotion gate and the bento."""

import dagster as dg

from airquality_assets.catalog import MODEL_GROUP, SERVING_GROUP
from airquality_assets.defs.model.mlflow import end_mlflow_run_on_failure, end_mlflow_run_on_success
from airquality_assets.settings import EXECUTORS

TRAINING_JOB = "training"


#: Kubernetes (``AIRQUALITY_EXECUTOR=k8s``): every step is its own pod, every grid candidate
#: included, so a full grid trains side by side on as many nodes as the cluster gives.
#: Requests: a candidate keeps two cores busy (XLA) and its process peaked near 3 GB on five
#: years of one location here; the other steps are lighter. ``train_candidate`` is the op
#: name inside the ``tuned_lstm`` graph asset (one pod per dynamic output).
K8S_TRAINING_EXECUTION = {
    "max_concurrent": 8,
    "step_k8s_config": {
        "container_config": {
            "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
        }
    },
    "per_step_k8s_config": {
        "train_candidate": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "2", "memory": "4Gi"},
                    "limits": {"memory": "6Gi"},
                }
            }
        }
    },
}


def training_execution(profile: str, executor: str = "local") -> dict:
    """The training job's default executor config for a grid profile and an executor.

    local, demo: candidates run one after another in one process, paying the keras+mlflow
    import once. local, full: every candidate is its own process (2 at a time on 2 cores).
    k8s: every step is its own pod (:data:`K8S_TRAINING_EXECUTION`). Run config can override
    any of them.
    """
    if executor == "k8s":
        return {"config": K8S_TRAINING_EXECUTION}
    if profile == "demo":
        return {"config": {"in_process": {}}}
    return {"config": {"multiprocess": {"max_concurrent": 2}}}


def _executor_def(executor: str) -> dg.ExecutorDefinition:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if executor == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as exc:  # only the Kubernetes image installs it
            raise ImportError(
                "AIRQUALITY_EXECUTOR=k8s needs dagster-k8s: pip install 'airquality-assets[k8s]'"
            ) from exc
        return k8s_job_executor
    return dg.multi_or_in_process_executor


def build_training_job(profile: str, executor: str = "local"):
    return dg.define_asset_job(
        TRAINING_JOB,
        selection=dg.AssetSelection.groups(MODEL_GROUP, SERVING_GROUP),
        executor_def=_executor_def(executor),
        config={"execution": training_execution(profile, executor)},
        hooks={end_mlflow_run_on_failure, end_mlflow_run_on_success},
        description=(
            "Sequence tensors, grid search in MLflow, evaluation, the promotion gate and the "
            "bento of the champion."
        ),
    )
