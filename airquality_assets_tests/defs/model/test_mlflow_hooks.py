"""The parent MLflow run: dagster-mlflow opens it once per Dagster run, candidates in other
step processes nest under it, and it ends once, at the run's real last step, or FAILED."""

import os
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from airquality_assets.defs.model.mlflow import (
    MLFLOW_KEY,
    MLFLOW_RUN_KEY,
    MlflowResource,
    _has_failed_step,
    end_mlflow_run_on_failure,
    end_mlflow_run_on_success,
)
from airquality_assets.defs.resources import build_resources
from airquality_assets.ml.tracking import DAGSTER_RUN_TAG, start_candidate_run
from airquality_assets.settings import Settings

ended: list[tuple[str, str]] = []


class _RecordingMlflow(MlflowResource):
    """Records end_parent_run calls instead of talking to MLflow."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        pass

    def end_parent_run(self, dagster_run_id: str, status: str = "FINISHED") -> None:
        ended.append((dagster_run_id, status))


@dg.op
def first() -> int:
    return 1


@dg.op
def middle(value: int) -> int:
    return value + 1


@dg.op(config_schema={"fail": bool}, ins={"after": dg.In(dg.Nothing)})
def last_maybe_failing(context: dg.OpExecutionContext) -> None:
    if context.op_config["fail"]:
        raise RuntimeError("boom")


@dg.job(
    hooks={end_mlflow_run_on_success, end_mlflow_run_on_failure},
    resource_defs={
        "mlflow": _RecordingMlflow(
            tracking_uri="unused", experiment_name="e", artifact_location="a"
        )
    },
)
def chain() -> None:
    last_maybe_failing(middle(first()))


@pytest.fixture(autouse=True)
def _clear() -> None:
    ended.clear()


def test_success_ends_the_parent_run_once_after_the_last_step() -> None:
    result = chain.execute_in_process(
        run_config={"ops": {"last_maybe_failing": {"config": {"fail": False}}}}
    )
    assert result.success
    assert ended == [(result.run_id, "FINISHED")]


def test_failure_marks_the_parent_run_failed() -> None:
    result = chain.execute_in_process(
        run_config={"ops": {"last_maybe_failing": {"config": {"fail": True}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert ended == [(result.run_id, "FAILED")]


# Across processes: dagster-mlflow opens the parent in the first step that requires it, every
# later step process finds it, and the candidates nest under it. Jobs are built by module-level
# functions so that each step process of the multiprocess executor can rebuild them.


def _mlflow_resources() -> dict[str, object]:
    resources = build_resources(Settings.from_env())  # AIRQUALITY_DATA_DIR of the test
    return {key: resources[key] for key in (MLFLOW_KEY, MLFLOW_RUN_KEY)}


class Names(dg.Config):
    names: list[str]


@dg.op(out=dg.DynamicOut(str), required_resource_keys={"mlflow_run"})
def plan(config: Names) -> Iterator[dg.DynamicOutput[str]]:
    """Requires ``mlflow_run``, as ``plan_candidates`` does: the parent opens here."""
    for name in config.names:
        yield dg.DynamicOutput(name, mapping_key=name)


@dg.op
def gate(context: dg.OpExecutionContext, name: str) -> str:
    """``broken`` fails; any other candidate passes once that failure is in the event log."""
    if name == "broken":
        raise RuntimeError("boom")
    deadline = time.monotonic() + 120
    while not _has_failed_step(context.instance, context.run_id):
        assert time.monotonic() < deadline, "gate[broken] never failed"
        time.sleep(0.2)
    return name


@dg.op
def candidate(mlflow: MlflowResource, mlflow_run: dg.ResourceParam[Any], name: str) -> str:
    """A nested run as ``train_candidate`` makes one: created under the parent, then resumed
    with the fluent API while the parent is this process's active run."""
    import mlflow as mlflow_module

    client = mlflow.client()
    tags = {"pid": str(os.getpid())}
    run_id = start_candidate_run(
        client, mlflow.experiment_id(), mlflow_run.mlflow_run_id, name, tags
    )
    with mlflow_module.start_run(run_id=run_id, nested=True):
        mlflow_module.log_metric("val_loss", 1.0)
    return run_id


@dg.op
def collect(run_ids: list[str]) -> list[str]:
    return run_ids


@dg.graph
def grid() -> None:
    collect(plan().map(candidate).collect())


@dg.graph
def grid_with_a_failure() -> None:
    names = plan().map(lambda name: candidate(gate(name)))
    collect(names.collect())


