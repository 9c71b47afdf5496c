"""Hand-set models with a known answer, for the MLflow registry's tests and benchmarks.

The task: the pollutant rises by exactly 1 ug/m3 per hour, so a forecast of "last value +
h" is exact and any other per-horizon delta has an exact, known RMSE. ``make_model`` sets
the delta head by hand (no training), so "worse" and "better" are exact, not statistical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.ml.drift_reference import reference_profile
from airquality_assets.ml.model import HEAD_LAYER, LSTMParams, build_lstm
from airquality_assets.ml.package import ModelMetadata

LOOKBACK, HORIZONS, FEATURES = 6, 3, 2
TARGET_STD = 4.0
PARAMS = LSTMParams(
    units=4, layers=1, dropout=0.0, learning_rate=1e-3, batch_size=8, epochs=1, patience=1
)
METADATA = ModelMetadata(
    feature_names=["pm2_5", "temp"],
    target_pollutants=["pm2_5"],
    lookback=LOOKBACK,
    horizons=[1, 2, 3],
    training_window={"start": "2020-01-01T00:00:00+00:00", "end": "2020-02-01T00:00:00+00:00"},
    reference_profile=reference_profile(
        np.random.default_rng(0).normal(size=(50, 2)), ["pm2_5", "temp"]
    ),
)


def make_window(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Test window: pm2_5 = 20 + hour index, temp noise; y = last + h exactly."""
    rng = np.random.default_rng(1)
    starts = rng.uniform(0, 50, n)
    steps = np.arange(LOOKBACK)
    level = 20 + starts[:, None] + steps[None, :]
    temp = rng.normal(10, 3, (n, LOOKBACK))
    X = np.stack([level, temp], axis=-1).astype(np.float32)
    y = (level[:, -1:] + np.arange(1, HORIZONS + 1)[None, :])[:, :, None].astype(np.float32)
    return X, y


X_TEST, Y_TEST = make_window()


def make_model(delta_ugm3_per_horizon: list[float]) -> Any:
    """A model whose forecast is exactly last value + the given per-horizon delta."""
    model = build_lstm(
        PARAMS,
        lookback=LOOKBACK,
        n_features=FEATURES,
        n_horizons=HORIZONS,
        n_targets=1,
        target_feature_index=[0],
        feature_mean=[45.0, 10.0],
        feature_std=[15.0, 3.0],
        delta_std=[TARGET_STD],
    )
    head = model.get_layer(HEAD_LAYER)
    kernel, _ = head.get_weights()
    bias = np.asarray(delta_ugm3_per_horizon, dtype=np.float32) / TARGET_STD
    head.set_weights([np.zeros_like(kernel), bias])
    return model


def score(model: Any) -> float:
    """Mean test RMSE over horizons: the gate's score, lower is better."""
    forecast = np.asarray(model.predict(X_TEST, verbose=0))
    return float(np.sqrt(((forecast - Y_TEST) ** 2).mean(axis=(0, 2))).mean())


def metrics_frame(model: Any) -> pd.DataFrame:
    forecast = np.asarray(model.predict(X_TEST, verbose=0))
    err = forecast[:, :, 0] - Y_TEST[:, :, 0]
    return pd.DataFrame(
        {
            "pollutant": "pm2_5",
            "horizon": [1, 2, 3],
            "rmse": np.sqrt((err**2).mean(axis=0)),
            "mae": np.abs(err).mean(axis=0),
        }
    )


def evaluate_champion(model_uri: str) -> float:
    """What the real pipeline does: load the champion, score it on the candidate's window."""
    import mlflow.keras

    return score(mlflow.keras.load_model(model_uri))
