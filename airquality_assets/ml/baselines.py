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
  horizon x target at once (a strong, cheap "is the LSTM worth it?"). When the tensors carry
  weather forecasts (``tensors.future``) the flattened forecast block of the window joins
  its inputs, so it sees what a model given forecasts sees.
* LightGBM: gradient-boosted trees, direct (one model per horizon and target), on features
  summarising each window (:func:`window_features`: lags of targets and weather, rolling
  means and maxima of the targets, calendar) plus, for horizon ``h``, the hour of the target
  and, when the tensors carry forecasts, the forecast for that hour, its mean over hours
  1..h and its change from the last observation. Each predicts the change from
  the last observed value; fitted on the training windows, early-stopped on the validation
  windows. Direct rather than one model with the horizon as a feature: each horizon's model
  sees exactly its own target hour's forecast, and the issue's measurement (LightGBM 44.1
  mean RMSE on the perfect-forecast bound) was made that way.

Ridge and LightGBM read the same inputs as the network (the past window and, when present,
the forecast block), so "the LSTM beats them" means the network earns its cost.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.transforms.features import CALENDAR_FEATURES
from airquality_assets.transforms.windowing import (
    HOUR,
    SequenceTensors,
    batch_windows,
)

__all__ = [
    "BASELINE_LABELS",
    "LIGHTGBM_PARAMS",
    "LightGBMForecaster",
    "RidgeForecaster",
    "baseline_forecasts",
    "climatology_forecast",
    "climatology_table",
    "fit_lightgbm",
    "fit_ridge",
    "persistence_forecast",
    "seasonal_naive_forecast",
    "window_features",
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
        forecast = self.model.predict(_ridge_inputs(tensors, ends)).reshape(len(ends), n_h, n_t)
        return forecast.astype(np.float32)


def _ridge_inputs(tensors: SequenceTensors, ends: np.ndarray) -> np.ndarray:
    """Flattened windows, and the flattened forecast block of each window when there is one."""
    x, _ = batch_windows(tensors, ends)
    flat = x.reshape(len(x), -1)
    if tensors.future is None:
        return flat
    return np.concatenate([flat, tensors.future[ends].reshape(len(ends), -1)], axis=1)


def fit_ridge(tensors: SequenceTensors, alpha: float = 1.0) -> RidgeForecaster:
    """Fit Ridge on the training windows only; the scalers see training windows only too."""
    from scipy.linalg import LinAlgWarning
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ends = tensors.ends["train"]
    _, y = batch_windows(tensors, ends)
    steps: list[Any] = [StandardScaler(), Ridge(alpha=alpha)]
    if tensors.future is not None:
        # A missing forecast hour becomes its training mean (0 once scaled): "no news".
        steps.insert(0, SimpleImputer(strategy="mean", keep_empty_features=True))
    model = TransformedTargetRegressor(
        regressor=make_pipeline(*steps), transformer=StandardScaler()
    )
    with warnings.catch_warnings():
        # Hundreds of strongly correlated lag features give X'X + alpha*I an rcond near 1e-7
        # on the bundled data: still ~9 exact digits in float64, so scipy's notice is noise.
        warnings.filterwarnings("ignore", category=LinAlgWarning)
        model.fit(_ridge_inputs(tensors, ends), y.reshape(len(y), -1))
    return RidgeForecaster(model=model, alpha=float(alpha), n_train_windows=len(ends))


#: Lags (hours before the window's last hour) of the weather inputs; the targets get every lag.
WEATHER_LAGS: tuple[int, ...] = (0, 1, 2, 3, 6, 12, 23)
#: Trailing windows (hours, ending at the window's last hour) of the targets' rolling stats.
ROLLING_MEANS: tuple[int, ...] = (3, 6, 12, 24)
ROLLING_MAXIMA: tuple[int, ...] = (6, 24)
#: Small, regularised trees, a fast learning rate and half the rows per tree: about a second
#: of one core per horizon on the demo's ~36,000 training windows (measured in
#: docs/decisions.md; LightGBM's defaults took twice as long for the same test RMSE within
#: noise). One thread: the model half's steps run side by side on a shared 2-core machine,
#: where LightGBM's OpenMP threads spin-waiting for a busy core made a fit 15x slower.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "objective": "l2",
    "learning_rate": 0.25,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "max_bin": 63,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.5,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "verbose": -1,
    "seed": 0,
}
LIGHTGBM_ROUNDS = 500
LIGHTGBM_EARLY_STOPPING = 20
#: A leaf needs at least this share of the training windows (and ``min_data_in_leaf`` at
#: most): on a few weeks of data 200 windows a leaf would leave a tree one split.
MIN_LEAF_SHARE = 0.01
MIN_LEAF_FLOOR = 20


