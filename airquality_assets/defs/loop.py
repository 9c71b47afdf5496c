"""Schedules and sensors of the operating loop (all off by default; see docs/operations.md).

* ``hourly_forecast_schedule``: at :10 every hour, the current day's ``forecasts`` per
  location (issues the hours not issued yet).
* ``daily_monitoring_schedule``: at 00:30 UTC, ``forecast_accuracy`` and ``drift_report``.
* ``weekly_retrain_schedule``: Mondays 03:00 UTC, the model half (fallback retrain).
* ``retraining_sensor``: one model-half run per drift/accuracy episode (run key, cursor,
  cool-down), tagged with the reason and the figures.
* ``check_alert_sensor``: every check evaluation since its cursor; one alert per failure
  episode and one "resolved", through Apprise.

"Now" is the deployment's clock: the tick's time when live, the replay instant otherwise.
"""

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import datetime

import dagster as dg

from airquality_assets.defs.resources import DeploymentResource, OperationsResource
from airquality_assets.monitoring.alerts import (
    AlertState,
    AppriseNotifier,
    CheckEvaluation,
    RunFailureAlert,
    latest_per_episode,
    parse_urls,
    process,
)
from airquality_assets.monitoring.metrics import CounterTotals, PipelineMetrics
from airquality_assets.monitoring.retrain import (
    RetrainPolicy,
    RetrainState,
    decide,
    trigger_detail,
)

TRAINING_JOB = "training"
TAG_PREFIX = "airquality/"

forecasts_job = dg.define_asset_job(
    "issue_forecasts",
    selection=dg.AssetSelection.assets("forecasts"),
    description="Issue the champion's hourly forecasts for (day, location) partitions.",
)

monitoring_job = dg.define_asset_job(
    "monitoring",
    selection=dg.AssetSelection.assets("forecast_accuracy", "drift_report"),
    description="Score the issued forecasts and measure drift against the champion's reference.",
)


def _now(deployment: DeploymentResource, context: dg.ScheduleEvaluationContext) -> datetime:
    """The replay instant, or the tick's scheduled (wall) time for live sources."""
    clock = deployment.settings.clock
    return clock.now() if clock.is_replay else clock.now(wall=context.scheduled_execution_time)


@dg.schedule(
    job=forecasts_job,
    cron_schedule="10 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every hour at :10, issue the newest hour's forecast of every location.",
)
def hourly_forecast_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> list[dg.RunRequest]:
    now = _now(deployment, context)
    day = now.date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"forecasts:{day}|{location}:{now:%Y%m%dT%H}",
            partition_key=dg.MultiPartitionKey({"date": day, "location": location}),
        )
        for location in deployment.settings.location_names
    ]


@dg.schedule(
    job=monitoring_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 00:30 UTC: forecast accuracy and drift.",
)
def daily_monitoring_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> dg.RunRequest:
    now = _now(deployment, context)
    return dg.RunRequest(run_key=f"monitoring:{now:%Y-%m-%dT%H}")


@dg.schedule(
    job_name=TRAINING_JOB,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Mondays 03:00 UTC: retrain on the newest data even without a trigger.",
)
def weekly_retrain_schedule(
    context: dg.ScheduleEvaluationContext, deployment: DeploymentResource
) -> dg.RunRequest:
    now = _now(deployment, context)
    return dg.RunRequest(
        run_key=f"weekly-retrain:{now:%Y-%m-%d}",
        tags={f"{TAG_PREFIX}retrain_reason": "schedule", f"{TAG_PREFIX}clock": now.isoformat()},
    )


