"""The operating loop's sensors against a real temporary Dagster instance.

The retraining sensor reads the latest ``drift_report`` materialization; here those records
are written to the instance with the metadata the asset writes, computed by the real drift
statistics on a shifted and an unshifted window. The alert sensor reads real
``ASSET_CHECK_EVALUATION`` records produced by materializing an asset with a check.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.defs import build_definitions
from airquality_assets.defs.loop.alerts import check_alert_sensor
from airquality_assets.defs.resources import OperationsResource
from airquality_assets.monitoring.drift import compare
from airquality_assets.settings import Settings

NOW = datetime(2014, 4, 1, tzinfo=UTC)


def _drift_metadata(shift: float) -> dict:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"pm2_5": rng.gamma(2, 40, 3000), "temp": rng.normal(12, 6, 3000)})
    window = pd.DataFrame({"pm2_5": rng.gamma(2, 40, 168), "temp": rng.normal(12, 6, 168)})
    window["temp"] = window["temp"] * shift + (32 if shift != 1 else 0)  # degrees F
    result = compare(window, reference, 168, features=["pm2_5", "temp"])
    return {"status": result.status, "drift_score": float(result.score)}


def _report_drift(instance: dg.DagsterInstance, metadata: dict, clock: datetime = NOW) -> None:
    """A drift_report materialization with the metadata the asset writes."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization("drift_report", metadata={**metadata, "clock": clock.isoformat()})
    )


def _tick(defs, instance, name, cursor, now, operations=None):
    sensor = defs.resolve_sensor_def(name)
    resources = {
        "deployment": defs.resources["deployment"].at(now),
        "operations": operations or OperationsResource(),
    }
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def defs_settings(defs) -> Settings:
    return defs.resources["deployment"].settings


@pytest.fixture
def defs(settings: Settings):
    return build_definitions(settings)


def test_retraining_sensor_one_run_for_a_shifted_window(defs) -> None:
    with dg.instance_for_test() as instance:
        shifted = _drift_metadata(shift=9 / 5)
        assert shifted["status"] == "error"
        _report_drift(instance, shifted)
        first = _tick(defs, instance, "retraining_sensor", None, NOW)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_key == f"retrain:{NOW.isoformat()}"
        assert request.tags["airquality/retrain_reason"] == "drift"
        assert "drift error" in request.tags["airquality/retrain_detail"]
        assert float(request.tags["airquality/drift_score"]) == pytest.approx(
            shifted["drift_score"]
        )
        # Repeated ticks (and a new drift report of the same episode) request nothing more.
        cursor = first.cursor
        for hours in (1, 2, 30, 100):
            _report_drift(instance, shifted, NOW + timedelta(hours=hours))
            again = _tick(defs, instance, "retraining_sensor", cursor, NOW + timedelta(hours=hours))
            assert again.run_requests == [], again.skip_message
            cursor = again.cursor
        assert "already has a run" in again.skip_message


def test_retraining_sensor_no_run_for_an_unshifted_window(defs) -> None:
    with dg.instance_for_test() as instance:
        unshifted = _drift_metadata(shift=1.0)
        assert unshifted["status"] == "ok"
        cursor = None
        for day in range(5):
            _report_drift(instance, unshifted, NOW + timedelta(days=day))
            data = _tick(defs, instance, "retraining_sensor", cursor, NOW + timedelta(days=day))
            assert data.run_requests == []
            cursor = data.cursor


def test_retraining_sensor_ignores_a_drift_report_older_than_a_day_and_a_half(defs) -> None:
    """A monitoring run that stopped leaves its last report behind: days-old evidence must
    not start (or keep) an episode."""
    with dg.instance_for_test() as instance:
        _report_drift(instance, _drift_metadata(shift=9 / 5), NOW - timedelta(hours=40))
        stale = _tick(defs, instance, "retraining_sensor", None, NOW)
        assert stale.run_requests == []
        assert "no drift_report or forecast_accuracy of the last 36 h" in stale.skip_message
        fresh = _tick(defs, instance, "retraining_sensor", None, NOW - timedelta(hours=10))
        assert len(fresh.run_requests) == 1


def test_retraining_sensor_resumes_from_its_cursor_without_duplicates(defs) -> None:
    """A tick that died after requesting (cursor not stored) may request again; the daemon
    dedupes by run key. A tick whose cursor was stored never requests the episode again."""
    with dg.instance_for_test() as instance:
        _report_drift(instance, _drift_metadata(shift=9 / 5))
        first = _tick(defs, instance, "retraining_sensor", None, NOW)
        replayed = _tick(defs, instance, "retraining_sensor", None, NOW + timedelta(minutes=5))
        assert replayed.run_requests[0].run_key == first.run_requests[0].run_key
        resumed = _tick(defs, instance, "retraining_sensor", first.cursor, NOW + timedelta(hours=1))
        assert resumed.run_requests == []