def window_features(
    tensors: SequenceTensors, ends: np.ndarray | Sequence[int]
) -> tuple[np.ndarray, list[str]]:
    """One row per window: what a tree model can use of it, without the horizon.

    Every lag of each target within the look-back, the targets' 1 h and 3 h changes, their
    rolling means and maxima over the last few hours, the weather inputs at a few lags
    (:data:`WEATHER_LAGS`), and the calendar of the window's last hour (hour, day of week,
    month, UTC) plus the location (when there are several). Look-backs shorter than a lag
    or a rolling window clip it. float32, NaN where a value is missing (trees handle it).
    """
    ends = _ends(ends)
    lookback = tensors.lookback
    columns: list[np.ndarray] = []
    names: list[str] = []
    lags = np.arange(lookback)
    for k, target in enumerate(tensors.target_names):
        history = tensors.targets[ends[:, None] - lags[None, :], k]  # (n, lookback), lag 0 first
        columns.extend(history.T)
        names.extend(f"{target}_lag{lag}" for lag in lags)
        for span in (1, 3):
            if span < lookback:
                columns.append(history[:, 0] - history[:, span])
                names.append(f"{target}_change{span}h")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN stretch is NaN
            for span in sorted({min(s, lookback) for s in ROLLING_MEANS}):
                columns.append(np.nanmean(history[:, :span], axis=1))
                names.append(f"{target}_mean{span}h")
            for span in sorted({min(s, lookback) for s in ROLLING_MAXIMA}):
                columns.append(np.nanmax(history[:, :span], axis=1))
                names.append(f"{target}_max{span}h")
    skip = set(tensors.target_names) | set(CALENDAR_FEATURES)
    weather_lags = sorted({min(lag, lookback - 1) for lag in WEATHER_LAGS})
    for j, feature in enumerate(tensors.feature_names):
        if feature in skip:
            continue
        for lag in weather_lags:
            columns.append(tensors.features[ends - lag, j])
            names.append(f"{feature}_lag{lag}")
    stamps = pd.DatetimeIndex(pd.to_datetime(tensors.times[ends], unit="s", utc=True))
    columns.extend([stamps.hour.to_numpy(), stamps.dayofweek.to_numpy(), stamps.month.to_numpy()])
    names.extend(["hour", "day_of_week", "month"])
    if len(tensors.locations) > 1:
        columns.append(tensors.location_codes[ends])
        names.append("location")
    if not columns:
        return np.empty((ends.size, 0), dtype=np.float32), names
    return np.column_stack(columns).astype(np.float32), names


def _forecast_weather(tensors: SequenceTensors) -> list[tuple[int, int | None]]:
    """Per weather variable of the forecast block (calendar left out): its column there and,
    when it is also observed, its column among the features."""
    return [
        (j, tensors.feature_names.index(n) if n in tensors.feature_names else None)
        for j, n in enumerate(tensors.future_names)
        if n not in CALENDAR_FEATURES
    ]


