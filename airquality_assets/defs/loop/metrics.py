"""The pipeline-metrics sensor: what Dagster recorded since its cursors, pushed to Prometheus.

This module only reads the instance (materializations, failed pulls, training-run status
changes, each stream past its own cursor); the counting is
:func:`airquality_assets.monitoring.pipeline_counts.count_pipeline`.
"""

import json
from collections.abc import Iterator

import dagster as dg

from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG
from airquality_assets.defs.model.jobs import TRAINING_JOB
from airquality_assets.defs.resources import OperationsResource
from airquality_assets.monitoring.metrics import CounterTotals, PipelineMetrics
from airquality_assets.monitoring.pipeline_counts import (
    INGESTION_SOURCES,
    Materialization,
    TrainingRunChange,
    count_pipeline,
    location_of,
)

COUNTED_ASSETS = (*INGESTION_SOURCES, "forecasts", "champion_model")
PAGE = 10_000
RUN_EVENTS = {
    dg.DagsterEventType.RUN_START: None,
    dg.DagsterEventType.RUN_SUCCESS: "success",
    dg.DagsterEventType.RUN_FAILURE: "failure",
}


def _materializations(
    instance: dg.DagsterInstance, cursors: dict[str, str | None]
) -> Iterator[Materialization]:
    for asset in COUNTED_ASSETS:
        result = instance.fetch_materializations(
            dg.AssetKey(asset), limit=PAGE, cursor=cursors.get(asset), ascending=True
        )
        if result.records:
            cursors[asset] = result.cursor
        for record in result.records:
            m = record.asset_materialization
            meta = {k: getattr(v, "value", v) for k, v in (m.metadata if m else {}).items()}
            location = location_of(m.partition if m else None)
            yield Materialization(asset, location, meta, record.timestamp)


def _failed_pulls(
    instance: dg.DagsterInstance, cursors: dict[str, str | None]
) -> Iterator[tuple[str, str]]:
    for asset in INGESTION_SOURCES:
        key = f"{asset}:failed"
        failed = instance.fetch_failed_materializations(
            dg.AssetKey(asset), limit=PAGE, cursor=cursors.get(key), ascending=True
        )
        if failed.records:
            cursors[key] = failed.cursor
        for record in failed.records:
            partition = record.event_log_entry.dagster_event.partition  # type: ignore[union-attr]
            yield asset, location_of(partition)


def _training_changes(
    instance: dg.DagsterInstance, cursors: dict[str, str | None]
) -> Iterator[TrainingRunChange]:
    for event_type, outcome in RUN_EVENTS.items():
        key = f"runs:{event_type.value}"
        changes = instance.fetch_run_status_changes(
            event_type, limit=PAGE, cursor=cursors.get(key), ascending=True
        )
        if changes.records:
            cursors[key] = changes.cursor
        for record in changes.records:
            if record.event_log_entry.job_name != TRAINING_JOB:
                continue
            reason = "manual"
            if outcome is None:
                run = instance.get_run_by_id(record.event_log_entry.run_id)
                reason = (run.tags if run else {}).get(RETRAIN_REASON_TAG, "manual")
            yield TrainingRunChange(outcome, record.timestamp, reason)


def pipeline_metrics(instance: dg.DagsterInstance, state: dict) -> tuple[PipelineMetrics, dict]:
    """Metrics of what was recorded since the cursors in ``state``; returns them and the new
    state (cursors per record stream plus the counters' running totals)."""
    cursors: dict[str, str | None] = dict(state.get("cursors", {}))
    totals = CounterTotals(dict(state.get("totals", {})))
    metrics = PipelineMetrics()
    count_pipeline(
        totals,
        metrics,
        list(_materializations(instance, cursors)),
        list(_failed_pulls(instance, cursors)),
        list(_training_changes(instance, cursors)),
    )
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
