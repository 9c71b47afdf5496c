"""MLflow tracking through dagster-mlflow, imported lazily.

``dagster_mlflow`` imports ``mlflow`` at module import (about 7.5 s here). Wrapping its
resource and hook in functions that import it on first use keeps that cost out of the code
server, sensors and data-half runs; only steps that declare the ``mlflow`` resource pay it.
The resource starts (or, in another step process, finds by the ``dagster_run_id`` tag) one
parent MLflow run per Dagster run; candidates log nested runs under it.
"""

import dagster as dg

from airquality_assets.settings import get_settings

MLFLOW_KEY = "mlflow"


@dg.resource(
    config_schema={
        "experiment_name": dg.Field(str, default_value="airquality-forecast"),
        "mlflow_tracking_uri": dg.Field(dg.Noneable(str), default_value=None, is_required=False),
        "extra_tags": dg.Field(dg.Permissive(), is_required=False),
    },
    description="dagster-mlflow's mlflow_tracking, with the experiment's artifacts under "
    "the data directory (SQLite backend by default; MLFLOW_TRACKING_URI overrides).",
)
def mlflow_tracking(init_context: dg.InitResourceContext):
    from dagster_mlflow import mlflow_tracking as upstream

    from airquality_assets.ml.tracking import configure_tracking

    settings = get_settings()
    config = init_context.resource_config
    uri = config.get("mlflow_tracking_uri") or settings.mlflow_tracking_uri
    # Create the experiment with its artifact root under the data dir before dagster-mlflow
    # calls set_experiment (which would default artifacts to ./mlruns of whatever CWD).
    configure_tracking(settings.data_dir, config["experiment_name"], tracking_uri=uri)
    return upstream.resource_fn(  # type: ignore[attr-defined]
        init_context.replace_config({**config, "mlflow_tracking_uri": uri})
    )


@dg.failure_hook(required_resource_keys={MLFLOW_KEY})
def end_mlflow_run_on_failure(context: dg.HookContext) -> None:
    """Mark the parent MLflow run FAILED when any step of the Dagster run fails."""
    from mlflow.entities import RunStatus

    context.resources.mlflow.end_run(status=RunStatus.to_string(RunStatus.FAILED))


@dg.success_hook(required_resource_keys={MLFLOW_KEY})
def end_mlflow_run_on_success(context: dg.HookContext) -> None:
    """End the parent MLflow run (FINISHED) once the last step, the promotion gate, is done."""
    if context.op.name == "champion_model":
        context.resources.mlflow.end_run()
