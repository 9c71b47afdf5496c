"""The LSTM(s) and LightGBM's per-horizon boosters behind one forward function.

Why: on the fixed split LightGBM with the forecast is better than the tuned LSTM at short
leads and worse at long ones, and their mean beats both; per-horizon weights fitted on the
validation windows let each horizon lean on whichever is better there. The ensemble reads
exactly what the network reads, the observed window ``x (batch, lookback, features)`` and
the forecast block ``future (batch, H, future features)``, in raw units, so the service,
the loop and the evaluation call it through the same ``forward(x[, future])`` as a plain
LSTM (:func:`airquality_assets.ml.forward.jit_forward` dispatches here).

The boosters' features are computed from those arrays (:func:`array_features`), not from
the tensors' timeline, so what training fits on is what a request can be turned into. They
mirror :func:`airquality_assets.ml.baselines.window_features` (every target lag, changes,
rolling means and maxima, weather lags) except the calendar: the window carries its hour and
weekday encodings but no month, so the month is left out.

Thread safety: each booster is saved truncated to its best iteration and predicts with all
of it and one thread, so concurrent calls pass identical settings to LightGBM's predictor
(its C API takes a shared lock for prediction); a test runs concurrent calls against serial
ones.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from airquality_assets.ml.baselines import (
    LIGHTGBM_EARLY_STOPPING,
    LIGHTGBM_PARAMS,
    LIGHTGBM_ROUNDS,
    MIN_LEAF_FLOOR,
    MIN_LEAF_SHARE,
    ROLLING_MAXIMA,
    ROLLING_MEANS,
    WEATHER_LAGS,
)
from airquality_assets.transforms.features import CALENDAR_FEATURES

ENSEMBLE_FILE = "ensemble.json"
BOOSTER_DIR = "lightgbm"

__all__ = [
    "ENSEMBLE_FILE",
    "EnsembleModel",
    "array_features",
    "ensemble_forward",
    "fit_boosters",
    "fit_ensemble",
    "fit_weights",
    "is_ensemble_package",
    "load_ensemble",
    "save_ensemble",
    "with_members",
]


@dataclass(eq=False)
class EnsembleModel:
    """LSTM member(s) averaged, then ``w * lstm + (1 - w) * lightgbm`` per (horizon, target)."""

    members: list[Any]  # Keras models with identical inputs and outputs
    boosters: dict[tuple[int, int], Any]  # (target index, horizon) -> lightgbm.Booster
    weights: np.ndarray  # (n_horizons, n_targets): the LSTMs' share, fitted on validation
    feature_names: list[str]
    future_names: list[str]
    target_names: list[str]
    horizons: list[int]
    extra: dict[str, Any] = field(default_factory=dict)  # validation RMSEs, booster sizes

    @property
    def inputs(self) -> Any:
        """The members' inputs: what a caller must pass (read by the predictor's checks)."""
        return self.members[0].inputs

    def lightgbm(self, *arrays: np.ndarray) -> np.ndarray:
        """The boosters' forecasts (n, n_horizons, n_targets), real units, float32."""
        x = np.asarray(arrays[0], dtype=np.float32)
        future = np.asarray(arrays[1], dtype=np.float32) if len(arrays) > 1 else None
        per_h = array_features(x, future, self.feature_names, self.future_names,
                               self.target_names, self.horizons)  # fmt: skip
        last = _last_targets(x, self.feature_names, self.target_names)
        out = np.empty((len(x), len(self.horizons), len(self.target_names)), np.float32)
        for j, h in enumerate(self.horizons):
            for k in range(len(self.target_names)):
                change = self.boosters[(k, int(h))].predict(per_h[j], num_threads=1)
                out[:, j, k] = last[:, k] + change
        return out


def _target_columns(feature_names: Sequence[str], target_names: Sequence[str]) -> list[int]:
    missing = [t for t in target_names if t not in feature_names]
    if missing:
        raise ValueError(f"the ensemble needs its targets among the features; missing {missing}")
    return [list(feature_names).index(t) for t in target_names]


