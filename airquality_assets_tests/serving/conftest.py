"""Shared fixtures for the serving tests: tiny, seeded model packages that follow the
package contract (raw-unit input, ug/m3 output), one reading observations only and one
(built by :func:`airquality_assets.ml.model.build_lstm`) also reading the weather forecast
of its target hours, request bodies that match them, and forecasts stored as the loop's
``forecasts`` asset stores them (for ``GET /forecast``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airquality_assets.ml.intervals import Intervals
from airquality_assets.ml.package import ModelMetadata, save_package
from airquality_assets.monitoring.forecasting import ForecastStore, forecast_frame
from airquality_assets.transforms.features import default_feature_names
from airquality_assets.transforms.forecast_inputs import future_feature_names

TARGETS = ("pm2_5", "pm10", "no2", "o3", "nh3")
LOOKBACK = 24
HORIZONS = (1, 2, 3, 6, 12, 24)
START = datetime(2014, 12, 30, tzinfo=UTC)
#: The forecast-reading fixture: horizons 1..FORECAST_HOURS (the model reads one forecast
#: hour per horizon), pm2_5 and pm10 only.
FORECAST_HOURS = 6
FORECAST_TARGETS = ("pm2_5", "pm10")
#: Raw fields of each forecast hour for the default future features.
FORECAST_FIELDS = ("temp", "dew", "humidity", "pressure", "windspeed", "winddir")


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


def build_forecast_package(
    directory: Path,
    *,
    units: int = 8,
    targets: Sequence[str] = FORECAST_TARGETS,
    hours: int = FORECAST_HOURS,
    lookback: int = LOOKBACK,
    version: str = "11",
    seed: int = 0,
) -> Path:
    """Save the project's own two-input LSTM (untrained, seeded weights): observations and
    the forecast weather of target hours 1..``hours``, in raw units, as training builds it."""
    import keras

    from airquality_assets.ml.model import LSTMParams, build_lstm

    keras.utils.set_random_seed(seed)
    features = default_feature_names(list(targets))
    future = future_feature_names()
    params = LSTMParams(
        units=units, layers=1, dropout=0.0, learning_rate=1e-3, batch_size=8, epochs=1, patience=1
    )
    model = build_lstm(
        params,
        lookback=lookback,
        n_features=len(features),
        n_horizons=hours,
        n_targets=len(targets),
        target_feature_index=[features.index(t) for t in targets],
        feature_mean=[20.0] * len(features),
        feature_std=[20.0] * len(features),
        delta_std=[15.0] * len(targets),
        future_mean=[10.0] * len(future),
        future_std=[10.0] * len(future),
    )
    metadata = ModelMetadata(
        feature_names=features,
        target_pollutants=list(targets),
        lookback=lookback,
        horizons=list(range(1, hours + 1)),
        training_window={"start": "2010-01-01T00:00:00Z", "end": "2014-06-30T23:00:00Z"},
        model_version=version,
        future_feature_names=future,
    )
    return save_package(model, metadata, directory)


def observation(hour: int, rng: np.random.Generator, start: datetime = START) -> dict[str, Any]:
    """One plausible hourly observation with every raw field the fixture model needs (the
    dew point never above the temperature: the service refuses that)."""
    hour_values = {
        "time": (start + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pm2_5": round(float(rng.uniform(5, 150)), 2),
        "pm10": round(float(rng.uniform(10, 200)), 2),
        "no2": round(float(rng.uniform(5, 90)), 2),
        "o3": round(float(rng.uniform(0, 120)), 2),
        "nh3": round(float(rng.uniform(0, 20)), 2),
        "temp": round(float(rng.uniform(-10, 30)), 1),
    }
    dew = round(float(rng.uniform(-20, 15)), 1)
    return {
        **hour_values,
        "dew": min(dew, hour_values["temp"]),
        "humidity": round(float(rng.uniform(10, 100)), 1),
        "pressure": round(float(rng.uniform(990, 1040)), 1),
        "windspeed": round(float(rng.uniform(0, 40)), 1),
        "winddir": round(float(rng.uniform(0, 360)), 0),
        "is_rain": int(rng.integers(0, 2)),
        "is_snow": 0,
    }


def forecast_hour(hour: int, rng: np.random.Generator, start: datetime = START) -> dict[str, Any]:
    """One plausible forecast hour (``hour`` hours after ``start``) with the raw fields of
    the default future features."""
    full = observation(hour, rng, start)
    return {k: full[k] for k in ("time", *FORECAST_FIELDS)}


def make_body(locations: Sequence[str] = ("beijing",), seed: int = 1) -> dict[str, Any]:
    """A valid multi-location /predict body."""
    rng = np.random.default_rng(seed)
    return {
        "locations": [
            {"location": name, "observations": [observation(h, rng) for h in range(LOOKBACK)]}
            for name in locations
        ]
    }


def make_forecast_body(
    locations: Sequence[str] = ("beijing",),
    seed: int = 1,
    *,
    targets: Sequence[str] = FORECAST_TARGETS,
    lookback: int = LOOKBACK,
    hours: int = FORECAST_HOURS,
) -> dict[str, Any]:
    """A valid body for the forecast-reading fixture: ``lookback`` observed hours (its
    targets and weather only), then ``hours`` forecast hours from the hour after the last."""
    rng = np.random.default_rng(seed)
    keep = {"time", *targets, "temp", "dew", "humidity", "pressure", "windspeed", "winddir"}
    keep |= {"is_rain", "is_snow"}
    return {
        "locations": [
            {
                "location": name,
                "observations": [
                    {k: v for k, v in observation(h, rng).items() if k in keep}
                    for h in range(lookback)
                ],
                "forecast": [forecast_hour(lookback + h, rng) for h in range(hours)],
            }
            for name in locations
        ]
    }


#: The stored forecasts' issue hour.
ISSUED = pd.Timestamp("2014-12-30T18:00Z")
#: What :func:`store_issue` stores: two pollutants (one without an AQI scale), 3 horizons.
STORED_TARGETS = ("pm2_5", "nh3")
STORED_HORIZONS = (1, 6, 24)
#: A calibration for the stored issues: 80 % intervals widening with the horizon.
STORED_INTERVALS = Intervals(
    0.8, list(STORED_TARGETS), list(STORED_HORIZONS),
    [[-4.0, -10.0, -20.0], [-0.5, -1.0, -1.5]], [[6.0, 18.0, 45.0], [0.5, 1.0, 2.0]], n=500,
)  # fmt: skip


def store_issue(
    base: Path,
    location: str,
    issued: pd.Timestamp,
    values: Sequence[Sequence[float]],
    version: str = "7",
    intervals: Intervals | None = None,
    **columns: object,
) -> None:
    """Append one issue, (horizons, targets) values, the way the loop's asset does (with the
    champion's calibrated ``intervals`` when given)."""
    frame = forecast_frame(
        location,
        pd.DatetimeIndex([issued]),
        np.asarray([values], dtype=float),
        np.full((1, len(STORED_TARGETS)), 40.0),
        STORED_TARGETS,
        STORED_HORIZONS,
        "airquality-lstm",
        version,
        intervals=intervals,
    ).assign(**columns)
    ForecastStore(base).append(location, issued.date(), frame)


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("package") / "pkg")