def _latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


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
    context: dg.SensorEvaluationContext, operations: OperationsResource
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    state = RetrainState.from_cursor(context.cursor)
    drift = _latest_metadata(context.instance, "drift_report")
    accuracy = _latest_metadata(context.instance, "forecast_accuracy")
    clocks = [str(m["clock"]) for m in (drift, accuracy) if m.get("clock")]
    if not clocks:
        yield dg.SkipReason("no drift_report or forecast_accuracy yet")
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
            f"{TAG_PREFIX}retrain_reason": decision.reason.split(":")[0],
            f"{TAG_PREFIX}retrain_detail": detail[:1000],
            f"{TAG_PREFIX}drift_score": str(drift.get("drift_score", "")),
            f"{TAG_PREFIX}rmse_ratio_7d": json.dumps(accuracy.get("ratio_to_test_rmse_7d", {})),
            f"{TAG_PREFIX}clock": now.isoformat(),
        },
    )


STALE_PLANNED_S = 3600.0


def check_evaluations(
    instance: dg.DagsterInstance, check_keys, after: int, page: int = 200
) -> tuple[list[CheckEvaluation], int]:
    """Evaluations of ``check_keys`` recorded after execution id ``after``, oldest first, and
    the highest id the cursor may move to: never past a check that is planned but not yet
    evaluated while its run is still going, so no evaluation is skipped.

    Reads Dagster's asset-check execution records (one id sequence for every check), which
    works on every event-log storage, including the default run-sharded SQLite one.
    """
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    out: list[CheckEvaluation] = []
    limit_id: int | None = None
    storage = instance.event_log_storage
    now = time.time()
    finished: dict[str, bool] = {}

    def running(run_id: str) -> bool:
        """A planned check can still be evaluated only while its run is going (a ranged
        backfill plans checks it records under each partition, so its plan stays open); a
        run whose process died stays "started" until run monitoring notices, hence the
        STALE_PLANNED_S limit as well."""
        if run_id not in finished:
            run = instance.get_run_by_id(run_id)
            finished[run_id] = run is None or run.is_finished
        return not finished[run_id]

    for key in check_keys:
        cursor = None
        while True:
            records = storage.get_asset_check_execution_history(key, limit=page, cursor=cursor)
            fresh = [r for r in records if r.id > after]
            for record in fresh:
                if record.status == Status.PLANNED or record.event is None:
                    recent = now - record.create_timestamp < STALE_PLANNED_S
                    if recent and running(record.run_id):
                        limit_id = min(limit_id or record.id, record.id)
                    continue
                evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
                out.append(
                    CheckEvaluation(
                        storage_id=record.id,
                        asset=evaluation.asset_key.to_user_string(),
                        check=evaluation.check_name,
                        partition=evaluation.partition,
                        passed=bool(evaluation.passed),
                        severity=evaluation.severity.value,
                        description=evaluation.description,
                        run_id=record.run_id,
                    )
                )
            if len(fresh) < len(records) or len(records) < page:
                break
            cursor = records[-1].id
    if limit_id is not None:
        out = [e for e in out if e.storage_id < limit_id]
    return sorted(out, key=lambda e: e.storage_id), (limit_id - 1 if limit_id else -1)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Sends each failed asset check once per episode (and 'resolved' once) to "
        "AIRQUALITY_ALERT_URLS through Apprise; a failed check does not fail its run, so "
        "run-failure sensors never see it."
    ),
)
def check_alert_sensor(
    context: dg.SensorEvaluationContext, operations: OperationsResource
) -> dg.SkipReason:
    state = AlertState.from_cursor(context.cursor)
    check_keys = context.repository_def.asset_graph.asset_check_keys  # type: ignore[union-attr]
    evaluations, _ = check_evaluations(context.instance, check_keys, state.after_storage_id)
    if state.after_storage_id <= 0 and not state.open_episodes:  # first tick: what fails now
        evaluations = latest_per_episode(evaluations)
    notifier = AppriseNotifier(
        parse_urls(operations.alert_urls), attempts=operations.alert_attempts
    )
    outcome = process(
        evaluations,
        state,
        notifier,
        base_url=operations.ui_base_url,
        give_up_after=operations.alert_give_up_after_ticks,
    )
    totals = CounterTotals(dict(state.counters))
    for alert in outcome.delivered:
        context.log.warning(f"alert sent: {alert.title}")
        totals.add("alerts_sent_total", kind=alert.kind,
                   severity=alert.evaluation.severity, outcome="delivered")  # fmt: skip
    for alert in outcome.given_up:
        context.log.error(f"alert given up after repeated delivery failures: {alert.title}")
        totals.add("alerts_sent_total", kind=alert.kind,
                   severity=alert.evaluation.severity, outcome="given_up")  # fmt: skip
    if outcome.delivered or outcome.given_up:
        metrics = PipelineMetrics()
        totals.record(metrics)
        metrics.push(operations.pushgateway_url or None, job="check_alert_sensor")
    context.update_cursor(dataclasses.replace(outcome.state, counters=totals.totals).to_cursor())
    blocked = f"; delivery failing, will retry: {outcome.blocked.title}" if outcome.blocked else ""
    return dg.SkipReason(
        f"{len(evaluations)} evaluation(s) read, {len(outcome.delivered)} alert(s) sent, "
        f"{len(outcome.state.open_episodes)} open episode(s){blocked}"
    )


