"""Dagster and MLflow on a real PostgreSQL server: the production storage, exercised.

Part of the graph runs through the project's real jobs and assets on a Dagster instance
whose run, event-log and schedule storage is PostgreSQL: December 2014's raw month through
the ``ingestion`` job, then a tick of Dagster's automation-condition sensor (the daemon's
own code path), which sees the month's raw bodies updated and queues the frames run; the run
queue's daemon then launches it through the code server, in a subprocess, as in production.
A candidate model is logged and promoted through the project's MLflow helpers against a
PostgreSQL tracking store. Everything is then read back with SQL from the databases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time
from dagster._time import get_current_datetime

from airquality_assets_tests.deploy.conftest import query, sqlalchemy_url

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

DECEMBER = {
    "dagster/asset_partition_range_start": "2014-12-01|beijing",
    "dagster/asset_partition_range_end": "2014-12-01|beijing",
}
SENSOR = "default_automation_condition_sensor"
# What the tick requests: the month's two parsed frames (the joined observations follow on
# the next tick, once both exist).
FRAMES = ("air_quality_hourly", "weather_hourly")


def postgres_instance(home: Path, url: str) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    storage = f"storage:\n  postgres:\n    postgres_url: '{sqlalchemy_url(url)}'\n"
    (home / "dagster.yaml").write_text(storage + "telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


@contextmanager
def automation_daemon(instance: dg.DagsterInstance) -> Iterator[Callable[[], None]]:
    """The project's code location as the daemon loads it, its automation sensor switched on;
    yields one iteration of Dagster's asset daemon (which runs automation-condition sensors)
    followed by one of the run queue's daemon (which launches the queued runs through the
    instance's run launcher: a subprocess per run, as in production).
    """
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.asset_daemon import AssetDaemon
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    # What workspace.yaml names: the project's definitions module (served over gRPC).
    target = ModuleTarget(
        module_name="airquality_assets.definitions",
        attribute=None,
        working_directory=str(Path.cwd()),
        location_name="airquality_assets",
    )
    with create_test_daemon_workspace_context(target, instance) as workspace:
        context = workspace.create_request_context()
        location = next(iter(context.get_code_location_entries().values())).code_location
        assert location is not None
        repository = next(iter(location.get_repositories().values()))
        # As a user would in the UI: switch the automation sensor on.
        instance.start_sensor(repository.get_sensor(SENSOR))
        daemon = AssetDaemon(
            settings=instance.get_settings("auto_materialize"), pre_sensor_interval_seconds=0
        )

        queue = QueuedRunCoordinatorDaemon(interval_seconds=1)

        def tick() -> None:
            daemon._run_iteration_impl(  # the daemon's own loop body, once
                workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={}
            )
            list(queue.run_iteration(workspace))

        yield tick
    _stop_code_servers()


def _stop_code_servers() -> None:
    """End the code-server processes this test started (its children), before the test's
    database is dropped: a lingering server would keep retrying to connect to it. Dagster
    asks them to stop but lets them linger up to 60 s for in-flight calls."""
    import psutil

    servers = []
    for child in psutil.Process().children(recursive=True):
        try:
            if {"api", "grpc"} <= set(child.cmdline()):
                servers.append(child)
        except psutil.Error:  # already gone
            continue
    for server in servers:
        server.terminate()
    _, alive = psutil.wait_procs(servers, timeout=30)
    for server in alive:
        server.kill()


def wait_for_runs(instance: dg.DagsterInstance, timeout_s: float = 240.0) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs()
        if all(run.is_finished for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


@pytest.mark.usefixtures("data_dir")
def test_graph_and_sensor_tick_on_postgres_storage(
    tmp_path: Path, new_database: Callable[[str], str]
) -> None:
    from airquality_assets.definitions import defs

    url = new_database("dagster")
    with postgres_instance(tmp_path / "dagster_home", url) as instance:
        with automation_daemon(instance) as tick:
            tick()  # the first tick only records what exists (eager: react to changes)
            ingestion = defs().resolve_job_def("ingestion")
            result = ingestion.execute_in_process(instance=instance, tags=DECEMBER)
            assert result.success
            # The sensor's 30 s minimum interval, skipped rather than waited for.
            with freeze_time(get_current_datetime() + timedelta(seconds=31)):
                tick()
            runs = wait_for_runs(instance)
        sensor_runs = [r for r in runs if r.job_name != "ingestion"]
        assert sensor_runs, "the automation sensor requested no run"
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in sensor_runs), [
            (r.run_id, r.status) for r in sensor_runs
        ]

    # Read back with SQL: the instance's storage really is PostgreSQL.
    run_rows = query(url, "SELECT pipeline_name, status FROM runs")
    assert ("ingestion", "SUCCESS") in run_rows
    assert any(status == "SUCCESS" and name != "ingestion" for name, status in run_rows)
    materialized = dict(
        query(
            url,
            "SELECT asset_key, count(*) FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY asset_key",
        )
    )
    assert materialized['["raw_air_quality"]'] == 1  # one (month, location) partition each
    assert materialized['["raw_weather"]'] == 1
    for name in FRAMES:
        assert materialized[f'["{name}"]'] == 1, name
    checks = query(
        url, "SELECT asset_key, check_name, execution_status FROM asset_check_executions"
    )
    for name in FRAMES:
        assert (f'["{name}"]', "schema", "SUCCEEDED") in checks, checks
    ticks = query(
        url,
        "SELECT j.status FROM job_ticks j JOIN instigators i ON i.selector_id = j.selector_id "
        "WHERE i.instigator_type = 'SENSOR'",
    )
    assert ("SUCCESS",) in ticks


def test_mlflow_run_and_champion_on_postgres_tracking_store(
    tmp_path: Path, new_database: Callable[[str], str]
) -> None:
    """A candidate logged and promoted through the project's MLflow resource and helpers."""
    import mlflow

    from airquality_assets.defs.model.mlflow import MlflowResource
    from airquality_assets.ml.registry import register_and_maybe_promote
    from airquality_assets.ml.tracking import DAGSTER_RUN_TAG, log_candidate_run
    from airquality_assets_tests.support.known_answer import (
        METADATA,
        PARAMS,
        X_TEST,
        make_model,
        metrics_frame,
        score,
    )

    url = new_database("mlflow")
    resource = MlflowResource(
        tracking_uri=sqlalchemy_url(url),
        experiment_name="pg-grid",
        artifact_location=(tmp_path / "mlartifacts").as_uri(),
    )
    previous = mlflow.get_tracking_uri()
    try:
        resource.setup_for_execution(dg.build_init_resource_context())
        experiment_id = resource.experiment_id()
        # as dagster-mlflow opens a Dagster run's parent: tagged with the Dagster run id
        parent = (
            resource.client()
            .create_run(experiment_id, run_name="grid", tags={DAGSTER_RUN_TAG: "dagster-run-on-pg"})
            .info.run_id
        )
        model = make_model([1.0, 2.0, 3.0])
        candidate = log_candidate_run(
            PARAMS,
            {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]},
            metrics_frame(model),
            {},
            model,
            X_TEST,
            metadata=METADATA,
            parent_run_id=parent,
            experiment_id=experiment_id,
            run_name="candidate-exact",
        )
        resource.end_parent_run("dagster-run-on-pg")
        decision = register_and_maybe_promote(
            resource.client(),
            candidate.model_uri,
            "airquality-lstm-pg",
            score(model),
            "test_rmse_mean",
            evaluate_champion=None,
            run_id=candidate.run_id,
        )
        assert decision.promoted
    finally:
        mlflow.set_tracking_uri(previous)

    runs = dict(query(url, "SELECT run_uuid, status FROM runs"))
    assert runs == {parent: "FINISHED", candidate.run_id: "FINISHED"}
    metrics = dict(
        query(url, "SELECT key, value FROM latest_metrics WHERE run_uuid = %s", candidate.run_id)
    )
    assert metrics["test_rmse_mean"] == pytest.approx(score(model), abs=1e-4)
    aliases = query(url, "SELECT name, alias, version FROM registered_model_aliases")
    assert aliases == [("airquality-lstm-pg", "champion", 1)]
