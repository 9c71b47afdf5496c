"""MLflow in Dagster: the project's resource, dagster-mlflow's parent run, and the end hooks.

* ``mlflow`` (:class:`MlflowResource`): tracking URI, experiment (created with its artifact
  root), an explicit ``MlflowClient`` for the ``ml/`` functions, links between the UIs.
  Every MLflow user (training, registry checks, bento, the operating loop) needs only this.
* ``mlflow_run`` (:func:`mlflow_parent_run`): dagster-mlflow's ``MlFlow``, which opens the
  parent MLflow run of the Dagster run, or finds it by its ``dagster_run_id`` tag in another
  step's process, and tags it. Only the grid's steps require it, so only training runs open
  one; each candidate is a nested run under it (``ml.tracking.start_candidate_run``).
* The parent run ends when the run's last step succeeds (a step nothing else in the run's
  plan consumes), or as FAILED when any step fails: step hooks of this module, in the
  in-process and the multiprocess executor alike, in place of dagster-mlflow's
  ``end_mlflow_on_run_finished``, which ends the MLflow run at whichever op is last in
  topological order, never an op inside a graph asset, and after early steps
  (dagster-io/dagster#21872).

mlflow and dagster_mlflow (which imports mlflow) are imported inside the functions: loading
definitions and data-half steps never pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from typing_extensions import override

MLFLOW_KEY = "mlflow"
MLFLOW_RUN_KEY = "mlflow_run"


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

    @override
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

    def end_parent_run(self, dagster_run_id: str, status: str = "FINISHED") -> None:
        from airquality_assets.ml.tracking import end_parent_run

        end_parent_run(self.client(), self.experiment_id(), dagster_run_id, status)


def _has_failed_step(instance: dg.DagsterInstance, run_id: str) -> bool:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1
    ).records
    return bool(records)


@dg.resource(
    required_resource_keys={MLFLOW_KEY},
    description="dagster-mlflow's MlFlow: the Dagster run's parent MLflow run, opened and "
    "tagged (dagster_run_id, links to the Dagster UI) in every step that requires it.",
)
def mlflow_parent_run(context: dg.InitResourceContext) -> Iterator[Any]:
    """dagster-mlflow's ``MlFlow`` on the ``mlflow`` resource's experiment and tracking URI.

    ``.mlflow_run_id`` is the parent run's id (a step passes it to the ``ml/`` functions);
    the parent also carries the ``dagster.*`` link tags of ``ml.links.dagster_tags``.

    Where the library falls short, narrowly: the experiment is created first with its
    artifact root (``MlFlow`` calls ``mlflow.set_experiment``, which would put it under
    ``./mlruns``); ``MlFlow`` keeps the id only of a run it found, so that of a run it
    created is read from the active run; its ``start_run`` of a found run sets it RUNNING
    again, so a run with a failed step gets FAILED back; and at teardown the parent is
    taken off this thread's active-run stack without ending it (``MlFlow`` unregisters
    ``mlflow.end_run`` from ``atexit``, but mlflow 3 registers ``_safe_end_run``: every
    step process would end the parent on exit, and a later in-process run in the same
    thread would adopt it as its own).
    """
    import mlflow
    from dagster_mlflow.resources import MlFlow
    from mlflow.tracking import fluent

    tracking: MlflowResource = context.resources.mlflow
    tracking.experiment_id()
    run = context.run
    assert run is not None  # a step of a Dagster run, not a bare init context
    parent = MlFlow(
        context.replace_config(
            {
                "experiment_name": tracking.experiment_name,
                "mlflow_tracking_uri": tracking.tracking_uri,
                "extra_tags": tracking.dagster_tags(run.run_id, job=run.job_name),
            }
        )
    )
    active = mlflow.active_run()
    assert active is not None  # MlFlow started (or resumed) it
    parent.mlflow_run_id = active.info.run_id
    name_parent_run(tracking, parent.mlflow_run_id, run)
    if context.instance is not None and _has_failed_step(context.instance, run.run_id):
        tracking.client().set_terminated(parent.mlflow_run_id, status="FAILED")
    try:
        yield parent
    finally:
        parent.cleanup_on_error()
        # mlflow has no public way to drop an active run without ending it
        stack = fluent._active_run_stack.get()
        if stack and stack[-1].info.run_id == parent.mlflow_run_id:
            stack.pop()


def name_parent_run(tracking: MlflowResource, mlflow_run_id: str, run: dg.DagsterRun) -> None:
    """Name the parent run for why the Dagster run ran (``ml.run_names``), tag the reason,
    and describe it with a clickable link back to the Dagster run."""
    from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG, TAG_PREFIX
    from airquality_assets.ml import run_names
    from airquality_assets.ml.links import dagster_run_url

    reason = run.tags.get(RETRAIN_REASON_TAG)
    note = run_names.training_run_note(
        reason,
        dagster_run_url(tracking.dagster_ui_url, run.run_id),
        run.job_name,
        run.tags.get(f"{TAG_PREFIX}retrain_detail"),
    )
    client = tracking.client()
    for key, value in (
        (run_names.TAG_RUN_NAME, run_names.training_run_name(reason)),
        (run_names.TAG_REASON, reason or "manual"),
        (run_names.TAG_NOTE, note),
    ):
        client.set_tag(mlflow_run_id, key, value)


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
    """End the parent MLflow run (FINISHED) once the run's last step is done, unless a step
    of the run failed (then it stays FAILED)."""
    if _is_last_step(context) and not _has_failed_step(context.instance, context.run_id):
        context.resources.mlflow.end_parent_run(context.run_id)
