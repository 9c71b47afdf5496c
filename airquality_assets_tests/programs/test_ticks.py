"""The simulation's schedule and sensor evaluations are recorded as ticks where the UI
reads them: under the code location's instigator, with its runs or its skip reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorStatus, TickStatus

from airquality_assets.programs.local_runs import load_code_location
from airquality_assets.programs.ticks import record_tick


def _ticks(instance: dg.DagsterInstance, location, kind: str, name: str):
    (repository,) = location.get_repositories().values()
    remote = repository.get_schedule(name) if kind == "schedule" else repository.get_sensor(name)
    ticks = instance.get_ticks(remote.get_remote_origin_id(), remote.selector_id)
    state = instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id)
    return ticks, state


@pytest.mark.timeout(300)
def test_ticks_are_filed_under_the_code_locations_schedules_and_sensors(data_dir: Path) -> None:  # noqa: ARG001
    at = datetime(2026, 1, 2, 0, 30, tzinfo=UTC)
    with dg.instance_for_test() as instance, load_code_location(instance) as location:
        record_tick(
            instance, location, "schedule", "daily_monitoring_schedule", at,
            run_ids=["run-1"], run_keys=["monitoring:2014-03-01"],
        )  # fmt: skip
        record_tick(
            instance, location, "sensor", "retraining_sensor", at,
            skip_reason="2014-03-02 00:30: no trigger", cursor='{"episode": null}',
        )  # fmt: skip
        record_tick(
            instance, location, "sensor", "check_alert_sensor", at, error=RuntimeError("boom")
        )

        (schedule_tick,), state = _ticks(
            instance, location, "schedule", "daily_monitoring_schedule"
        )
        assert schedule_tick.status == TickStatus.SUCCESS
        assert schedule_tick.run_ids == ["run-1"]
        assert schedule_tick.run_keys == ["monitoring:2014-03-01"]
        assert schedule_tick.timestamp == at.timestamp()
        assert state is not None and state.status == InstigatorStatus.RUNNING

        (sensor_tick,), state = _ticks(instance, location, "sensor", "retraining_sensor")
        assert sensor_tick.status == TickStatus.SKIPPED
        assert sensor_tick.skip_reason == "2014-03-02 00:30: no trigger"
        assert sensor_tick.cursor == '{"episode": null}'
        assert state is not None and state.status == InstigatorStatus.RUNNING

        (failed,), _ = _ticks(instance, location, "sensor", "check_alert_sensor")
        assert failed.status == TickStatus.FAILURE
        assert failed.error is not None and "boom" in failed.error.message

        # a second tick keeps the one state and adds a tick
        record_tick(instance, location, "sensor", "retraining_sensor", at, skip_reason="again")
        ticks, _ = _ticks(instance, location, "sensor", "retraining_sensor")
        assert sorted(t.skip_reason for t in ticks) == ["2014-03-02 00:30: no trigger", "again"]
        with pytest.raises(ValueError):
            record_tick(instance, location, "job", "training", at)