def grid_job() -> dg.JobDefinition:
    return grid.to_job(
        "grid",
        resource_defs=_mlflow_resources(),
        executor_def=dg.multiprocess_executor,
        hooks={end_mlflow_run_on_success, end_mlflow_run_on_failure},
    )


def grid_with_a_failure_job() -> dg.JobDefinition:
    return grid_with_a_failure.to_job(
        "grid_with_a_failure",
        resource_defs=_mlflow_resources(),
        executor_def=dg.multiprocess_executor,
        hooks={end_mlflow_run_on_success, end_mlflow_run_on_failure},
    )


def _runs(settings: Settings, dagster_run_id: str) -> tuple[Any, list[Any]]:
    """The parent (the one run tagged with the Dagster run id) and every other run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get(DAGSTER_RUN_TAG) == dagster_run_id]
    return parent, [r for r in runs if r.info.run_id != parent.info.run_id]


def _execute(job_fn: Any, names: list[str]) -> tuple[bool, str]:
    """Run the job under the multiprocess executor (2 steps at a time): success, run id."""
    run_config = {
        "execution": {"config": {"max_concurrent": 2}},
        "ops": {"plan": {"config": {"names": names}}},
    }
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(job_fn), instance, run_config=run_config, raise_on_error=False
        )
        return result.success, result.run_id


@pytest.mark.timeout(300)
def test_candidates_in_other_processes_nest_under_the_parent_the_library_opened(
    settings: Settings,
) -> None:
    success, run_id = _execute(grid_job, ["a", "b"])
    assert success
    parent, others = _runs(settings, run_id)
    assert parent.info.run_name == "training (manual)"  # no retrain reason on the run
    assert parent.data.tags["retrain_reason"] == "manual"
    assert f"]({parent.data.tags['dagster.run_url']})" in parent.data.tags["mlflow.note.content"]
    assert parent.data.tags["dagster.run_id"] == run_id
    assert parent.data.tags["dagster.run_url"].endswith(f"/runs/{run_id}")
    assert parent.data.tags["dagster.job"] == "grid"
    assert parent.info.status == "FINISHED"  # by the hook on the last step
    assert sorted(r.info.run_name for r in others) == ["a", "b"]  # no second parent
    assert {r.data.tags["mlflow.parentRunId"] for r in others} == {parent.info.run_id}
    pids = {r.data.tags["pid"] for r in others}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each in a step process of its own
    assert all(r.info.status == "FINISHED" and "val_loss" in r.data.metrics for r in others)


@pytest.mark.timeout(300)
def test_a_step_started_after_a_failure_keeps_the_parent_failed(settings: Settings) -> None:
    """The late candidate's process finds the parent (dagster-mlflow sets it RUNNING again)
    after another step failed; neither that nor the process's exit may end it otherwise."""
    success, run_id = _execute(grid_with_a_failure_job, ["broken", "late"])
    assert not success
    parent, others = _runs(settings, run_id)
    assert parent.info.status == "FAILED"
    assert [r.info.run_name for r in others] == ["late"]
    assert others[0].data.tags["mlflow.parentRunId"] == parent.info.run_id


@dg.op(required_resource_keys={"mlflow_run"})
def open_parent(context: dg.OpExecutionContext) -> str:
    return context.resources.mlflow_run.mlflow_run_id


def test_the_parent_run_is_named_for_why_the_dagster_run_ran(settings: Settings) -> None:
    """A drift retrain and the first champion are told apart in MLflow's runs table; the
    description links back to the Dagster run (a tag's URL is plain text there)."""
    from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG

    one_step = dg.GraphDefinition("one_step", node_defs=[open_parent]).to_job(
        resource_defs=_mlflow_resources()  # the test's data dir, read now
    )
    names = {}
    for reason in ("drift", "bootstrap"):
        tags = {RETRAIN_REASON_TAG: reason, "airquality/retrain_detail": "PSI 0.31 at beijing"}
        result = one_step.execute_in_process(tags=tags)
        parent, _ = _runs(settings, result.run_id)
        names[reason] = parent.info.run_name
        assert parent.data.tags["retrain_reason"] == reason
        note = parent.data.tags["mlflow.note.content"]
        url = parent.data.tags["dagster.run_url"]
        assert f"[{url}]({url})" in note and "PSI 0.31 at beijing" in note
    assert names == {"drift": "drift retrain", "bootstrap": "first champion"}
