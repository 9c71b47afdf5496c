"""What the pipeline did, counted into Prometheus metrics from plain records.

The Dagster side (``defs/loop/metrics.py``) reads materializations, failed pulls and
training-run status changes from the instance, past its cursors, and hands them here as
plain values: every counter has one owner, and the counting is tested without an instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from airquality_assets.monitoring.metrics import CounterTotals, PipelineMetrics

#: Raw assets and the source label their counters carry.
INGESTION_SOURCES = {"raw_air_quality": "air_pollution", "raw_weather": "weather"}
#: Outcome labels of the outcome counters: once one outcome is counted, every other one is
#: pushed too, at 0 if nothing happened, so a panel or alert on it reads 0, not "No data".
OUTCOMES = {
    "model_training_total": ("success", "failure"),
    "model_promotion_total": ("promoted", "rejected"),
}


def location_of(partition: str | None) -> str:
    """The location of a ``month|location`` or ``day|location`` key; "all" when unpartitioned."""
    return partition.split("|")[-1] if partition else "all"


@dataclass(frozen=True)
class Materialization:
    asset: str
    location: str
    metadata: Mapping[str, object]
    timestamp: float


@dataclass(frozen=True)
class TrainingRunChange:
    """A training run's start (``outcome`` None) or end ("success" / "failure")."""

    outcome: str | None
    timestamp: float
    retrain_reason: str = "manual"


def count_pipeline(
    totals: CounterTotals,
    metrics: PipelineMetrics,
    materializations: Iterable[Materialization],
    failed_pulls: Iterable[tuple[str, str]],
    training_changes: Iterable[TrainingRunChange],
) -> None:
    """Add what the records say to ``totals`` (running counters) and set the gauges.

    ``failed_pulls`` holds (asset, location) per failed raw partition. Ingestion: one count
    per materialized raw partition, bytes and seconds of the newest pull; forecasts issued
    per model version; promotion decisions and the champion's version; training runs by
    outcome, and retrains requested by reason (a run without a reason tag is "manual").
    Every counter that could have moved is present, at 0 when it did not: a pulled
    (source, location) has its error counter, a counted outcome its sibling outcomes.
    """
    for m in materializations:
        meta = m.metadata
        if m.asset in INGESTION_SOURCES:
            labels = {"source": INGESTION_SOURCES[m.asset], "location": m.location}
            totals.add("data_ingestion_total", **labels)
            totals.add("data_ingestion_errors_total", 0, **labels)
            metrics.set("data_ingestion_volume_bytes", float(meta.get("bytes", 0)), **labels)  # type: ignore[arg-type]
            metrics.set("data_ingestion_time_seconds", float(meta.get("wall_seconds", 0)), **labels)  # type: ignore[arg-type]
            metrics.set("data_ingestion_last_successful_timestamp_seconds", m.timestamp, **labels)
        elif m.asset == "forecasts":
            issued = float(meta.get("issued", 0) or 0)  # type: ignore[arg-type]
            version = str(meta.get("model", "")).rpartition(" v")[2] or "none"
            if issued:
                totals.add(
                    "forecasts_issued_total", issued, location=m.location, model_version=version
                )
        elif m.asset == "champion_model":
            promoted = bool(meta.get("promoted", False))
            _add_outcome(totals, "model_promotion_total", "promoted" if promoted else "rejected")
            version = str(meta.get("champion_version", ""))
            if version.isdigit():
                metrics.set("model_champion_version", float(version), model="champion")
    for asset, location in failed_pulls:
        totals.add(
            "data_ingestion_errors_total", source=INGESTION_SOURCES[asset], location=location
        )
    for change in training_changes:
        if change.outcome is None:
            totals.add("retrain_requests_total", reason=change.retrain_reason)
        else:
            _add_outcome(totals, "model_training_total", change.outcome)
            metrics.set(
                "model_last_training_timestamp_seconds", change.timestamp, outcome=change.outcome
            )
    totals.record(metrics)


def _add_outcome(totals: CounterTotals, name: str, outcome: str) -> None:
    """Count one ``outcome`` of counter ``name`` and make its other outcomes present (+0)."""
    for other in OUTCOMES[name]:
        totals.add(name, 1.0 if other == outcome else 0.0, outcome=other)
    if outcome not in OUTCOMES[name]:
        totals.add(name, outcome=outcome)
