"""Addresses of MLflow pages and the Dagster tags MLflow entities carry."""

from __future__ import annotations

from airquality_assets.ml.links import MlflowPages, dagster_tags


def test_mlflow_pages_follow_the_ui_routes() -> None:
    pages = MlflowPages("http://mlflow.example:5000/")
    assert pages.run("1", "abc") == "http://mlflow.example:5000/#/experiments/1/runs/abc"
    assert pages.logged_model("1", "m-9") == "http://mlflow.example:5000/#/experiments/1/models/m-9"
    assert pages.registered_model("air lstm") == "http://mlflow.example:5000/#/models/air%20lstm"
    assert (
        pages.model_version("air-lstm", 3)
        == "http://mlflow.example:5000/#/models/air-lstm/versions/3"
    )


def test_dagster_tags_point_back_to_run_asset_and_partition() -> None:
    tags = dagster_tags("http://dagster:3000", "r-1", "champion_model", "2014-03-01|beijing")
    assert tags == {
        "dagster.run_id": "r-1",
        "dagster.run_url": "http://dagster:3000/runs/r-1",
        "dagster.asset": "champion_model",
        "dagster.asset_url": "http://dagster:3000/assets/champion_model",
        "dagster.partition": "2014-03-01|beijing",
    }
    assert dagster_tags("http://dagster:3000", "r-1", job="training") == {
        "dagster.run_id": "r-1",
        "dagster.run_url": "http://dagster:3000/runs/r-1",
        "dagster.job": "training",
    }


def test_the_experiment_link_opens_the_model_training_runs() -> None:
    pages = MlflowPages("http://mlflow.example:5000/")
    assert pages.experiment("3") == (
        "http://mlflow.example:5000/#/experiments/3/runs?workflowType=machine_learning"
    )


def test_an_artifact_link_is_the_tracking_servers_raw_artifact_route() -> None:
    pages = MlflowPages("http://mlflow.example:5000/")
    assert pages.artifact("abc123", "monitoring/2014-12-31T0030Z/chart beijing.png") == (
        "http://mlflow.example:5000/get-artifact"
        "?path=monitoring/2014-12-31T0030Z/chart%20beijing.png&run_uuid=abc123"
    )