schedules = [hourly_forecast_schedule, daily_monitoring_schedule, weekly_retrain_schedule]
sensors = [retraining_sensor, check_alert_sensor]
jobs = [forecasts_job, monitoring_job]


def root_cause(error) -> str:
    """The user's exception, not Dagster's "error occurred while executing op" wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip() if error is not None else "no message"


@dg.run_failure_sensor(
    name="training_failure_sensor",
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Sends one alert per failed training run to AIRQUALITY_ALERT_URLS: the promotion "
        "gate is the run's last decision, so a failed run never moved the champion alias."
    ),
)
def training_failure_sensor(
    context: dg.RunFailureSensorContext, operations: OperationsResource
) -> None:
    run = context.dagster_run
    if run.job_name != TRAINING_JOB:
        return
    champion = _latest_metadata(context.instance, "champion_model").get("champion_version")
    steps = [
        f"{e.step_key}: {root_cause(e.event_specific_data.error)}"  # type: ignore[union-attr]
        for e in context.get_step_failure_events()[:3]
    ]
    alert = RunFailureAlert(
        job=run.job_name,
        run_id=run.run_id,
        error="; ".join(steps) or context.failure_event.message or "",
        champion=f"v{champion}" if champion else "none",
        ui_url=f"{operations.ui_base_url.rstrip('/')}/runs/{run.run_id}",
    )
    notifier = AppriseNotifier(
        parse_urls(operations.alert_urls), attempts=operations.alert_attempts
    )
    if notifier(alert):
        context.log.warning(f"alert sent: {alert.title}")
    else:  # the sensor's cursor moves on: a run fails once, its alert is given up explicitly
        context.log.error(f"alert given up after repeated delivery failures: {alert.title}")


sensors.append(training_failure_sensor)


INGESTION_ASSETS = {"raw_air_quality": "air_pollution", "raw_weather": "weather"}


def _location_of(partition: str | None) -> str:
    return partition.split("|")[-1] if partition else "all"


def pipeline_metrics(instance: dg.DagsterInstance, state: dict) -> tuple[PipelineMetrics, dict]:
    """Metrics of what was recorded since the cursors in ``state``; returns them and the new
    state (cursors per record stream plus the counters' running totals).

    Counted from Dagster's own records, one owner for every counter: ingestion (one per
    materialized raw partition, failed partitions, bytes and seconds of the newest pull),
    forecasts issued, training runs by outcome, retrains requested (training runs started
    with a ``retrain_reason`` tag; "manual" without), promotion decisions and the champion's
    version.
    """
    cursors: dict[str, str | None] = dict(state.get("cursors", {}))
    totals = CounterTotals(dict(state.get("totals", {})))
    metrics = PipelineMetrics()

    def materializations(asset: str):
        result = instance.fetch_materializations(
            dg.AssetKey(asset), limit=10_000, cursor=cursors.get(asset), ascending=True
        )
        if result.records:
            cursors[asset] = result.cursor
        for record in result.records:
            m = record.asset_materialization
            meta = {k: getattr(v, "value", v) for k, v in (m.metadata if m else {}).items()}
            yield record, _location_of(m.partition if m else None), meta

    for asset, source in INGESTION_ASSETS.items():
        for record, location, meta in materializations(asset):
            labels = {"source": source, "location": location}
            totals.add("data_ingestion_total", **labels)
            metrics.set("data_ingestion_volume_bytes", float(meta.get("bytes", 0)), **labels)
            metrics.set("data_ingestion_time_seconds", float(meta.get("wall_seconds", 0)), **labels)
            metrics.set("data_ingestion_last_successful_timestamp_seconds", record.timestamp,
                        **labels)  # fmt: skip
        failed = instance.fetch_failed_materializations(
            dg.AssetKey(asset), limit=10_000, cursor=cursors.get(f"{asset}:failed"), ascending=True
        )
        for record in failed.records:
            partition = record.event_log_entry.dagster_event.partition  # type: ignore[union-attr]
            totals.add("data_ingestion_errors_total", source=source,
                       location=_location_of(partition))  # fmt: skip
        if failed.records:
            cursors[f"{asset}:failed"] = failed.cursor
    for _, location, meta in materializations("forecasts"):
        issued = float(meta.get("issued", 0) or 0)
        version = str(meta.get("model", "")).rpartition(" v")[2] or "none"
        if issued:
            totals.add("forecasts_issued_total", issued, location=location, model_version=version)
    for _, _, meta in materializations("champion_model"):
        promoted = bool(meta.get("promoted", False))
        totals.add("model_promotion_total", outcome="promoted" if promoted else "rejected")
        version = str(meta.get("champion_version", ""))
        if version.isdigit():
            metrics.set("model_champion_version", float(version), model="champion")
    for event_type, outcome in (
        (dg.DagsterEventType.RUN_START, None),
        (dg.DagsterEventType.RUN_SUCCESS, "success"),
        (dg.DagsterEventType.RUN_FAILURE, "failure"),
    ):
        key = f"runs:{event_type.value}"
        changes = instance.fetch_run_status_changes(
            event_type, limit=10_000, cursor=cursors.get(key), ascending=True
        )
        if changes.records:
            cursors[key] = changes.cursor
        for record in changes.records:
            if record.event_log_entry.job_name != TRAINING_JOB:
                continue
            if outcome is None:
                run = instance.get_run_by_id(record.event_log_entry.run_id)
                reason = (run.tags if run else {}).get(f"{TAG_PREFIX}retrain_reason", "manual")
                totals.add("retrain_requests_total", reason=reason)
            else:
                totals.add("model_training_total", outcome=outcome)
                metrics.set("model_last_training_timestamp_seconds", record.timestamp,
                            outcome=outcome)  # fmt: skip
    totals.record(metrics)
    return metrics, {"cursors": cursors, "totals": totals.totals}


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Pushes pipeline metrics (ingestion counts, bytes, timings, errors; promotion "
        "decisions) recorded since its cursor to AIRQUALITY_PUSHGATEWAY_URL."
    ),
)
def pipeline_metrics_sensor(
    context: dg.SensorEvaluationContext, operations: OperationsResource
) -> dg.SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    metrics, new_state = pipeline_metrics(context.instance, state)
    samples = metrics.samples()
    changed = new_state != state
    pushed = metrics.push(operations.pushgateway_url or None, job="pipeline") if changed else False
    if pushed or not operations.pushgateway_url:
        context.update_cursor(json.dumps(new_state, sort_keys=True))
    return dg.SkipReason(f"{len(samples)} sample(s); pushed: {pushed}")


sensors.append(pipeline_metrics_sensor)
