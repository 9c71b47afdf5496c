"""The two-input forecaster: observations plus the weather forecast of the target hours.

A task only the forecast can solve: the pollutant at each target hour is pushed by that
hour's "wind", which is random (not predictable from the past) but known to the forecast
input. A model that reads the forecast must beat persistence and the same model without it;
its package, its jitted forward and its MLflow signature must carry the second input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airquality_assets.ml.model import (
    FUTURE_INPUT_NAME,
    INPUT_NAME,
    LSTMParams,
    build_lstm,
    delta_scale,
    jit_forward,
    train_lstm,
)
from airquality_assets.ml.package import ModelMetadata, load_package, save_package

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

LOOKBACK = 6
HORIZONS = 4


@dataclass
class ForecastTask:
    X: np.ndarray  # (n, LOOKBACK, 2): [pollutant, wind]
    future: np.ndarray  # (n, HORIZONS, 1): the wind of each target hour
    y: np.ndarray  # (n, HORIZONS, 1)

    def split(self, part: str) -> slice:
        n_train = int(0.7 * len(self.X))
        return slice(0, n_train) if part == "train" else slice(n_train, len(self.X))


def make_task(n_hours: int = 2400, seed: int = 0) -> ForecastTask:
    rng = np.random.default_rng(seed)
    wind = rng.normal(0.0, 1.0, n_hours).astype(np.float32)
    level = (60.0 - 20.0 * wind + rng.normal(0.0, 1.0, n_hours)).astype(np.float32)
    features = np.stack([level, wind], axis=1)
    ends = np.arange(LOOKBACK - 1, n_hours - HORIZONS)
    X = np.stack([features[e - LOOKBACK + 1 : e + 1] for e in ends])
    future = np.stack([wind[e + 1 : e + 1 + HORIZONS] for e in ends])[:, :, None]
    y = np.stack([level[e + 1 : e + 1 + HORIZONS] for e in ends])[:, :, None]
    return ForecastTask(X=X, future=future, y=y)


PARAMS = LSTMParams(
    units=16, layers=1, dropout=0.0, learning_rate=1e-2, batch_size=64, epochs=8, patience=3
)


def fit(task: ForecastTask, with_future: bool) -> Any:
    train, val = task.split("train"), task.split("validation")
    flat = task.X[train].reshape(-1, task.X.shape[-1])
    kwargs: dict[str, Any] = {}
    if with_future:
        kwargs = {
            "future_train": task.future[train],
            "future_val": task.future[val],
            "future_mean": task.future[train].reshape(-1, 1).mean(axis=0),
            "future_std": task.future[train].reshape(-1, 1).std(axis=0),
        }
    model, _, _ = train_lstm(
        PARAMS,
        task.X[train],
        task.y[train],
        task.X[val],
        task.y[val],
        target_feature_index=[0],
        feature_mean=flat.mean(axis=0),
        feature_std=flat.std(axis=0),
        seed=3,
        **kwargs,
    )
    return model


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def task() -> ForecastTask:
    return make_task()


@pytest.fixture(scope="module")
def with_forecast(task: ForecastTask) -> Any:
    return fit(task, with_future=True)


def test_the_forecast_input_carries_the_skill(task: ForecastTask, with_forecast: Any) -> None:
    val = task.split("validation")
    truth = task.y[val]
    persistence = np.repeat(task.X[val][:, -1:, :1], HORIZONS, axis=1)
    blind = fit(task, with_future=False).predict(task.X[val], verbose=0)
    seeing = with_forecast.predict([task.X[val], task.future[val]], verbose=0)
    blind_rmse, seeing_rmse = rmse(blind, truth), rmse(seeing, truth)
    # The wind moves the level by 20 ug/m3 per sd, noise is 1: only the forecast explains it.
    assert seeing_rmse < 0.5 * blind_rmse, (seeing_rmse, blind_rmse)
    assert seeing_rmse < 0.5 * rmse(persistence, truth)


def test_the_model_names_both_inputs(with_forecast: Any) -> None:
    assert [t.name for t in with_forecast.inputs] == [INPUT_NAME, FUTURE_INPUT_NAME]
    assert tuple(with_forecast.inputs[1].shape[1:]) == (HORIZONS, 1)


def test_jit_forward_takes_the_forecast_and_refuses_without_it(
    task: ForecastTask, with_forecast: Any
) -> None:
    forward = jit_forward(with_forecast)
    x, future = task.X[:32], task.future[:32]
    expected = with_forecast.predict([x, future], verbose=0)
    np.testing.assert_allclose(forward(x, future), expected, atol=1e-4)
    with pytest.raises(ValueError, match="reads 2 input"):
        forward(x)


def test_package_round_trip_keeps_the_second_input(
    task: ForecastTask, with_forecast: Any, tmp_path: Path
) -> None:
    metadata = ModelMetadata(
        feature_names=["pm2_5", "wind"],
        target_pollutants=["pm2_5"],
        lookback=LOOKBACK,
        horizons=list(range(1, HORIZONS + 1)),
        training_window={"start": "2020-01-01T00:00:00+00:00", "end": "2020-03-01T00:00:00+00:00"},
        future_feature_names=["wind"],
    )
    save_package(with_forecast, metadata, tmp_path / "pkg")
    loaded, loaded_metadata = load_package(tmp_path / "pkg")
    assert loaded_metadata.future_feature_names == ["wind"]
    inputs = [task.X[:16], task.future[:16]]
    np.testing.assert_array_equal(
        loaded.predict(inputs, verbose=0), with_forecast.predict(inputs, verbose=0)
    )


def test_metadata_of_an_observations_only_model_reads_as_no_forecast() -> None:
    # Packages written before the forecast input existed have no such key.
    text = (
        '{"feature_names": ["pm2_5"], "target_pollutants": ["pm2_5"], "lookback": 4, '
        '"horizons": [1], "training_window": {"start": "a", "end": "b"}}'
    )
    assert ModelMetadata.from_json(text).future_feature_names == []


def test_a_forecast_block_needs_its_validation_half_and_scales(task: ForecastTask) -> None:
    train = task.split("train")
    with pytest.raises(ValueError, match="future_val"):
        train_lstm(
            PARAMS,
            task.X[train],
            task.y[train],
            task.X[train],
            task.y[train],
            target_feature_index=[0],
            feature_mean=[0.0, 0.0],
            feature_std=[1.0, 1.0],
            future_train=task.future[train],
        )


def test_build_checks_the_forecast_scales_length(task: ForecastTask) -> None:
    with pytest.raises(ValueError, match="future_std"):
        build_lstm(
            PARAMS,
            lookback=LOOKBACK,
            n_features=2,
            n_horizons=HORIZONS,
            n_targets=1,
            target_feature_index=[0],
            feature_mean=[0.0, 0.0],
            feature_std=[1.0, 1.0],
            delta_std=delta_scale(task.X[:50], task.y[:50], [0]),
            future_mean=[0.0, 0.0],
            future_std=[1.0],
        )


def test_scoring_gives_each_model_the_inputs_it_reads(
    task: ForecastTask, with_forecast: Any
) -> None:
    from airquality_assets.ml.training_steps import inputs_for

    both = [task.X[:8], task.future[:8]]
    blind = jit_forward(fit(task, with_future=False))
    assert [a.shape for a in inputs_for(blind, both)] == [task.X[:8].shape]
    seeing = jit_forward(with_forecast)
    assert len(inputs_for(seeing, both)) == 2
    with pytest.raises(ValueError, match="carry none"):
        inputs_for(seeing, both[:1])