@pytest.fixture(scope="session")
def forecast_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_forecast_package(tmp_path_factory.mktemp("forecast_package") / "pkg")


def build_ensemble_package(directory: Path, *, seed: int = 0, n_train: int = 300) -> Path:
    """The forecast-reading fixture LSTM and LightGBM's boosters as one ensemble package,
    boosters and weights fitted on seeded synthetic windows (a target that follows its last
    value and the forecast temperature, so both members have something to learn)."""
    from airquality_assets.ml.ensemble import fit_ensemble
    from airquality_assets.ml.package import load_package

    model, metadata = load_package(build_forecast_package(directory.parent / "lstm", seed=seed))
    rng = np.random.default_rng(seed)
    features, future = metadata.feature_names, metadata.future_feature_names
    n_targets, hours = len(metadata.target_pollutants), len(metadata.horizons)

    def split(n: int) -> tuple[list[np.ndarray], np.ndarray]:
        x = rng.uniform(0, 50, (n, LOOKBACK, len(features))).astype(np.float32)
        block = rng.uniform(0, 30, (n, hours, len(future))).astype(np.float32)
        last = x[:, -1, [features.index(t) for t in metadata.target_pollutants]]
        temp = block[:, :, [future.index("temp")]]
        y = last[:, None, :] + 0.8 * temp + rng.normal(0, 2, (n, hours, n_targets))
        return [x, block], y.astype(np.float32)

    (x_tr, y_tr), (x_va, y_va) = split(n_train), split(n_train // 2)
    ensemble = fit_ensemble(
        [model], x_tr, y_tr, x_va, y_va, features, future, metadata.target_pollutants,
        metadata.horizons,
    )  # fmt: skip
    metadata.model_version = "12"
    return save_package(ensemble, metadata, directory)
