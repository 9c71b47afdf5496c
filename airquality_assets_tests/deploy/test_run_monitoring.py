"""A run whose process dies is marked failed, frees its slot and alerts.

A real code server (``dagster api grpc``) launches a run through the project's
``WatchedRunLauncher``; the run's worker is then SIGKILLed, with and without its code
server. One pass of Dagster's own run-monitoring loop (what the daemon calls) marks the run
FAILED; the planned check of the dead run never holds back the check alerts, and the
run-failure sensor sends its alert to a local receiver.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._grpc.server import GrpcServerProcess
from pytest_httpserver import HTTPServer

from airquality_assets.defs.loop.alerts import check_alert_sensor, run_failure_sensor
from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.defs.resources import OperationsResource
from airquality_assets.deployment import RUN_WORKER_TAG, run_worker_health
from airquality_assets_tests.deploy import run_worker_defs

DEFS_FILE = Path(run_worker_defs.__file__)
# No grace for an unreachable code server: a killed one fails the run at the next check
# (the 300 s default is test_deployment's subject).
LAUNCHER = {
    "module": "airquality_assets.deployment",
    "class": "WatchedRunLauncher",
    "config": {"unreachable_grace_seconds": 0.0},
}


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid, from the engine event the code server records at its start."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if entry.message.startswith("Started process for run (pid: "):
            return int(entry.message.split("pid: ")[1].split(")")[0])
    return None


def _step_started(instance: dg.DagsterInstance, run_id: str) -> bool:
    return bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))


class _Receiver:
    def __init__(self, httpserver: HTTPServer) -> None:
        import json

        from werkzeug import Request, Response

        self.titles: list[str] = []

        def handle(request: Request) -> Response:
            self.titles.append(json.loads(request.get_data())["title"])
            return Response("", status=200)

        httpserver.expect_request("/alerts", method="POST").respond_with_handler(handle)
        self.url = f"json://127.0.0.1:{httpserver.port}/alerts"


def _sensor_definitions(receiver: _Receiver, tmp_path: Path) -> dg.Definitions:
    return dg.Definitions(
        assets=[run_worker_defs.sleepy, run_worker_defs.frame],
        jobs=[run_worker_defs.sleepy_job],
        sensors=[run_failure_sensor, check_alert_sensor],
        resources={
            "operations": OperationsResource(alert_urls=receiver.url, ui_base_url="http://ui"),
            "mlflow": MlflowResource(
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                experiment_name="unused",
                artifact_location=(tmp_path / "artifacts").as_uri(),
            ),
        },
    )


def _tick(defs: dg.Definitions, instance, name: str, cursor: str | None) -> str | None:
    sensor = defs.get_repository_def().get_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        return sensor.evaluate_tick(context).cursor


@pytest.mark.parametrize("server_dies_too", [False, True], ids=["worker", "worker+server"])
@pytest.mark.timeout(240)
def test_a_killed_run_worker_is_marked_failed_and_alerted(
    server_dies_too: bool, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = _Receiver(httpserver)
    overrides = {"run_launcher": LAUNCHER, "run_monitoring": {"enabled": True}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert instance.run_launcher.supports_check_run_worker_health
        defs = _sensor_definitions(receiver, tmp_path)
        failures = _tick(defs, instance, "run_failure_sensor", None)  # cursor at "now"
        origin = LoadableTargetOrigin(
            executable_path=sys.executable,
            python_file=str(DEFS_FILE),
            working_directory=str(DEFS_FILE.parent),
        )
        server = GrpcServerProcess(
            instance_ref=instance.get_ref(),
            location_name="sleepy",
            loadable_target_origin=origin,
            wait_on_exit=False,
        )
        target = GrpcServerTarget(
            host="localhost", port=server.port, socket=server.socket, location_name="sleepy"
        )
        try:
            with WorkspaceProcessContext(instance, target) as workspace:
                context = workspace.create_request_context()
                location = context.get_code_location("sleepy")
                (repository,) = location.get_repositories().values()
                job = repository.get_full_job("sleepy_job")
                run = create_run_for_test(
                    instance,
                    job_name="sleepy_job",
                    remote_job_origin=job.get_remote_origin(),
                    job_code_origin=job.get_python_origin(),
                    asset_selection=frozenset({dg.AssetKey("sleepy")}),
                    asset_check_selection=frozenset(
                        {dg.AssetCheckKey(dg.AssetKey("sleepy"), "finished")}
                    ),
                )
                instance.launch_run(run.run_id, context)
                pid = _wait(lambda: _worker_pid(instance, run.run_id), what="the run worker")
                _wait(lambda: _step_started(instance, run.run_id), what="the step to start")
                live = instance.get_run_by_id(run.run_id)
                assert live.status == DagsterRunStatus.STARTED and GRPC_INFO_TAG in live.tags
                assert run_worker_health(live).status == WorkerStatus.RUNNING

                if server_dies_too:  # the code server's container restarts: all goes at once
                    os.kill(server.pid, signal.SIGKILL)
                    server.wait(timeout=30)
                os.kill(pid, signal.SIGKILL)

                if server_dies_too:
                    # Nobody else will notice: the run stays STARTED until monitoring asks.
                    time.sleep(2)
                    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
                    health = run_worker_health(instance.get_run_by_id(run.run_id))
                    assert health.status == WorkerStatus.FAILED, health
                    # ... and its planned check does not hold back other alerts meanwhile.
                    assert dg.materialize([run_worker_defs.frame], instance=instance).success
                    _tick(defs, instance, "check_alert_sensor", None)
                    assert receiver.titles == ["ERROR check failed: frame.plausible"]

                logger = logging.getLogger("run_monitoring_test")

                def failed() -> bool:
                    list(execute_run_monitoring_iteration(workspace, logger))
                    return instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE

                _wait(failed, timeout=60, what="the run to be marked failed")
        finally:
            server.shutdown_server()  # a no-op when it was killed
            server.wait(timeout=30)
        _tick(defs, instance, "run_failure_sensor", failures)
        # the slot is free: nothing counts as in progress any more
        in_progress = instance.get_runs(
            filters=dg.RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])
        )
        assert in_progress == []
    assert receiver.titles[-1] == f"ERROR run failed: sleepy_job {run.run_id[:8]}"


def test_a_run_executed_in_its_own_process_is_watched_by_its_pid() -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    host = socket.gethostname()
    alive = DagsterRun(job_name="j", run_id="a", tags={RUN_WORKER_TAG: f"{host}:{os.getpid()}"})
    assert run_worker_health(alive).status == WorkerStatus.RUNNING
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = DagsterRun(job_name="j", run_id="b", tags={RUN_WORKER_TAG: f"{host}:{child.pid}"})
    assert run_worker_health(gone).status == WorkerStatus.FAILED
    elsewhere = DagsterRun(job_name="j", run_id="c", tags={RUN_WORKER_TAG: "other-host:1"})
    assert run_worker_health(elsewhere).status == WorkerStatus.RUNNING  # cannot tell
    assert run_worker_health(DagsterRun(job_name="j", run_id="d")).status == WorkerStatus.RUNNING
