"""The retraining sensor: one model-half run per drift or accuracy episode.

It reads the newest ``drift_report`` and ``forecast_accuracy`` metadata, ignoring reports
older than a day and a half on the deployment's clock; the decision (run key, cursor,
cool-down) is :func:`airquality_assets.monitoring.retrain.decide`. The run it
requests is tagged with the reason and the figures, so the Runs page shows why it ran.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg

from airquality_assets.defs.loop.jobs import CLOCK_TAG, RETRAIN_REASON_TAG, TAG_PREFIX
from airquality_assets.defs.model.jobs import TRAINING_JOB
from airquality_assets.defs.resources import DeploymentResource, OperationsResource
from airquality_assets.monitoring.retrain import (
    RetrainPolicy,
    RetrainState,
    decide,
    trigger_detail,
)


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


#: Evidence older than this (its ``clock`` against the deployment's) is ignored: the daily
#: reports are a day apart, and a days-old drift report says nothing about today.
MAX_EVIDENCE_AGE_H = 36


def fresh_evidence(metadata: dict[str, object], clock: datetime) -> dict[str, object]:
    """``metadata`` if its ``clock`` is at most :data:`MAX_EVIDENCE_AGE_H` before ``clock``
    (and not after it), else nothing."""
    stamp = metadata.get("clock")
    if not stamp:
        return {}
    age = clock - datetime.fromisoformat(str(stamp))
    return metadata if timedelta(0) <= age <= timedelta(hours=MAX_EVIDENCE_AGE_H) else {}


@dg.sensor(
    job_name=TRAINING_JOB,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Requests one model-half run per episode of drift at ERROR or rolling forecast error "
        "above a factor of the champion's test error (run key, cursor, cool-down)."
    ),
)
def retraining_sensor(
    context: dg.SensorEvaluationContext,
    operations: OperationsResource,
    deployment: DeploymentResource,
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    state = RetrainState.from_cursor(context.cursor)
    clock = deployment.settings.clock.now()
    drift, accuracy = (
        fresh_evidence(latest_metadata(context.instance, asset), clock)
        for asset in ("drift_report", "forecast_accuracy")
    )
    clocks = [str(m["clock"]) for m in (drift, accuracy) if m.get("clock")]
    if not clocks:
        yield dg.SkipReason(
            f"{clock:%Y-%m-%d %H:%M}: no drift_report or forecast_accuracy of the last "
            f"{MAX_EVIDENCE_AGE_H} h"
        )
        return
    # The evidence's clock, not the tick's, names the episode: a tick that dies before its
    # cursor is stored and runs again requests the same run key (the daemon dedupes it).
    now = max(datetime.fromisoformat(c) for c in clocks)
    drift_error = drift.get("status") == "error"
    degraded = bool(accuracy.get("degraded", False))
    detail = trigger_detail(drift, accuracy)
    policy = RetrainPolicy(
        accuracy_factor=operations.accuracy_factor, cooldown_hours=operations.cooldown_hours
    )
    decision = decide(now, drift_error, degraded, state, policy, detail=detail)
    context.update_cursor(decision.state.to_cursor())
    if not decision.request:
        yield dg.SkipReason(f"{now:%Y-%m-%d %H:%M}: {decision.reason}; {detail}")
        return
    context.log.info(f"requesting a retrain: {decision.reason}")
    yield dg.RunRequest(
        run_key=decision.run_key,
        tags={
            RETRAIN_REASON_TAG: decision.reason.split(":")[0],
            f"{TAG_PREFIX}retrain_detail": detail[:1000],
            f"{TAG_PREFIX}drift_score": str(drift.get("drift_score", "")),
            f"{TAG_PREFIX}rmse_ratio_7d": json.dumps(accuracy.get("ratio_to_test_rmse_7d", {})),
            CLOCK_TAG: now.isoformat(),
        },
    )
