"""Thread-safe forecasts from a model package: padded batches through the shared jitted
forward pass (:func:`airquality_assets.ml.forward.jit_forward`), and the response.

Why buckets: XLA compiles one executable per input shape. Batches are padded to a few
bucket sizes (1, 2, 4, ... 64) that are all compiled during warm-up, so no request ever
pays for (or races on) a compilation.

A model reading the weather forecast of its target hours takes two inputs, the observed
window ``(batch, lookback, features)`` and the forecast block ``(batch, H, future
features)`` whose calendar encodings come from the target hours; both are padded to the
same bucket, and every bucket is warmed up with both.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from airquality_assets.aqi import aqi_band, has_aqi_scale, overall_aqi
from airquality_assets.ml.forward import jit_forward
from airquality_assets.ml.intervals import METADATA_KEY as INTERVALS_KEY
from airquality_assets.ml.intervals import intervals_of
from airquality_assets.ml.package import ModelMetadata, load_package
from airquality_assets.serving.request import (
    ValidatedRequest,
    forecast_hours_for,
    required_fields,
)
from airquality_assets.transforms.features import feature_array

BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


def bucket_for(batch: int, buckets: Sequence[int] = BUCKETS) -> int:
    """Smallest bucket holding ``batch`` rows (larger batches are split by the caller)."""
    for size in buckets:
        if batch <= size:
            return size
    return buckets[-1]


@dataclass
class ForecastResult:
    """Forecast array plus the JSON answer; the array feeds the metrics."""

    values: np.ndarray  # (locations, horizons, targets) ug/m3, clipped at 0
    body: dict[str, Any]

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=True, allow_nan=False).encode("ascii")


class Predictor:
    """A loaded model package with a compiled, thread-safe forward pass."""

    def __init__(self, model: Any, metadata: ModelMetadata, buckets: Sequence[int] = BUCKETS):
        self.metadata = metadata
        self.model = model
        self.buckets = tuple(sorted(buckets))
        self.n_features = len(metadata.feature_names)
        self.n_future = len(metadata.future_feature_names)
        self.forecast_hours = forecast_hours_for(metadata.horizons) if self.n_future else 0
        #: Per model input, the shape of one row: observations, then the forecast block.
        self.input_shapes: tuple[tuple[int, int], ...] = ((metadata.lookback, self.n_features),)
        if self.n_future:
            self.input_shapes += ((self.forecast_hours, self.n_future),)
        n_inputs = len(getattr(model, "inputs", None) or ()) or 1
        if n_inputs != len(self.input_shapes):
            raise ValueError(
                f"the model reads {n_inputs} input(s), its metadata describes "
                f"{len(self.input_shapes)} (future_feature_names: "
                f"{list(metadata.future_feature_names) or 'none'})"
            )
        self._forward = jit_forward(model)
        # Tracing touches Keras' global state, so only one thread may compile at a time.
        self._compile_lock = threading.Lock()
        self._compiled: set[int] = set()
        self.ready = False

    @classmethod
    def from_package(cls, directory: str | os.PathLike[str], **kwargs: Any) -> Predictor:
        model, metadata = load_package(Path(directory))
        return cls(model, metadata, **kwargs)

    def warm_up(self) -> float:
        """Compile every bucket once; returns seconds spent. Readiness waits for this."""
        started = time.perf_counter()
        for size in self.buckets:
            self._run_bucket([np.zeros((size, *shape), np.float32) for shape in self.input_shapes])
        self.ready = True
        return time.perf_counter() - started

    def _run_bucket(self, arrays: list[np.ndarray]) -> np.ndarray:
        size = arrays[0].shape[0]
        if size not in self._compiled:
            with self._compile_lock:
                out = self._forward(*arrays)
                self._compiled.add(size)
                return out
        return self._forward(*arrays)

    def _checked(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.input_shapes):
            raise ValueError(
                f"the model reads {len(self.input_shapes)} input(s), got {len(inputs)}"
            )
        arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
        for array, shape in zip(arrays, self.input_shapes, strict=True):
            if array.ndim != 3 or array.shape[1:] != shape:
                raise ValueError(f"input shape {array.shape} does not match (batch, {shape})")
        if len({a.shape[0] for a in arrays}) > 1:
            raise ValueError(f"inputs disagree on the batch size: {[a.shape[0] for a in arrays]}")
        return arrays

    def forward(self, *inputs: np.ndarray) -> np.ndarray:
        """``forward(x)`` or, for a model reading the forecast, ``forward(x, future)``:
        (batch, lookback, features) [and (batch, H, future features)] float32 ->
        (batch, horizons, targets), any batch size.

        Pads every input to the next bucket and chunks above the largest one, so only
        warmed-up shapes reach XLA.
        """
        arrays = self._checked(inputs)
        n = arrays[0].shape[0]
        outputs = []
        largest = self.buckets[-1]
        for start in range(0, n, largest):
            chunks = [a[start : start + largest] for a in arrays]
            rows = chunks[0].shape[0]
            size = bucket_for(rows, self.buckets)
            if size != rows:
                chunks = [
                    np.concatenate([c, np.zeros((size - rows, *c.shape[1:]), np.float32)])
                    for c in chunks
                ]
            outputs.append(self._run_bucket(chunks)[:rows])
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def features(self, request: ValidatedRequest) -> np.ndarray:
        """Model input (locations, lookback, features) float32 for a validated request."""
        matrix = feature_array(request.times, request.columns, self.metadata.feature_names)
        return matrix.reshape(len(request.locations), request.lookback, self.n_features)

    def future(self, request: ValidatedRequest) -> np.ndarray:
        """The forecast input (locations, H, future features) float32 for a validated
        request: the forecast weather of each target hour and that hour's calendar, derived
        as training derives them from the ``weather_forecasts`` frame."""
        if request.forecast_hours != self.forecast_hours:
            raise ValueError(
                f"the request carries {request.forecast_hours} forecast hour(s), the model "
                f"reads {self.forecast_hours}"
            )
        names = self.metadata.future_feature_names
        matrix = feature_array(request.forecast_times, request.forecast_columns, names)
        return matrix.reshape(len(request.locations), self.forecast_hours, self.n_future)

    def inputs(self, request: ValidatedRequest) -> list[np.ndarray]:
        """Every model input for a validated request, in the model's order."""
        arrays = [self.features(request)]
        if self.n_future:
            arrays.append(self.future(request))
        return arrays

    def respond(self, request: ValidatedRequest, raw: np.ndarray) -> ForecastResult:
        """Build the JSON-ready answer from the model's raw output for ``request``.

        Forecasts are clipped at 0 ug/m3 (a concentration cannot be negative; the linear
        head can undershoot); AQI bands are computed on the clipped values.
        """
        meta = self.metadata
        values = np.maximum(np.asarray(raw, dtype=np.float64), 0.0)
        horizons = list(meta.horizons)
        calibration = intervals_of(meta.extra)
        if calibration is not None:  # the interval around the raw forward, as the loop stores
            lower, upper = calibration.bounds(raw, meta.target_pollutants, horizons)
        forecasts = []
        for index, location in enumerate(request.locations):
            last = request.last_times[index]
            pollutants: dict[str, Any] = {}
            bands: dict[str, np.ndarray] = {}
            for j, pollutant in enumerate(meta.target_pollutants):
                series = values[index, :, j]
                entry: dict[str, Any] = {"values": _json_floats(series), "aqi": None}
                if calibration is not None:
                    entry["lower"] = _json_floats(lower[index, :, j])
                    entry["upper"] = _json_floats(upper[index, :, j])
                    entry["level"] = calibration.level
                if has_aqi_scale(pollutant):  # OWM gives NH3 and NO no band
                    bands[pollutant] = aqi_band(pollutant, series)
                    entry["aqi"] = bands[pollutant].tolist()
                pollutants[pollutant] = entry
            forecasts.append(
                {
                    "location": location,
                    "last_observation": _iso(last),
                    "horizons": horizons,
                    "times": [_iso(last + timedelta(hours=h)) for h in horizons],
                    "pollutants": pollutants,
                    "aqi": overall_aqi(bands).tolist() if bands else None,
                }
            )
        body = {
            "model": {"name": meta.model_name, "version": str(meta.model_version)},
            "units": "ug/m3",
            "forecasts": forecasts,
        }
        return ForecastResult(values=values, body=body)

    def predict(self, request: ValidatedRequest) -> ForecastResult:
        """Features, forward pass and response for one validated request."""
        return self.respond(request, self.forward(*self.inputs(request)))

    def describe(self) -> dict[str, Any]:
        """What /metadata reports about the model."""
        meta = self.metadata
        return {
            "model_name": meta.model_name,
            "model_version": str(meta.model_version),
            "training_window": dict(meta.training_window),
            "feature_names": list(meta.feature_names),
            "required_fields": required_fields(meta.feature_names),
            "future_feature_names": list(meta.future_feature_names),
            "forecast_fields": required_fields(meta.future_feature_names),
            "forecast_hours": self.forecast_hours,
            "target_pollutants": list(meta.target_pollutants),
            "lookback": meta.lookback,
            "horizons": list(meta.horizons),
            "test_metrics": meta.test_metrics or {},
            "intervals": meta.extra.get(INTERVALS_KEY),
        }


def _iso(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_floats(values: np.ndarray) -> list[float | None]:
    """Rounded floats for JSON; non-finite values become null (JSON has no NaN)."""
    return [round(float(v), 4) if np.isfinite(v) else None for v in values]