class _Receiver:
    def __init__(self, server: HTTPServer) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []
        server.expect_request("/alerts", method="POST").respond_with_handler(self.handle)
        self.url = f"json://127.0.0.1:{server.port}/alerts?rto=1&cto=1"

    def handle(self, request: Request) -> Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append(json.loads(request.get_data()))
        return Response("", status=status)


class _CheckConfig(dg.Config):
    ok: bool = True
    crash: bool = False
    inconclusive: bool = False


@dg.asset(check_specs=[dg.AssetCheckSpec("plausible", asset="frame")])
def frame(config: _CheckConfig):
    if config.crash:  # the check was planned and will never be evaluated
        raise RuntimeError("died before its check")
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="plausible",
        passed=config.ok,
        description=None if config.ok else "bad rows",
        metadata={"inconclusive": config.inconclusive},
    )


ALERT_DEFS = dg.Definitions(assets=[frame], sensors=[check_alert_sensor])


def _alert_tick(instance, cursor, operations):
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"operations": operations},
        definitions=ALERT_DEFS,
    ) as context:
        return check_alert_sensor.evaluate_tick(context)


def _materialize(instance, ok: bool, crash: bool = False, inconclusive: bool = False) -> None:
    config = {"ok": ok, "crash": crash, "inconclusive": inconclusive}
    dg.materialize(
        [frame],
        instance=instance,
        run_config={"ops": {"frame": {"config": config}}},
        resources={"io_manager": dg.InMemoryIOManager()},
        raise_on_error=not crash,
    )


def test_alert_sensor_once_per_episode_and_resolved_once(httpserver: HTTPServer) -> None:
    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url, ui_base_url="http://ui")
    with dg.instance_for_test() as instance:
        cursor = None
        for ok in (False, False, True, True, False):
            _materialize(instance, ok)
            data = _alert_tick(instance, cursor, operations)
            cursor = data.cursor
        titles = [r["title"] for r in receiver.received]
        assert titles == [
            "ERROR check failed: frame.plausible",
            "resolved: frame.plausible",
            "ERROR check failed: frame.plausible",
        ]
        assert "ui: http://ui/assets/frame?view=checks" in receiver.received[0]["message"]
        assert "reason: bad rows" in receiver.received[0]["message"]
        # Nothing new: a repeated tick sends nothing.
        _alert_tick(instance, cursor, operations)
        assert len(receiver.received) == 3


def test_a_pass_for_lack_of_evidence_does_not_resolve(httpserver: HTTPServer) -> None:
    """A check that passes with ``inconclusive`` in its metadata ("warming up", "not enough
    data") leaves the episode open; the next real pass resolves it."""
    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url)
    with dg.instance_for_test() as instance:
        cursor = None
        for ok, inconclusive in ((False, False), (True, True), (True, False)):
            _materialize(instance, ok, inconclusive=inconclusive)
            cursor = _alert_tick(instance, cursor, operations).cursor
            if inconclusive:
                assert len(receiver.received) == 1
        assert [r["title"] for r in receiver.received] == [
            "ERROR check failed: frame.plausible",
            "resolved: frame.plausible",
        ]


def test_alert_sensor_survives_a_failing_receiver(httpserver: HTTPServer) -> None:
    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url, alert_attempts=2)
    with dg.instance_for_test() as instance:
        _materialize(instance, ok=False)
        receiver.statuses = [500, 500]
        failed = _alert_tick(instance, None, operations)
        assert receiver.received == []
        assert "will retry" in failed.skip_message
        assert json.loads(failed.cursor)["after_storage_id"] == 0
        delivered = _alert_tick(instance, failed.cursor, operations)
        assert [r["title"] for r in receiver.received] == ["ERROR check failed: frame.plausible"]
        assert json.loads(delivered.cursor)["after_storage_id"] > 0


def test_pipeline_metrics_push_running_totals_only_when_something_changed(
    httpserver: HTTPServer,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from airquality_assets.defs.loop.metrics import pipeline_metrics_sensor

    pushes: list[dict] = []

    def handler(request: Request) -> Response:
        pushes.append(
            {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(request.get_data().decode())
                for s in family.samples
            }
        )
        return Response("", status=200)

    @dg.op
    def fit() -> None:
        return None

    @dg.job(name="training")
    def training() -> None:
        fit()

    def pulled(instance: dg.DagsterInstance, day: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "raw_air_quality",
                partition=f"{day}|beijing",
                metadata={"bytes": 2400, "wall_seconds": 0.5},
            )
        )

    httpserver.expect_request("/metrics/job/pipeline", method="POST").respond_with_handler(handler)
    operations = OperationsResource(pushgateway_url=f"http://127.0.0.1:{httpserver.port}")
    with dg.instance_for_test() as instance:
        cursor = None

        def tick() -> None:
            nonlocal cursor
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"operations": operations}
            ) as context:
                cursor = pipeline_metrics_sensor.evaluate_tick(context).cursor

        pulled(instance, "2014-03-01")
        pulled(instance, "2014-03-02")
        tick()
        tick()  # nothing new: nothing pushed
        pulled(instance, "2014-03-03")
        training.execute_in_process(instance=instance, tags={"airquality/retrain_reason": "drift"})
        tick()
    assert len(pushes) == 2
    labels = (("location", "beijing"), ("source", "air_pollution"))
    # The gateway keeps the last push: counters must arrive as totals, not per-tick deltas.
    assert [p[("data_ingestion_total", labels)] for p in pushes] == [2, 3]
    assert pushes[0][("data_ingestion_volume_bytes", labels)] == 2400
    assert pushes[0][("data_ingestion_last_successful_timestamp_seconds", labels)] > 1.7e9
    assert pushes[1][("model_training_total", (("outcome", "success"),))] == 1
    assert pushes[1][("retrain_requests_total", (("reason", "drift"),))] == 1
    assert ("model_training_total", (("outcome", "success"),)) not in pushes[0]


