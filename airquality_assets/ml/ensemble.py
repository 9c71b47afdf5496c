"""The LSTM(s) and LightGBM's per-horizon boosters behind one forward function.

Why: on the fixed split LightGBM with the forecast is better than the tuned LSTM at short
leads and worse at long ones, and their mean beats both; per-horizon weights fitted on the
validation windows let each horizon lean on whichever is better there. A third member, the
LSTM corrected by boosters fitted to its residuals (its forecast is one of their features),
takes the part of what the LSTM misses that trees find; on the fixed split it moved the blend
from 47.11 to 46.8 mean RMSE (docs/results.md). The ensemble reads
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

#: The ensemble's boosters learn slower than the baselines' (0.25, tuned for speed): at 0.1
#: they fit in about 30 s for 24 horizons on the fixed split and their forecasts are 1.8 %
#: better (49.7 -> 48.8 mean RMSE), which the blend keeps (docs/results.md).
ENSEMBLE_BOOSTER_PARAMS: dict[str, Any] = {**LIGHTGBM_PARAMS, "learning_rate": 0.1}
#: The blended members, in the order of the weights' last axis.
COMPONENTS: tuple[str, ...] = ("lstm", "lstm_residual", "lightgbm")

ENSEMBLE_FILE = "ensemble.json"
BOOSTER_DIR = "lightgbm"

__all__ = [
    "COMPONENTS",
    "ENSEMBLE_BOOSTER_PARAMS",
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
    """LSTM member(s) averaged (``lstm``); that plus its residual boosters
    (``lstm_residual``); LightGBM's direct boosters (``lightgbm``): blended per (horizon,
    target) with weights in [0, 1] that sum to 1, fitted on validation windows."""

    members: list[Any]  # Keras models with identical inputs and outputs
    boosters: dict[tuple[int, int], Any]  # (target index, horizon) -> lightgbm.Booster
    weights: np.ndarray  # (n_horizons, n_targets, len(components)), fitted on validation
    feature_names: list[str]
    future_names: list[str]
    target_names: list[str]
    horizons: list[int]
    extra: dict[str, Any] = field(default_factory=dict)  # validation RMSEs, booster sizes
    #: (target index, horizon) -> booster of ``y - lstm`` on the window's features + ``lstm``
    residual_boosters: dict[tuple[int, int], Any] = field(default_factory=dict)
    components: list[str] = field(default_factory=lambda: ["lstm", "lightgbm"])

    def share(self, component: str) -> np.ndarray:
        """One component's weight per (horizon, target); 0 where it is not a member."""
        if component not in self.components:
            return np.zeros(self.weights.shape[:2], np.float32)
        return self.weights[..., self.components.index(component)]

    @property
    def inputs(self) -> Any:
        """The members' inputs: what a caller must pass (read by the predictor's checks)."""
        return self.members[0].inputs

    def lightgbm(self, *arrays: np.ndarray) -> np.ndarray:
        """The boosters' forecasts (n, n_horizons, n_targets), real units, float32."""
        x, per_h = self._features(arrays)
        return self._direct(x, per_h)

    def residual(self, lstm: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
        """``lstm`` (n, n_horizons, n_targets) corrected by the residual boosters."""
        return self._corrected(lstm, self._features(arrays)[1])

    def parts(self, *arrays: np.ndarray, lstm: np.ndarray | None = None) -> np.ndarray:
        """Every component's forecast, stacked on a last axis in :attr:`components` order;
        ``lstm``: the members' forecast when the caller has it. The boosters' features are
        computed once for both booster families."""
        if lstm is None:
            lstm = _members_forward(self)(*arrays)
        x, per_h = self._features(arrays)
        by_name = {"lstm": lstm, "lightgbm": self._direct(x, per_h)}
        if "lstm_residual" in self.components:
            by_name["lstm_residual"] = self._corrected(lstm, per_h)
        return np.stack([by_name[c] for c in self.components], axis=-1)

    def _features(self, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        x = np.asarray(arrays[0], dtype=np.float32)
        future = np.asarray(arrays[1], dtype=np.float32) if len(arrays) > 1 else None
        per_h = array_features(x, future, self.feature_names, self.future_names,
                               self.target_names, self.horizons)  # fmt: skip
        return x, per_h

    def _direct(self, x: np.ndarray, per_h: list[np.ndarray]) -> np.ndarray:
        last = _last_targets(x, self.feature_names, self.target_names)
        out = np.empty((len(x), len(self.horizons), len(self.target_names)), np.float32)
        for j, h in enumerate(self.horizons):
            for k in range(len(self.target_names)):
                change = self.boosters[(k, int(h))].predict(per_h[j], num_threads=1)
                out[:, j, k] = last[:, k] + change
        return out

    def _corrected(self, lstm: np.ndarray, per_h: list[np.ndarray]) -> np.ndarray:
        out = np.asarray(lstm, np.float32).copy()
        for j, h in enumerate(self.horizons):
            for k in range(len(self.target_names)):
                rows = _with_forecast(per_h[j], lstm[:, j, k])
                out[:, j, k] += self.residual_boosters[(k, int(h))].predict(rows, num_threads=1)
        return out


def _with_forecast(rows: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    return np.concatenate([rows, np.asarray(forecast, np.float32)[:, None]], axis=1)


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
    forecasts: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[tuple[int, int], Any]:
    """One booster per (target, horizon), fitted on the training windows, early-stopped on
    the validation windows, then truncated to its best iteration (so prediction takes no
    iteration argument). Without ``forecasts`` it predicts the change from the last observed
    value; with ``forecasts = (train, validation)`` (a model's forecasts of those windows)
    it predicts that model's residual, reading its forecast as one more feature."""
    import lightgbm as lgb

    leaf = min(ENSEMBLE_BOOSTER_PARAMS["min_data_in_leaf"],
               max(MIN_LEAF_FLOOR, int(MIN_LEAF_SHARE * len(y_train))))  # fmt: skip
    params = {**ENSEMBLE_BOOSTER_PARAMS, "min_data_in_leaf": leaf, **(params or {})}
    data = {}
    for i, (split, inputs, y) in enumerate(
        (("train", inputs_train, y_train), ("val", inputs_val, y_val))
    ):
        x = np.asarray(inputs[0], np.float32)
        future = np.asarray(inputs[1], np.float32) if len(inputs) > 1 else None
        per_h = array_features(x, future, feature_names, future_names, target_names, horizons)
        if forecasts is None:
            last = _last_targets(x, feature_names, target_names)[:, None, :]
            data[split] = (per_h, None, y - last)
        else:
            base = np.asarray(forecasts[i], np.float32)
            data[split] = (per_h, base, y - base)
    boosters = {}
    for j, h in enumerate(horizons):
        for k in range(len(target_names)):
            (tx, tf, ty), (vx, vf, vy) = (
                (rows[j], None if f is None else f[:, j, k], y[:, j, k])
                for rows, f, y in (data["train"], data["val"])
            )
            if tf is not None:
                tx, vx = _with_forecast(tx, tf), _with_forecast(vx, vf)
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


def fit_weights(parts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per (horizon, target), weights in [0, 1] summing to 1 that minimise the squared error
    of ``parts @ w`` against ``y``; ``parts`` is ``(n, horizons, targets, components)``.
    Windows with a missing value are left out. Meant for validation windows only: the caller
    passes nothing else. A small quadratic programme per cell (SLSQP on the normal
    equations), deterministic."""
    from scipy.optimize import minimize

    n_h, n_t, n_c = parts.shape[1:]
    weights = np.full((n_h, n_t, n_c), 1.0 / n_c)
    for j in range(n_h):
        for k in range(n_t):
            a, b = parts[:, j, k, :].astype(np.float64), y[:, j, k].astype(np.float64)
            ok = np.isfinite(a).all(axis=1) & np.isfinite(b)
            if ok.sum() < n_c:
                continue  # too few windows to fit: equal shares
            a, b = a[ok], b[ok]
            scale = max(float(np.mean(b * b)), 1e-12)
            q, c = a.T @ a / len(b) / scale, a.T @ b / len(b) / scale
            result = minimize(
                lambda w, q=q, c=c: w @ q @ w - 2 * c @ w,
                weights[j, k],
                jac=lambda w, q=q, c=c: 2 * q @ w - 2 * c,
                method="SLSQP",
                bounds=[(0.0, 1.0)] * n_c,
                constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                options={"ftol": 1e-12, "maxiter": 200},
            )
            w = np.clip(result.x, 0.0, 1.0)
            weights[j, k] = w / w.sum()
    return weights.astype(np.float32)


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
    """Direct boosters, then residual boosters on the members' forecasts (both fitted on the
    training windows, early-stopped on validation), then per-horizon weights on the
    validation windows. No test window is an argument, so none can leak."""
    names = (feature_names, future_names, target_names, horizons)
    boosters = fit_boosters(inputs_train, y_train, inputs_val, y_val, *names)
    ensemble = EnsembleModel(
        members=list(members), boosters=boosters,
        weights=np.zeros((len(horizons), len(target_names), len(COMPONENTS)), np.float32),
        feature_names=list(feature_names), future_names=list(future_names),
        target_names=list(target_names), horizons=[int(h) for h in horizons],
        components=list(COMPONENTS),
    )  # fmt: skip
    members_forward = _members_forward(ensemble)
    lstm_train, lstm_val = members_forward(*inputs_train), members_forward(*inputs_val)
    ensemble.residual_boosters = fit_boosters(
        inputs_train, y_train, inputs_val, y_val, *names, forecasts=(lstm_train, lstm_val)
    )
    parts = ensemble.parts(*inputs_val, lstm=lstm_val)
    ensemble.weights = fit_weights(parts, y_val)
    blended = _blend(ensemble.weights, parts)
    ensemble.extra = {
        "weights_fitted_on": "validation",
        "validation_rmse": {
            name: float(np.sqrt(np.nanmean((pred - y_val) ** 2)))
            for name, pred in (
                *((c, parts[..., i]) for i, c in enumerate(ensemble.components)),
                ("ensemble", blended),
            )
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
    the validation windows (the residual boosters then read the members' mean)."""
    other = EnsembleModel(
        members=list(members), boosters=ensemble.boosters, weights=ensemble.weights.copy(),
        feature_names=ensemble.feature_names, future_names=ensemble.future_names,
        target_names=ensemble.target_names, horizons=ensemble.horizons,
        residual_boosters=ensemble.residual_boosters, components=list(ensemble.components),
    )  # fmt: skip
    other.weights = fit_weights(other.parts(*inputs_val), y_val)
    other.extra = {"weights_fitted_on": "validation"}
    return other


def _blend(weights: np.ndarray, parts: np.ndarray) -> np.ndarray:
    return (parts * weights[None]).sum(axis=-1).astype(np.float32)


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
        return _blend(weights, ensemble.parts(*arrays, lstm=members(*arrays)))

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
    files: dict[str, dict[str, str]] = {"boosters": {}, "residual_boosters": {}}
    for kind, prefix in (("boosters", "target"), ("residual_boosters", "residual_target")):
        for (k, h), booster in sorted(getattr(ensemble, kind).items()):
            name = f"{BOOSTER_DIR}/{prefix}{k}_h{h}.txt"
            booster.save_model(directory / name)
            files[kind][f"{k},{h}"] = name
    spec = {
        "members": [_member_file(i) for i in range(len(ensemble.members))],
        **files,
        "components": list(ensemble.components),
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
    loaded: dict[str, dict[tuple[int, int], Any]] = {}
    for kind in ("boosters", "residual_boosters"):
        loaded[kind] = {}
        for key, name in spec.get(kind, {}).items():
            k, h = (int(v) for v in key.split(","))
            loaded[kind][(k, h)] = lgb.Booster(model_file=str(directory / name))
    weights = np.asarray(spec["weights"], np.float32)
    components = spec.get("components", ["lstm", "lightgbm"])
    if weights.ndim == 2:  # written before the residual member: the LSTM's share only
        weights = np.stack([weights, 1.0 - weights], axis=-1)
    return EnsembleModel(
        members=members, boosters=loaded["boosters"], weights=weights,
        feature_names=spec["feature_names"], future_names=spec["future_names"],
        target_names=spec["target_names"], horizons=spec["horizons"], extra=spec["extra"],
        residual_boosters=loaded["residual_boosters"], components=components,
    )  # fmt: skip
