"""``mlflow_run_sweep_sensor``: MLflow down, then back, against a local SQLite store."""

from pathlib import Path

import dagster as dg
import pytest


def test_a_failed_runs_mlflow_run_ends_failed_once_mlflow_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    # the refused server: one try, not the client's default minutes of retries
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    from airquality_assets.defs.loop.mlflow_sweep import mlflow_run_sweep_sensor
    from airquality_assets.defs.model.mlflow import MlflowResource
    from airquality_assets.ml.tracking import DAGSTER_RUN_TAG

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = (tmp_path / "artifacts").as_uri()
    client = mlflow.MlflowClient(tracking)
    experiment_id = client.create_experiment("sweep", artifacts)
    opened: dict[str, str] = {}

    @dg.op
    def fit(context: dg.OpExecutionContext) -> None:
        # the parent run a step leaves RUNNING when MLflow is down as it fails
        opened[context.run_id] = client.create_run(
            experiment_id, tags={DAGSTER_RUN_TAG: context.run_id}
        ).info.run_id
        raise RuntimeError("API request to http://mlflow:5000 failed: connection refused")

    @dg.job(name="training")
    def training() -> None:
        fit()

    down = MlflowResource(
        tracking_uri="http://127.0.0.1:9", experiment_name="sweep", artifact_location=artifacts
    )
    up = MlflowResource(tracking_uri=tracking, experiment_name="sweep", artifact_location=artifacts)
    with dg.instance_for_test() as instance:
        failed = training.execute_in_process(instance=instance, raise_on_error=False)

        def tick(resource: MlflowResource) -> str:
            with dg.build_sensor_context(
                instance=instance, resources={"mlflow": resource}
            ) as context:
                result = mlflow_run_sweep_sensor.evaluate_tick(context)
            assert not result.run_requests
            return result.skip_message or ""

        unreachable = tick(down)
        parent = opened[failed.run_id]
        still = client.get_run(parent).info.status
        back = tick(up)
        again = tick(up)
    assert "MLflow unreachable" in unreachable and still == "RUNNING"
    assert back == "ended 1 MLflow run(s) left RUNNING"
    assert client.get_run(parent).info.status == "FAILED"
    assert again == "no MLflow run left RUNNING by a failed run"
