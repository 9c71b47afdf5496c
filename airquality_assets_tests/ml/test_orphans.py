"""The sweep of MLflow runs left RUNNING, against a local SQLite tracking store."""

from __future__ import annotations

from pathlib import Path

import pytest

from airquality_assets.ml.links import TAG_RUN_ID
from airquality_assets.ml.orphans import Ended, end_orphaned_runs
from airquality_assets.ml.tracking import DAGSTER_RUN_TAG


@pytest.fixture
def store(tmp_path: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.create_experiment("sweep", (tmp_path / "artifacts").as_uri())


def test_runs_of_failed_and_canceled_dagster_runs_end_with_their_outcome(store) -> None:
    client, experiment_id = store
    parent = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "failed"})
    candidate = client.create_run(experiment_id, tags={TAG_RUN_ID: "failed"})
    canceled = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "canceled"})
    going = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "going"})
    unknown = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "elsewhere"})
    untagged = client.create_run(experiment_id)
    done = client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: "failed"})
    client.set_terminated(done.info.run_id, status="FINISHED")
    statuses = {"failed": "FAILURE", "canceled": "CANCELED", "going": "STARTED"}
    asked: list[str] = []

    def dagster_status(run_id: str) -> str | None:
        asked.append(run_id)
        return statuses.get(run_id)

    ended = end_orphaned_runs(client, experiment_id, dagster_status)

    assert sorted(ended, key=lambda e: e.mlflow_run_id) == sorted(
        [
            Ended(parent.info.run_id, "failed", "FAILED"),
            Ended(candidate.info.run_id, "failed", "FAILED"),
            Ended(canceled.info.run_id, "canceled", "KILLED"),
        ],
        key=lambda e: e.mlflow_run_id,
    )

    def status(run) -> str:
        return client.get_run(run.info.run_id).info.status

    assert [status(r) for r in (parent, candidate, canceled)] == ["FAILED", "FAILED", "KILLED"]
    assert [status(r) for r in (going, unknown, untagged)] == ["RUNNING"] * 3
    assert status(done) == "FINISHED"  # an ended run is not touched again
    assert sorted(asked) == ["canceled", "elsewhere", "failed", "going"]  # once per run id
    assert end_orphaned_runs(client, experiment_id, dagster_status) == []  # nothing left
