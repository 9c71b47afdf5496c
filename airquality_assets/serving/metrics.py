"""The service's Prometheus metrics: every name a dashboard may query is listed here.

Created in the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``, so
``prometheus_client`` is imported inside :class:`ServiceMetrics`. Every label set is
bounded: pollutants come from the model, ``reason`` from the fixed error codes, and BentoML's
own request metrics see unknown paths as one ``endpoint`` (:data:`UNMATCHED_PATH`).
"""

from __future__ import annotations

import math

import numpy as np

from airquality_assets.serving.gate import UNMATCHED_PATH
from airquality_assets.serving.request import RequestError

PREDICTIONS = "airquality_predictions"  # counter: exposed as airquality_predictions_total
PREDICTED = "airquality_predicted_concentration_ug_m3"  # histogram, label pollutant
REFUSED = "airquality_validation_failures"  # counter (_total), label reason
MODEL_INFO = "airquality_model_info"  # gauge 1, labels model_name, model_version

#: Names as scraped from /metrics, ours then BentoML's (request metrics, label ``endpoint``
#: is a route or UNMATCHED_PATH, plus ``http_response_code``).
EXPOSED_NAMES: tuple[str, ...] = (
    f"{PREDICTIONS}_total",
    f"{PREDICTED}_bucket",
    f"{PREDICTED}_sum",
    f"{PREDICTED}_count",
    f"{REFUSED}_total",
    MODEL_INFO,
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds_bucket",
    "bentoml_service_request_in_progress",
)
__all__ = ["EXPOSED_NAMES", "UNMATCHED_PATH", "ServiceMetrics"]

CONCENTRATION_BUCKETS = (5, 10, 20, 25, 40, 50, 60, 75, 100, 150, 200, 300, 500, 1000, 5000)


class ServiceMetrics:
    """Counters and histograms the service updates per request."""

    def __init__(self, model_name: str, model_version: str) -> None:
        import prometheus_client as prom

        self.predictions = prom.Counter(PREDICTIONS, "Location forecasts served by /predict")
        self.predicted = prom.Histogram(
            PREDICTED,
            "First-horizon forecast concentration per pollutant, ug/m3",
            ["pollutant"],
            buckets=CONCENTRATION_BUCKETS,
        )
        self.refused = prom.Counter(
            REFUSED,
            "Refused /predict and /metadata requests by the first problem's code",
            ["reason"],
        )
        self.model_info = prom.Gauge(
            MODEL_INFO,
            "Served model (value 1), name and MLflow version as labels",
            ["model_name", "model_version"],
            multiprocess_mode="max",
        )
        self.model_info.labels(model_name=model_name, model_version=model_version).set(1)

    def set_model(self, old: tuple[str, str], new: tuple[str, str]) -> None:
        """After a champion swap: the old (name, version) series 0, the new one 1."""
        self.model_info.labels(model_name=old[0], model_version=old[1]).set(0)
        self.model_info.labels(model_name=new[0], model_version=new[1]).set(1)

    def observe(self, pollutants: list[str], values: np.ndarray) -> None:
        """Count forecasts; histogram the first-horizon value per location and pollutant.

        Only the first horizon (every horizon costs one multiprocess mmap write each), and
        only finite values: one NaN would turn the histogram's sum into NaN until restart.
        """
        self.predictions.inc(values.shape[0])
        first = values[:, 0, :]
        for j, pollutant in enumerate(pollutants):
            child = self.predicted.labels(pollutant=pollutant)
            for value in first[:, j].tolist():
                if math.isfinite(value):
                    child.observe(value)

    def refusal(self, error: RequestError) -> None:
        self.refused.labels(reason=error.problems[0].code).inc()
