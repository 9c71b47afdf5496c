"""Alerts that reach a human: failed asset checks, and failed runs of any job.

A failed asset check does not fail its run, so run-failure sensors never see it:
``check_alert_sensor`` reads every check evaluation since its cursor and sends one alert per
failure episode (and one "resolved") through Apprise. ``run_failure_sensor`` alerts once per
failed run of any job (a forecast or monitoring run that fails is as silent as a training
one otherwise), including a run that run monitoring marked failed because its process died
(the MLflow runs a failed run left RUNNING are ``mlflow_sweep``'s). The episode logic is
:mod:`airquality_assets.monitoring.alerts`.
"""

import dataclasses
import time

import dagster as dg

from airquality_assets.defs.loop.sensors import latest_metadata
from airquality_assets.defs.model.jobs import TRAINING_JOB
from airquality_assets.defs.partitions import split_key
from airquality_assets.defs.resources import OperationsResource
from airquality_assets.deployment import run_worker_health
from airquality_assets.monitoring.alerts import (
    INCONCLUSIVE,
    AlertState,
    AppriseNotifier,
    CheckEvaluation,
    RunFailureAlert,
    latest_per_episode,
    parse_urls,
    process,
)
from airquality_assets.monitoring.metrics import CounterTotals, PipelineMetrics

STALE_PLANNED_S = 3600.0
#: Assets on (day x location) partitions: their checks' episodes are per location.
DAILY_STREAMS = frozenset({"forecasts"})


def _stream(asset: str, partition: str | None) -> str | None:
    if asset not in DAILY_STREAMS or not partition:
        return None
    return split_key(partition)[1]


def _inconclusive(evaluation) -> bool:
    value = (evaluation.metadata or {}).get(INCONCLUSIVE)
    return bool(getattr(value, "value", value))


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
        backfill plans checks it records under each partition, so its plan stays open).
        A run whose process died is not going, even before run monitoring marks it failed
        (the launcher's health check is asked here too, without its grace for an
        unreachable code server); where nobody can tell, the STALE_PLANNED_S limit still
        ends the wait."""
        if run_id not in finished:
            from dagster._core.launcher import WorkerStatus

            dead = (WorkerStatus.FAILED, WorkerStatus.NOT_FOUND)
            run = instance.get_run_by_id(run_id)
            finished[run_id] = (
                run is None or run.is_finished or run_worker_health(run).status in dead
            )
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
                        stream=_stream(evaluation.asset_key.to_user_string(), evaluation.partition),
                        inconclusive=_inconclusive(evaluation),
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


def root_cause(error) -> str:
    """The user's exception, not Dagster's "error occurred while executing op" wrapper."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip() if error is not None else "no message"


@dg.run_failure_sensor(
    name="run_failure_sensor",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Sends one alert per failed run of any job to AIRQUALITY_ALERT_URLS, with the failing "
        "step's own error (a run whose process died: run monitoring's reason); for a "
        "training run, names the champion (the alias never moved: the gate is the run's last "
        "decision)."
    ),
)
def run_failure_sensor(context: dg.RunFailureSensorContext, operations: OperationsResource) -> None:
    run = context.dagster_run
    champion = None
    if run.job_name == TRAINING_JOB:
        version = latest_metadata(context.instance, "champion_model").get("champion_version")
        champion = f"v{version}" if version else "none"
    steps = [
        f"{e.step_key}: {root_cause(e.event_specific_data.error)}"  # type: ignore[union-attr]
        for e in context.get_step_failure_events()[:3]
    ]
    alert = RunFailureAlert(
        job=run.job_name,
        run_id=run.run_id,
        error="; ".join(steps) or context.failure_event.message or "",
        ui_url=f"{operations.ui_base_url.rstrip('/')}/runs/{run.run_id}",
        champion=champion,
        partition=run.tags.get("dagster/partition"),
    )
    notifier = AppriseNotifier(
        parse_urls(operations.alert_urls), attempts=operations.alert_attempts
    )
    if notifier(alert):
        context.log.warning(f"alert sent: {alert.title}")
    else:  # the sensor's cursor moves on: a run fails once, its alert is given up explicitly
        context.log.error(f"alert given up after repeated delivery failures: {alert.title}")
