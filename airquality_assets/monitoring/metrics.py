"""Prometheus metrics of the pipeline, pushed to a Pushgateway when one is configured.

Dagster runs are batch jobs, so nothing scrapes them: each stage records into its own
:class:`PipelineMetrics` (a fresh ``CollectorRegistry``) and pushes it with ``pushadd`` under a
grouping key (stage, plus location where the stage is per location), so one stage's push never
replaces another's series. The Pushgateway keeps only the last value pushed per group, so
counters are pushed as running totals (:class:`CounterTotals`, kept in a sensor's cursor):
``rate()`` and ``increase()`` work on them as on any scraped counter.

:data:`METRICS` is the one list of names, types and labels; dashboards are cross-checked
against it (``deploy/``) and the tests assert every pushed sample appears in it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import default_handler, pushadd_to_gateway

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "counter" or "gauge"
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricSpec, ...] = (
    # ingestion, per source ("air_pollution" / "weather" plus the source kind) and location
    MetricSpec(
        "data_ingestion_total",
        "counter",
        ("source", "location"),
        "Raw partitions (UTC days) pulled successfully",
    ),
    MetricSpec(
        "data_ingestion_time_seconds",
        "gauge",
        ("source", "location"),
        "Seconds the last ingestion run spent pulling",
    ),
    MetricSpec(
        "data_ingestion_volume_bytes",
        "gauge",
        ("source", "location"),
        "Bytes of raw response bodies stored by the last ingestion run",
    ),
    MetricSpec(
        "data_ingestion_last_successful_timestamp_seconds",
        "gauge",
        ("source", "location"),
        "Unix time of the last successful pull",
    ),
    MetricSpec(
        "data_ingestion_errors_total",
        "counter",
        ("source", "location"),
        "Pulls that failed (after the client's retries)",
    ),
    # training and the promotion gate
    MetricSpec(
        "model_training_total",
        "counter",
        ("outcome",),
        "Model-half runs by outcome: success or failure",
    ),
    MetricSpec(
        "model_promotion_total",
        "counter",
        ("outcome",),
        "Promotion-gate decisions: promoted or rejected",
    ),
    MetricSpec(
        "model_champion_version", "gauge", ("model",), "Registry version holding the champion alias"
    ),
    MetricSpec(
        "model_last_training_timestamp_seconds",
        "gauge",
        ("outcome",),
        "Unix time of the last model-half run, by outcome",
    ),
    # drift
    MetricSpec(
        "data_drift_score",
        "gauge",
        ("location", "feature", "statistic"),
        "Drift of the recent window against the seasonal training reference",
    ),
    MetricSpec(
        "data_drift_status",
        "gauge",
        ("location",),
        "Drift verdict: 0 ok, 1 warn, 2 error, -1 not enough data",
    ),
    # forecasts and their scores
    MetricSpec(
        "forecasts_issued_total",
        "counter",
        ("location", "model_version"),
        "Hourly 24-h forecasts issued (one per issue hour)",
    ),
    MetricSpec(
        "forecast_rmse",
        "gauge",
        ("location", "pollutant", "horizon", "window", "model"),
        "Rolling RMSE (ug/m3) of issued forecasts; model is 'champion' or 'persistence'",
    ),
    MetricSpec(
        "forecast_scored_pairs",
        "gauge",
        ("location", "pollutant", "horizon", "window"),
        "Forecast/actual pairs behind each forecast_rmse value",
    ),
    # the loop's reactions
    MetricSpec(
        "alerts_sent_total",
        "counter",
        ("kind", "severity", "outcome"),
        "Check alerts: kind failure/resolved; outcome delivered/given_up",
    ),
    MetricSpec(
        "retrain_requests_total",
        "counter",
        ("reason",),
        "Retraining runs requested, by reason (drift, accuracy, schedule)",
    ),
)

_BY_NAME = {spec.name: spec for spec in METRICS}


class PipelineMetrics:
    """The project's metrics in a private registry (one per run or tick, pushed once)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._metrics: dict[str, Counter | Gauge] = {}
        for spec in METRICS:
            # prometheus-client appends "_total" to counters itself.
            name = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
            cls = Counter if spec.kind == "counter" else Gauge
            self._metrics[spec.name] = cls(
                name, spec.help, labelnames=spec.labels, registry=self.registry
            )

    def __getitem__(self, name: str) -> Counter | Gauge:
        return self._metrics[name]

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._check(name, "counter", labels)
        self._metrics[name].labels(**labels).inc(amount)  # type: ignore[union-attr]

    def set(self, name: str, value: float, **labels: str) -> None:
        self._check(name, "gauge", labels)
        self._metrics[name].labels(**labels).set(value)  # type: ignore[union-attr]

    @staticmethod
    def _check(name: str, kind: str, labels: dict[str, str]) -> None:
        spec = _BY_NAME.get(name)
        if spec is None:
            raise KeyError(f"unknown metric {name!r}; defined: {sorted(_BY_NAME)}")
        if spec.kind != kind:
            raise TypeError(f"{name} is a {spec.kind}, not a {kind}")
        if set(labels) != set(spec.labels):
            raise ValueError(f"{name} takes labels {spec.labels}, got {tuple(labels)}")

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every recorded sample as ``{(name, sorted labels): value}`` (for metadata/tests)."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def push(
        self,
        gateway_url: str | None,
        job: str,
        grouping_key: dict[str, str] | None = None,
        timeout_s: float = 5.0,
        handler: Callable = default_handler,
    ) -> bool:
        """``pushadd`` to the gateway; False (and a log line) when unset or unreachable.

        A monitoring outage must never fail the pipeline run that it monitors.
        """
        if not gateway_url:
            return False
        try:
            pushadd_to_gateway(
                gateway_url,
                job=job,
                registry=self.registry,
                grouping_key=grouping_key or {},
                timeout=timeout_s,
                handler=handler,
            )
        except Exception as exc:  # network errors, HTTP errors from the gateway
            logger.warning("metrics push to %s (job %s) failed: %s", gateway_url, job, exc)
            return False
        return True


@dataclass
class CounterTotals:
    """Running totals of counters, carried from push to push (in a sensor's cursor).

    A counter pushed as "what this tick saw" would replace the previous tick's value at the
    gateway and never grow; pushing the totals keeps it monotonic across ticks and runs.
    """

    totals: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, amount: float = 1.0, **labels: str) -> None:
        PipelineMetrics._check(name, "counter", labels)
        key = json.dumps([name, sorted(labels.items())])
        self.totals[key] = self.totals.get(key, 0.0) + float(amount)

    def record(self, metrics: PipelineMetrics) -> None:
        """Set each counter in ``metrics`` to its running total."""
        for key, value in sorted(self.totals.items()):
            name, labels = json.loads(key)
            metrics.inc(name, value, **dict(labels))

    def value(self, name: str, **labels: str) -> float:
        return self.totals.get(json.dumps([name, sorted(labels.items())]), 0.0)
