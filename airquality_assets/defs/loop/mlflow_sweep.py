"""The one owner of MLflow runs that failed Dagster runs left RUNNING.

``mlflow_run_sweep_sensor`` asks the MLflow server every half minute for RUNNING runs and
ends those whose Dagster run failed (FAILED) or was canceled (KILLED): a killed step process
(run monitoring fails its run later) and a step that failed while MLflow was down (ending
its run failed too) both leave one. While MLflow is unreachable the tick says so and the
next one tries again, so the runs end once MLflow is back. The sweep itself is
:func:`airquality_assets.ml.orphans.end_orphaned_runs`.
"""

import dagster as dg

from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.ml.orphans import end_orphaned_runs

SWEEP_INTERVAL_SECONDS = 30


@dg.sensor(
    name="mlflow_run_sweep_sensor",
    minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Ends the MLflow runs left RUNNING by Dagster runs that failed (FAILED) or were "
        "canceled (KILLED), once the MLflow server answers: a killed step process or an "
        "MLflow outage during a step leaves them open."
    ),
)
def mlflow_run_sweep_sensor(
    context: dg.SensorEvaluationContext, mlflow: MlflowResource
) -> dg.SkipReason:
    instance = context.instance

    def dagster_status(run_id: str) -> str | None:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run is not None else None

    try:
        client = mlflow.client()
        experiment = client.get_experiment_by_name(mlflow.experiment_name)
        if experiment is None:
            return dg.SkipReason(f"no MLflow experiment {mlflow.experiment_name!r} yet")
        ended = end_orphaned_runs(client, experiment.experiment_id, dagster_status)
    except Exception as exc:  # MLflow unreachable: the next tick tries again
        return dg.SkipReason(f"MLflow unreachable, runs left as they are: {exc}"[:500])
    for run in ended:
        context.log.warning(
            f"MLflow run {run.mlflow_run_id} of Dagster run {run.dagster_run_id}: {run.status}"
        )
    return dg.SkipReason(f"ended {len(ended)} MLflow run(s) left RUNNING" if ended else
                         "no MLflow run left RUNNING by a failed run")  # fmt: skip
