"""The parent MLflow run ends once, at the run's real last step, or FAILED on a failure."""

import dagster as dg
import pytest

from airquality_assets.defs.model.mlflow import (
    MlflowResource,
    end_mlflow_run_on_failure,
    end_mlflow_run_on_success,
)

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


@dg.op(config_schema={"fail": bool})
def last_maybe_failing(context: dg.OpExecutionContext, value: int) -> None:
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
