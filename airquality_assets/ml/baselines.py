"""Reference forecasts the LSTM has to beat, on exactly the windows it is scored on.

Every function takes :class:`SequenceTensors` plus window end indices (usually
``tensors.ends["test"]``) and returns real-unit forecasts shaped like ``y``:
``(n, n_horizons, n_targets)`` float32, NaN where a baseline has nothing to say.

* persistence: the last observed target value in the input window (the value at ``t`` when
  the target is one of the features, which the window validity rule then guarantees).
* seasonal naive: the value one period (24 h) before each target hour, ``t + h - 24k`` with
  the smallest ``k`` that puts that hour at or before ``t``, i.e. ``k = ceil(h / 24)``. For
  ``h <= 24`` that is "same hour yesterday"; for ``h > 24`` the latest observed same hour of
  day. The source hour must be the same location on a contiguous stretch, else NaN.
* climatology: training-period mean per (location, hour of day of the target hour, UTC),
  falling back to the all-location mean for that hour, then the overall training mean.
* Ridge: a linear model on flattened windows (inputs and outputs standardised by
  scikit-learn scalers fitted with it), trained on the training split only, predicting every
  horizon x target at once (a strong, cheap "is the LSTM worth it?").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airquality_assets.transforms.windowing import (
    HOUR,
    SequenceTensors,
    batch_windows,
    windows,
)

__all__ = [
    "RidgeForecaster",
    "baseline_forecasts",
    "climatology_forecast",
    "climatology_table",
    "fit_ridge",
    "persistence_forecast",
    "seasonal_naive_forecast",
]


def _ends(ends: np.ndarray | Sequence[int]) -> np.ndarray:
    return np.asarray(ends, dtype=np.int64)


def persistence_forecast(tensors: SequenceTensors, ends: np.ndarray | Sequence[int]) -> np.ndarray:
    """Repeat the last observed target value of the input window for every horizon."""
    ends = _ends(ends)
    targets = tensors.targets
    n, n_targets = targets.shape
    rows = np.where(np.isfinite(targets), np.arange(n)[:, None], -1)
    np.maximum.accumulate(rows, axis=0, out=rows)  # index of last finite value at/before i
    last = rows[ends]
    inside = last >= (ends - tensors.lookback + 1)[:, None]  # same window => same location
    values = targets[np.maximum(last, 0), np.arange(n_targets)[None, :]]
    values = np.where(inside, values, np.nan).astype(np.float32)
    return np.repeat(values[:, None, :], len(tensors.horizons), axis=1)


def seasonal_naive_forecast(
    tensors: SequenceTensors, ends: np.ndarray | Sequence[int], period: int = 24
) -> np.ndarray:
    """Value ``period`` hours (times the smallest k) before each target hour, at or before t."""
    ends = _ends(ends)
    out = np.full((ends.size, len(tensors.horizons), tensors.targets.shape[1]), np.nan, np.float32)
    for j, h in enumerate(tensors.horizons):
        k = -(-h // period)  # ceil(h / period)
        source = ends + h - period * k
        safe = np.clip(source, 0, None)
        same_stretch = (
            (source >= 0)
            & (tensors.location_codes[safe] == tensors.location_codes[ends])
            & (tensors.times[ends] - tensors.times[safe] == (ends - source) * HOUR)
        )
        out[same_stretch, j, :] = tensors.targets[source[same_stretch]]
    return out


def climatology_table(tensors: SequenceTensors) -> np.ndarray:
    """Training-period mean target per (location, UTC hour of day): (locations, 24, targets).

    Only rows before the train cut are used, so the table is identical whatever the
    validation/test data hold.
    """
    train_stop = tensors.split_bounds["train"][1]
    rows = tensors.times < train_stop
    values = tensors.targets[rows].astype(np.float64)
    hours = (tensors.times[rows] // HOUR) % 24
    codes = tensors.location_codes[rows]
    n_loc, n_targets = len(tensors.locations), tensors.targets.shape[1]
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    cell = codes.astype(np.int64) * 24 + hours
    sums = np.zeros((n_loc * 24, n_targets))
    counts = np.zeros((n_loc * 24, n_targets))
    np.add.at(sums, cell, filled)
    np.add.at(counts, cell, finite)
    sums, counts = sums.reshape(n_loc, 24, n_targets), counts.reshape(n_loc, 24, n_targets)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = sums / counts
        pooled = sums.sum(axis=0) / counts.sum(axis=0)  # (24, targets)
        overall = sums.sum(axis=(0, 1)) / counts.sum(axis=(0, 1))  # (targets,)
    pooled = np.where(np.isfinite(pooled), pooled, overall)
    table = np.where(np.isfinite(table), table, pooled[None])
    return table.astype(np.float32)


def climatology_forecast(
    tensors: SequenceTensors,
    ends: np.ndarray | Sequence[int],
    table: np.ndarray | None = None,
) -> np.ndarray:
    """Training mean for the target hour's hour of day (pass ``table`` to reuse it)."""
    ends = _ends(ends)
    table = climatology_table(tensors) if table is None else table
    horizons = np.asarray(tensors.horizons, dtype=np.int64)
    target_hours = ((tensors.times[ends][:, None] + horizons[None, :] * HOUR) // HOUR) % 24
    codes = tensors.location_codes[ends][:, None]
    return table[codes, target_hours]


@dataclass(eq=False)
class RidgeForecaster:
    """scikit-learn Ridge on flattened windows, in real units in and out."""

    model: Any  # TransformedTargetRegressor(Pipeline(StandardScaler, Ridge), StandardScaler)
    alpha: float
    n_train_windows: int

    def predict(self, tensors: SequenceTensors, ends: np.ndarray | Sequence[int]) -> np.ndarray:
        """Forecasts (n, n_horizons, n_targets) in real units for the given window ends."""
        ends = _ends(ends)
        n_h, n_t = len(tensors.horizons), tensors.targets.shape[1]
        if ends.size == 0:
            return np.empty((0, n_h, n_t), dtype=np.float32)
        x, _ = batch_windows(tensors, ends)
        forecast = self.model.predict(x.reshape(len(x), -1)).reshape(len(x), n_h, n_t)
        return forecast.astype(np.float32)


def fit_ridge(tensors: SequenceTensors, alpha: float = 1.0) -> RidgeForecaster:
    """Fit Ridge on the training windows only; the scalers see training windows only too."""
    from scipy.linalg import LinAlgWarning
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = windows(tensors, "train")
    model = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), Ridge(alpha=alpha)),
        transformer=StandardScaler(),
    )
    with warnings.catch_warnings():
        # Hundreds of strongly correlated lag features give X'X + alpha*I an rcond near 1e-7
        # on the bundled data: still ~9 exact digits in float64, so scipy's notice is noise.
        warnings.filterwarnings("ignore", category=LinAlgWarning)
        model.fit(x.reshape(len(x), -1), y.reshape(len(y), -1))
    return RidgeForecaster(model=model, alpha=float(alpha), n_train_windows=len(x))


def baseline_forecasts(
    tensors: SequenceTensors,
    ends: np.ndarray | Sequence[int],
    ridge: RidgeForecaster | None = None,
    ridge_alpha: float | None = 1.0,
) -> dict[str, np.ndarray]:
    """All baselines for ``ends``, keyed by model name (Ridge fitted here unless given).

    ``ridge_alpha=None`` (and no ``ridge``) skips Ridge, e.g. where fitting is too costly.
    """
    forecasts = {
        "persistence": persistence_forecast(tensors, ends),
        "seasonal_naive": seasonal_naive_forecast(tensors, ends),
        "climatology": climatology_forecast(tensors, ends),
    }
    if ridge is None and ridge_alpha is not None:
        ridge = fit_ridge(tensors, alpha=ridge_alpha)
    if ridge is not None:
        forecasts["ridge"] = ridge.predict(tensors, ends)
    return forecasts