def _horizon_inputs(
    tensors: SequenceTensors, ends: np.ndarray, base: np.ndarray, h: int
) -> np.ndarray:
    """``base`` plus the target hour's hour of day and, when the tensors carry forecasts,
    the forecast for that hour, each weather variable's forecast mean over hours 1..h (the
    air the next hours bring: a day of north wind clears the smog, one hour of it does not)
    and its forecast change from the last observation."""
    target_hour = (((tensors.times[ends] // HOUR) + h) % 24).astype(np.float32)
    parts = [base, target_hour[:, None]]
    if tensors.future is not None:
        block = tensors.future[ends]  # issued at or before each window's end
        parts.append(block[:, h - 1, :])
        weather = _forecast_weather(tensors)
        columns = [j for j, _ in weather]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN stretch is NaN
            parts.append(np.nanmean(block[:, :h, columns], axis=1))
        parts.extend(
            (block[:, h - 1, j] - tensors.features[ends, i])[:, None]
            for j, i in weather
            if i is not None
        )
    return np.concatenate(parts, axis=1).astype(np.float32)


def _horizon_names(tensors: SequenceTensors, names: list[str]) -> list[str]:
    if tensors.future is None:
        return [*names, "target_hour"]
    weather = _forecast_weather(tensors)
    future = tensors.future_names
    return [
        *names,
        "target_hour",
        *(f"{n}_forecast" for n in future),
        *(f"{future[j]}_forecast_mean_to_h" for j, _ in weather),
        *(f"{future[j]}_forecast_change" for j, i in weather if i is not None),
    ]


@dataclass(eq=False)
class LightGBMForecaster:
    """One LightGBM booster per (target, horizon), each predicting the change from the last
    observed value of that target."""

    boosters: dict[tuple[int, int], Any]  # (target index, horizon) -> lightgbm.Booster
    feature_names: list[str]
    best_iterations: dict[tuple[int, int], int]
    n_train_windows: int
    fit_seconds: float

    def predict(self, tensors: SequenceTensors, ends: np.ndarray | Sequence[int]) -> np.ndarray:
        """Forecasts (n, n_horizons, n_targets) in real units; NaN where persistence is."""
        ends = _ends(ends)
        n_t = tensors.targets.shape[1]
        out = np.full((ends.size, len(tensors.horizons), n_t), np.nan, dtype=np.float32)
        if ends.size == 0:
            return out
        base, _ = window_features(tensors, ends)
        last = persistence_forecast(tensors, ends)[:, 0, :]
        for j, h in enumerate(tensors.horizons):
            x = _horizon_inputs(tensors, ends, base, int(h))
            for k in range(n_t):
                booster = self.boosters[(k, int(h))]
                change = booster.predict(x, num_iteration=self.best_iterations[(k, int(h))])
                out[:, j, k] = last[:, k] + change
        return out


def fit_lightgbm(
    tensors: SequenceTensors,
    params: dict[str, Any] | None = None,
    rounds: int = LIGHTGBM_ROUNDS,
    early_stopping: int = LIGHTGBM_EARLY_STOPPING,
) -> LightGBMForecaster:
    """Fit one booster per (target, horizon) on the training windows, stopping each on its
    validation-window loss (no test window is ever seen)."""
    import time

    import lightgbm as lgb

    started = time.perf_counter()
    n_train = int(tensors.ends["train"].size)
    leaf = min(
        LIGHTGBM_PARAMS["min_data_in_leaf"], max(MIN_LEAF_FLOOR, int(MIN_LEAF_SHARE * n_train))
    )
    params = {**LIGHTGBM_PARAMS, "min_data_in_leaf": leaf, **(params or {})}
    splits = {}
    for split in ("train", "validation"):
        ends = tensors.ends[split]
        base, names = window_features(tensors, ends)
        _, y = batch_windows(tensors, ends)
        last = persistence_forecast(tensors, ends)[:, 0, :]
        splits[split] = (ends, base, y, last)
    feature_names = _horizon_names(tensors, names)
    boosters: dict[tuple[int, int], Any] = {}
    best: dict[tuple[int, int], int] = {}
    for j, h in enumerate(tensors.horizons):
        data = {}
        for split, (ends, base, y, last) in splits.items():
            data[split] = (_horizon_inputs(tensors, ends, base, int(h)), y[:, j, :] - last)
        for k in range(tensors.targets.shape[1]):
            train_x, train_y = data["train"][0], data["train"][1][:, k]
            val_x, val_y = data["validation"][0], data["validation"][1][:, k]
            keep, keep_val = np.isfinite(train_y), np.isfinite(val_y)
            train = lgb.Dataset(train_x[keep], train_y[keep], feature_name=feature_names)
            valid = lgb.Dataset(val_x[keep_val], val_y[keep_val], reference=train)
            booster = lgb.train(
                params,
                train,
                num_boost_round=rounds,
                valid_sets=[valid],
                callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
            )
            boosters[(k, int(h))] = booster
            best[(k, int(h))] = int(booster.best_iteration or booster.current_iteration())
    return LightGBMForecaster(
        boosters=boosters,
        feature_names=feature_names,
        best_iterations=best,
        n_train_windows=int(tensors.ends["train"].size),
        fit_seconds=time.perf_counter() - started,
    )


#: How each baseline is named for people (tables, the check's text).
BASELINE_LABELS: dict[str, str] = {
    "persistence": "persistence",
    "seasonal_naive": "seasonal naive",
    "climatology": "climatology",
    "ridge": "Ridge",
    "lightgbm": "LightGBM",
}


def baseline_forecasts(
    tensors: SequenceTensors,
    ends: np.ndarray | Sequence[int],
    ridge: RidgeForecaster | None = None,
    ridge_alpha: float | None = 1.0,
    lightgbm: LightGBMForecaster | None = None,
    with_lightgbm: bool = True,
) -> dict[str, np.ndarray]:
    """All baselines for ``ends``, keyed by model name (Ridge and LightGBM fitted here
    unless given).

    ``ridge_alpha=None`` (and no ``ridge``) skips Ridge, ``with_lightgbm=False`` (and no
    ``lightgbm``) skips LightGBM, e.g. where fitting is too costly.
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
    if lightgbm is None and with_lightgbm:
        lightgbm = fit_lightgbm(tensors)
    if lightgbm is not None:
        forecasts["lightgbm"] = lightgbm.predict(tensors, ends)
    return forecasts