def test_loop_is_in_the_definitions_and_off_by_default(defs) -> None:
    repository = defs.get_repository_def()  # resolves every job: names must not clash
    names = {"hourly_forecast_schedule", "daily_monitoring_schedule", "weekly_retrain_schedule"}
    for name in names:
        schedule = repository.get_schedule_def(name)
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    for name in (
        "retraining_sensor",
        "check_alert_sensor",
        "pipeline_metrics_sensor",
        "run_failure_sensor",
    ):
        assert repository.get_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
    assert {"issue_forecasts", "monitoring", "training"} <= {j.name for j in defs.jobs}


def test_every_failed_run_is_reported_once(httpserver: HTTPServer) -> None:
    """Training or not: a failed forecast run is as silent as a training run otherwise."""
    from airquality_assets.defs.loop.alerts import run_failure_sensor

    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url, ui_base_url="http://ui")

    @dg.op
    def fit() -> None:
        raise RuntimeError("out of memory in candidate u64")

    @dg.op
    def forecast() -> None:
        raise ValueError("no champion to forecast with")

    @dg.job(name="training")
    def training() -> None:
        fit()

    @dg.job(name="issue_forecasts")
    def other() -> None:
        forecast()

    defs = dg.Definitions(jobs=[training, other], sensors=[run_failure_sensor])
    with dg.instance_for_test() as instance:
        cursor = None

        def tick() -> None:
            nonlocal cursor
            with dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources={"operations": operations},
                definitions=defs,
            ) as context:
                cursor = run_failure_sensor.evaluate_tick(context).cursor

        tick()  # the first tick only sets the cursor at "now", as the daemon's does
        failed = training.execute_in_process(instance=instance, raise_on_error=False)
        forecast_run = other.execute_in_process(
            instance=instance, raise_on_error=False, tags={"dagster/partition": "2014-03-01|x"}
        )
        tick()
        tick()
    assert [r["title"] for r in receiver.received] == [
        f"ERROR run failed: training {failed.run_id[:8]}",
        f"ERROR run failed: issue_forecasts {forecast_run.run_id[:8]} [2014-03-01|x]",
    ]
    message = receiver.received[0]["message"]
    assert "champion: none (unchanged)" in message
    assert "error: fit: RuntimeError: out of memory in candidate u64" in message
    assert f"ui: http://ui/runs/{failed.run_id}" in message
    other_message = receiver.received[1]["message"]
    assert "forecast: ValueError: no champion to forecast with" in other_message
    assert "champion:" not in other_message


def test_a_check_planned_by_a_finished_run_does_not_hold_back_alerts(
    httpserver: HTTPServer,
) -> None:
    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url)
    with dg.instance_for_test() as instance:
        _materialize(instance, ok=True, crash=True)  # planned, never evaluated, run over
        _materialize(instance, ok=False)
        _alert_tick(instance, None, operations)
    assert [r["title"] for r in receiver.received] == ["ERROR check failed: frame.plausible"]


def test_a_first_tick_reports_what_fails_now_not_the_history(httpserver: HTTPServer) -> None:
    receiver = _Receiver(httpserver)
    operations = OperationsResource(alert_urls=receiver.url)
    with dg.instance_for_test() as instance:
        for ok in (False, True, False, True):  # two failures, both resolved since
            _materialize(instance, ok)
        quiet = _alert_tick(instance, None, operations)
        assert receiver.received == []
        _materialize(instance, ok=False)
        _alert_tick(instance, quiet.cursor, operations)
        assert [r["title"] for r in receiver.received] == ["ERROR check failed: frame.plausible"]
    with dg.instance_for_test() as instance:  # failing now: reported once on the first tick
        for ok in (False, True, False):
            _materialize(instance, ok)
        _alert_tick(instance, None, operations)
        assert [r["title"] for r in receiver.received][1:] == [
            "ERROR check failed: frame.plausible"
        ]
