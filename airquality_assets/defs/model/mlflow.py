"""MLflow as an explicit resource: tracking URI, experiment, client and the parent run.

One parent MLflow run stands for one Dagster run (found or created by its
``dagster_run_id`` tag, so steps in other processes share it); each candidate is a nested
run under it. The ``ml/`` functions receive the client and run ids as arguments. mlflow is
imported inside the methods: loading definitions and data-half steps never pay for it.

The parent run ends when the run's last step succeeds (a step nothing else in the run's
plan consumes), or as FAILED when any step fails; both are step hooks, so this holds under
the in-process and the multiprocess executor alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

MLFLOW_KEY = "mlflow"


class MlflowResource(dg.ConfigurableResource):
    """Where runs, models and artifacts go (SQLite and files under the data dir by default)."""

    tracking_uri: str
    experiment_name: str
    artifact_location: str
    """Artifact root of the experiment when this resource creates it."""
    ui_url: str = "http://127.0.0.1:5000"
    """The MLflow UI that Dagster metadata links point to."""
    dagster_ui_url: str = "http://127.0.0.1:3000"
    """The Dagster UI that MLflow tags point back to."""

    def pages(self) -> Any:
        """Addresses of runs, models and versions in the MLflow UI (``ml.links.MlflowPages``)."""
        from airquality_assets.ml.links import MlflowPages

        return MlflowPages(self.ui_url)

    def dagster_tags(
        self,
        run_id: str,
        asset: str | None = None,
        partition: str | None = None,
        job: str | None = None,
    ) -> dict[str, str]:
        """Tags for an MLflow entity made by Dagster run ``run_id`` (``ml.links.dagster_tags``)."""
        from airquality_assets.ml.links import dagster_tags

        return dagster_tags(self.dagster_ui_url, run_id, asset, partition, job)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):  # SQLite needs its folder
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        # mlflow's fluent API (log_model, load_model of models:/ URIs) and the BentoML
        # export read the process-wide URI: set it once, from this resource.
        mlflow.set_tracking_uri(self.tracking_uri)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        from airquality_assets.ml.tracking import ensure_experiment

        return ensure_experiment(self.client(), self.experiment_name, self.artifact_location)

    def parent_run_id(self, dagster_run_id: str, run_name: str) -> str:
        """The parent MLflow run of this Dagster run (get-or-create by tag)."""
        from airquality_assets.ml.tracking import parent_run_for

        return parent_run_for(
            self.client(),
            self.experiment_id(),
            dagster_run_id,
            run_name,
            tags=self.dagster_tags(dagster_run_id, job=run_name),
        )

    def end_parent_run(self, dagster_run_id: str, status: str = "FINISHED") -> None:
        from airquality_assets.ml.tracking import end_parent_run

        end_parent_run(self.client(), self.experiment_id(), dagster_run_id, status)


def _is_last_step(context: dg.HookContext) -> bool:
    """True when no other step of the run's plan consumes this step's outputs."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is None or run.execution_plan_snapshot_id is None:
        return False
    plan = context.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    upstream = {
        handle.step_key
        for step in plan.steps
        for step_input in step.inputs
        for handle in step_input.upstream_output_handles
    }
    return context.step_key not in upstream


@dg.failure_hook(required_resource_keys={MLFLOW_KEY})
def end_mlflow_run_on_failure(context: dg.HookContext) -> None:
    """Mark the parent MLflow run FAILED when any step of the Dagster run fails."""
    context.resources.mlflow.end_parent_run(context.run_id, status="FAILED")


@dg.success_hook(required_resource_keys={MLFLOW_KEY})
def end_mlflow_run_on_success(context: dg.HookContext) -> None:
    """End the parent MLflow run (FINISHED) once the run's last step is done."""
    if _is_last_step(context):
        context.resources.mlflow.end_parent_run(context.run_id)
