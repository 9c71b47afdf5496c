"""Record a schedule's or sensor's evaluation as a tick, the way the daemon records it.

The simulation evaluates the real schedules and sensors itself (the daemon would evaluate
them against wall time): without a tick in the instance the Dagster UI says "never run" on
every schedule and sensor page, including the sensor that launched a retrain. Each tick is
filed under the instigator of the code location (its remote origin id and selector id, as
the daemon files it), starts at the simulated clock, and ends SUCCESS with the runs it
launched, SKIPPED with the skip reason, or FAILURE with the error.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg
    from dagster._core.remote_representation.code_location import CodeLocation


def _remote_instigator(location: CodeLocation, name: str, kind: str):
    (repository,) = location.get_repositories().values()
    return repository.get_schedule(name) if kind == "schedule" else repository.get_sensor(name)


def ensure_running_state(instance: dg.DagsterInstance, remote, kind: str, now: datetime) -> None:
    """The instigator's state as a started one, so its page shows it running (as after
    ``dg dev`` with the daemon, where the loop's schedules and sensors default to running)."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
        SensorInstigatorData,
    )

    if instance.get_instigator_state(remote.get_remote_origin_id(), remote.selector_id):
        return
    if kind == "schedule":
        data = ScheduleInstigatorData(remote.cron_schedule, now.timestamp())
        itype = InstigatorType.SCHEDULE
    else:
        data = SensorInstigatorData(
            min_interval=remote.min_interval_seconds,
            last_sensor_start_timestamp=now.timestamp(),
            sensor_type=remote.sensor_type,
        )
        itype = InstigatorType.SENSOR
    instance.add_instigator_state(
        InstigatorState(remote.get_remote_origin(), itype, InstigatorStatus.RUNNING, data)
    )


def record_tick(
    instance: dg.DagsterInstance,
    location: CodeLocation,
    kind: str,
    name: str,
    at: datetime,
    *,
    run_ids: Sequence[str] = (),
    run_keys: Sequence[str] = (),
    skip_reason: str | None = None,
    cursor: str | None = None,
    error: BaseException | None = None,
):
    """Store one finished tick of schedule or sensor ``name`` (``kind``) at clock ``at``."""
    from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
    from dagster._utils.error import SerializableErrorInfo

    if kind not in ("schedule", "sensor"):
        raise ValueError(f"kind must be 'schedule' or 'sensor', got {kind!r}")
    remote = _remote_instigator(location, name, kind)
    ensure_running_state(instance, remote, kind, at)
    if error is not None:
        status = TickStatus.FAILURE
    elif run_ids:
        status = TickStatus.SUCCESS
    else:
        status = TickStatus.SKIPPED
    error_info = None
    if error is not None:
        error_info = SerializableErrorInfo(
            message="".join(traceback.format_exception_only(type(error), error)),
            stack=traceback.format_tb(error.__traceback__),
            cls_name=type(error).__name__,
        )
    return instance.create_tick(
        TickData(
            instigator_origin_id=remote.get_remote_origin_id(),
            instigator_name=name,
            instigator_type=InstigatorType.SCHEDULE
            if kind == "schedule"
            else InstigatorType.SENSOR,
            status=status,
            timestamp=at.timestamp(),
            end_timestamp=at.timestamp(),
            run_ids=list(run_ids),
            run_keys=list(run_keys),
            skip_reason=skip_reason if status == TickStatus.SKIPPED else None,
            cursor=cursor,
            error=error_info,
            selector_id=remote.selector_id,
        )
    )