def _last_targets(x: np.ndarray, feature_names, target_names) -> np.ndarray:
    return x[:, -1, _target_columns(feature_names, target_names)]


def array_features(
    x: np.ndarray,
    future: np.ndarray | None,
    feature_names: Sequence[str],
    future_names: Sequence[str],
    target_names: Sequence[str],
    horizons: Sequence[int],
) -> list[np.ndarray]:
    """Per horizon, one float32 row per window: the window's summary (target lags, 1 h and
    3 h changes, rolling means and maxima; weather at :data:`WEATHER_LAGS`; the last hour's
    calendar encodings) plus, when there is a forecast block, the target hour's forecast
    (its calendar included), each weather variable's forecast mean over hours 1..h and its
    forecast change from the last observation."""
    n, lookback, _ = x.shape
    feature_names, future_names = list(feature_names), list(future_names)
    columns: list[np.ndarray] = []
    for c in _target_columns(feature_names, target_names):
        history = x[:, ::-1, c]  # lag 0 first
        columns.extend(history.T)
        columns.extend(history[:, 0] - history[:, s] for s in (1, 3) if s < lookback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN stretch is NaN
            for s in sorted({min(s, lookback) for s in ROLLING_MEANS}):
                columns.append(np.nanmean(history[:, :s], axis=1))
            for s in sorted({min(s, lookback) for s in ROLLING_MAXIMA}):
                columns.append(np.nanmax(history[:, :s], axis=1))
    lags = sorted({min(lag, lookback - 1) for lag in WEATHER_LAGS})
    for j, name in enumerate(feature_names):
        if name in target_names:
            continue
        if name in CALENDAR_FEATURES:
            columns.append(x[:, -1, j])
            continue
        columns.extend(x[:, lookback - 1 - lag, j] for lag in lags)
    base = np.column_stack(columns).astype(np.float32) if columns else np.empty((n, 0), np.float32)
    if future is None:
        return [base for _ in horizons]
    weather = [
        (j, feature_names.index(name) if name in feature_names else None)
        for j, name in enumerate(future_names)
        if name not in CALENDAR_FEATURES
    ]
    cols = [j for j, _ in weather]
    out = []
    for h in horizons:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_to_h = np.nanmean(future[:, :h, cols], axis=1)
        change = [future[:, h - 1, j] - x[:, -1, i] for j, i in weather if i is not None]
        parts = [base, future[:, h - 1, :], mean_to_h, *(c[:, None] for c in change)]
        out.append(np.concatenate(parts, axis=1).astype(np.float32))
    return out


def fit_boosters(
    inputs_train: Sequence[np.ndarray],
    y_train: np.ndarray,
    inputs_val: Sequence[np.ndarray],
    y_val: np.ndarray,
    feature_names: Sequence[str],
    future_names: Sequence[str],
    target_names: Sequence[str],
    horizons: Sequence[int],
    params: dict[str, Any] | None = None,
) -> dict[tuple[int, int], Any]:
    """One booster per (target, horizon) predicting the change from the last observed
    value, fitted on the training windows and early-stopped on the validation windows, then
    truncated to its best iteration (so prediction takes no iteration argument)."""
    import lightgbm as lgb

    leaf = min(LIGHTGBM_PARAMS["min_data_in_leaf"],
               max(MIN_LEAF_FLOOR, int(MIN_LEAF_SHARE * len(y_train))))  # fmt: skip
    params = {**LIGHTGBM_PARAMS, "min_data_in_leaf": leaf, **(params or {})}
    data = {}
    for split, inputs, y in (("train", inputs_train, y_train), ("val", inputs_val, y_val)):
        x = np.asarray(inputs[0], np.float32)
        future = np.asarray(inputs[1], np.float32) if len(inputs) > 1 else None
        per_h = array_features(x, future, feature_names, future_names, target_names, horizons)
        data[split] = (per_h, y - _last_targets(x, feature_names, target_names)[:, None, :])
    boosters = {}
    for j, h in enumerate(horizons):
        for k in range(len(target_names)):
            tx, ty = data["train"][0][j], data["train"][1][:, j, k]
            vx, vy = data["val"][0][j], data["val"][1][:, j, k]
            keep, keep_v = np.isfinite(ty), np.isfinite(vy)
            train = lgb.Dataset(tx[keep], ty[keep])
            valid = lgb.Dataset(vx[keep_v], vy[keep_v], reference=train)
            booster = lgb.train(params, train, num_boost_round=LIGHTGBM_ROUNDS, valid_sets=[valid],
                                callbacks=[lgb.early_stopping(LIGHTGBM_EARLY_STOPPING,
                                                              verbose=False)])  # fmt: skip
            best = int(booster.best_iteration or booster.current_iteration())
            text = booster.model_to_string(num_iteration=best)
            boosters[(k, int(h))] = lgb.Booster(model_str=text)
    return boosters


def fit_weights(lstm: np.ndarray, lightgbm: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per (horizon, target), the LSTM's share ``w`` in [0, 1] minimising the squared error
    of ``w * lstm + (1 - w) * lightgbm`` against ``y`` (closed form; windows with a missing
    value left out). Meant for validation windows only: the caller passes nothing else."""
    d = lstm.astype(np.float64) - lightgbm
    r = y.astype(np.float64) - lightgbm
    ok = np.isfinite(d) & np.isfinite(r)
    d, r = np.where(ok, d, 0.0), np.where(ok, r, 0.0)
    denom = (d * d).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(denom > 0, (d * r).sum(axis=0) / denom, 0.5)
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def fit_ensemble(
    members: Sequence[Any],
    inputs_train: Sequence[np.ndarray],
    y_train: np.ndarray,
    inputs_val: Sequence[np.ndarray],
    y_val: np.ndarray,
    feature_names: Sequence[str],
    future_names: Sequence[str],
    target_names: Sequence[str],
    horizons: Sequence[int],
) -> EnsembleModel:
    """Boosters on the training windows (early-stopped on validation), then per-horizon
    weights on the validation windows. No test window is an argument, so none can leak."""
    boosters = fit_boosters(inputs_train, y_train, inputs_val, y_val, feature_names,
                            future_names, target_names, horizons)  # fmt: skip
    ensemble = EnsembleModel(
        members=list(members), boosters=boosters,
        weights=np.full((len(horizons), len(target_names)), 0.5, np.float32),
        feature_names=list(feature_names), future_names=list(future_names),
        target_names=list(target_names), horizons=[int(h) for h in horizons],
    )  # fmt: skip
    lstm_val = _members_forward(ensemble)(*inputs_val)
    lgb_val = ensemble.lightgbm(*inputs_val)
    ensemble.weights = fit_weights(lstm_val, lgb_val, y_val)
    blended = _blend(ensemble.weights, lstm_val, lgb_val)
    ensemble.extra = {
        "weights_fitted_on": "validation",
        "validation_rmse": {
            name: float(np.sqrt(np.nanmean((pred - y_val) ** 2)))
            for name, pred in (("lstm", lstm_val), ("lightgbm", lgb_val), ("ensemble", blended))
        },
    }
    return ensemble


def with_members(
    ensemble: EnsembleModel,
    members: Sequence[Any],
    inputs_val: Sequence[np.ndarray],
    y_val: np.ndarray,
) -> EnsembleModel:
    """The same boosters with other LSTM members (e.g. a seed ensemble), weights refitted on
    the validation windows."""
    other = EnsembleModel(
        members=list(members), boosters=ensemble.boosters, weights=ensemble.weights.copy(),
        feature_names=ensemble.feature_names, future_names=ensemble.future_names,
        target_names=ensemble.target_names, horizons=ensemble.horizons,
    )  # fmt: skip
    lstm_val, lgb_val = _members_forward(other)(*inputs_val), other.lightgbm(*inputs_val)
    other.weights = fit_weights(lstm_val, lgb_val, y_val)
    other.extra = {"weights_fitted_on": "validation"}
    return other


def _blend(weights: np.ndarray, lstm: np.ndarray, lightgbm: np.ndarray) -> np.ndarray:
    return (weights[None] * lstm + (1.0 - weights[None]) * lightgbm).astype(np.float32)


def _members_forward(ensemble: EnsembleModel) -> Callable[..., np.ndarray]:
    from airquality_assets.ml.forward import jit_forward

    forwards = [jit_forward(m) for m in ensemble.members]

    def forward(*arrays: np.ndarray) -> np.ndarray:
        return np.mean([f(*arrays) for f in forwards], axis=0).astype(np.float32)

    return forward


def ensemble_forward(ensemble: EnsembleModel) -> Callable[..., np.ndarray]:
    """``forward(x[, future])`` of the ensemble: the members' jitted pure functions and the
    boosters' read-only prediction; nothing is mutated, so threads may share it."""
    members = _members_forward(ensemble)
    n_inputs = len(ensemble.inputs)
    weights = ensemble.weights.copy()

    def forward(*arrays: np.ndarray) -> np.ndarray:
        if len(arrays) != n_inputs:
            raise ValueError(f"the model reads {n_inputs} input(s), got {len(arrays)}")
        return _blend(weights, members(*arrays), ensemble.lightgbm(*arrays))

    forward.n_inputs = n_inputs  # type: ignore[attr-defined]
    return forward


def is_ensemble_package(directory: str | Path) -> bool:
    return (Path(directory) / ENSEMBLE_FILE).exists()


def _member_file(i: int) -> str:
    return "model.keras" if i == 0 else f"member_{i}.keras"


def save_ensemble(ensemble: EnsembleModel, directory: str | Path, members: bool = True) -> None:
    """Members as Keras files (the first as the package's ``model.keras``), boosters as
    LightGBM text models, weights and names in ``ensemble.json``. ``members=False`` writes
    the rest only: on an MLflow run the member is the run's logged Keras model."""
    directory = Path(directory)
    (directory / BOOSTER_DIR).mkdir(parents=True, exist_ok=True)
    for i, member in enumerate(ensemble.members if members else []):
        member.save(directory / _member_file(i))
    files = {}
    for (k, h), booster in sorted(ensemble.boosters.items()):
        name = f"{BOOSTER_DIR}/target{k}_h{h}.txt"
        booster.save_model(directory / name)
        files[f"{k},{h}"] = name
    spec = {
        "members": [_member_file(i) for i in range(len(ensemble.members))],
        "boosters": files,
        "weights": ensemble.weights.tolist(),
        "feature_names": ensemble.feature_names,
        "future_names": ensemble.future_names,
        "target_names": ensemble.target_names,
        "horizons": ensemble.horizons,
        "extra": ensemble.extra,
    }
    (directory / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")


def load_ensemble(directory: str | Path, members: Sequence[Any] | None = None) -> EnsembleModel:
    """An ensemble from ``directory``; ``members`` (already loaded) replace its Keras files."""
    import keras
    import lightgbm as lgb

    directory = Path(directory)
    spec = json.loads((directory / ENSEMBLE_FILE).read_text(encoding="utf-8"))
    if members is None:
        members = [keras.saving.load_model(directory / f) for f in spec["members"]]
    members = list(members)
    boosters = {}
    for key, name in spec["boosters"].items():
        k, h = (int(v) for v in key.split(","))
        boosters[(k, h)] = lgb.Booster(model_file=str(directory / name))
    return EnsembleModel(
        members=members, boosters=boosters, weights=np.asarray(spec["weights"], np.float32),
        feature_names=spec["feature_names"], future_names=spec["future_names"],
        target_names=spec["target_names"], horizons=spec["horizons"], extra=spec["extra"],
    )  # fmt: skip
