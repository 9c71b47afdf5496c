"""Shared fixtures for the serving tests: a tiny, seeded model package that follows the
package contract (raw-unit input, ug/m3 output), and request bodies that match it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airquality_assets.ml.package import ModelMetadata, save_package
from airquality_assets.transforms.features import default_feature_names

TARGETS = ("pm2_5", "pm10", "no2", "o3", "nh3")
LOOKBACK = 24
HORIZONS = (1, 2, 3, 6, 12, 24)
START = datetime(2014, 12, 30, tzinfo=UTC)


def build_package(
    directory: Path,
    *,
    units: int = 8,
    layers: int = 1,
    targets: Sequence[str] = TARGETS,
    horizons: Sequence[int] = HORIZONS,
    lookback: int = LOOKBACK,
    version: str = "7",
    seed: int = 0,
) -> Path:
    """Save a small random-weight LSTM package; a bias keeps outputs mostly positive."""
    import keras

    keras.utils.set_random_seed(seed)
    features = default_feature_names(list(targets))
    inputs = keras.Input((lookback, len(features)))
    x = keras.layers.Normalization(mean=20.0, variance=400.0)(inputs)
    for i in range(layers):
        x = keras.layers.LSTM(units, return_sequences=i < layers - 1)(x)
    x = keras.layers.Dense(len(horizons) * len(targets), bias_initializer="ones")(x)
    x = keras.layers.Rescaling(30.0)(x)
    outputs = keras.layers.Reshape((len(horizons), len(targets)))(x)
    model = keras.Model(inputs, outputs)
    metadata = ModelMetadata(
        feature_names=features,
        target_pollutants=list(targets),
        lookback=lookback,
        horizons=list(horizons),
        training_window={"start": "2010-01-01T00:00:00Z", "end": "2014-06-30T23:00:00Z"},
        model_version=version,
        test_metrics={"pm2_5": {"mae": 12.5, "rmse": 20.1, "r2": 0.71}},
    )
    return save_package(model, metadata, directory)


def observation(hour: int, rng: np.random.Generator, start: datetime = START) -> dict[str, Any]:
    """One plausible hourly observation with every raw field the fixture model needs."""
    return {
        "time": (start + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pm2_5": round(float(rng.uniform(5, 150)), 2),
        "pm10": round(float(rng.uniform(10, 200)), 2),
        "no2": round(float(rng.uniform(5, 90)), 2),
        "o3": round(float(rng.uniform(0, 120)), 2),
        "nh3": round(float(rng.uniform(0, 20)), 2),
        "temp": round(float(rng.uniform(-10, 30)), 1),
        "dew": round(float(rng.uniform(-20, 15)), 1),
        "humidity": round(float(rng.uniform(10, 100)), 1),
        "pressure": round(float(rng.uniform(990, 1040)), 1),
        "windspeed": round(float(rng.uniform(0, 40)), 1),
        "winddir": round(float(rng.uniform(0, 360)), 0),
        "is_rain": int(rng.integers(0, 2)),
        "is_snow": 0,
    }


def make_body(locations: Sequence[str] = ("beijing",), seed: int = 1) -> dict[str, Any]:
    """A valid multi-location /predict body."""
    rng = np.random.default_rng(seed)
    return {
        "locations": [
            {"location": name, "observations": [observation(h, rng) for h in range(LOOKBACK)]}
            for name in locations
        ]
    }


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("package") / "pkg")
