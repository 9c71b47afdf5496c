"""The forecaster's contract: raw units in, ug/m3 out, persistence + learned delta.

Tiny arrays and a handful of epochs: the point is the wiring (scaling inside the graph,
the persistence branch, save/load, the jitted forward), plus one check that training on a
task persistence cannot solve actually beats persistence. One module-scoped training run
is shared so jit compilation is paid once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airquality_assets.ml.model import (
    DELTA_STD_LAYER,
    HEAD_LAYER,
    LSTMParams,
    build_lstm,
    delta_scale,
    epoch_progress,
    jit_forward,
    scaled_delta_targets,
    train_lstm,
)
from airquality_assets.ml.package import ModelMetadata, load_package, save_package

# Keras 3.15 + numpy 2.4 warn from inside keras on every np.array(variable); not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

LOOKBACK = 8
HORIZONS = 3
TARGET = 0  # column of the target pollutant among the features


@dataclass
class Task:
    X: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    delta_std: np.ndarray  # (HORIZONS, 1), fitted on the training windows


def make_task(n_hours: int = 1600, seed: int = 0) -> Task:
    """A pollutant in ug/m3 with a daily cycle: persistence lags it, the hour feature explains it.

    Features: [pollutant (~80 +- 40), sin(hour), cos(hour), temperature-ish noise (~15 C)];
    raw units on purpose so the in-model scaling is exercised.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_hours)
    phase = 2 * np.pi * (t % 24) / 24
    level = 80 + 40 * np.sin(phase) + rng.normal(0, 2, n_hours)
    features = np.stack(
        [level, np.sin(phase), np.cos(phase), 15 + 5 * rng.normal(size=n_hours)], axis=1
    ).astype(np.float32)
    ends = np.arange(LOOKBACK - 1, n_hours - HORIZONS)
    X = np.stack([features[e - LOOKBACK + 1 : e + 1] for e in ends])
    y = np.stack([level[e + 1 : e + 1 + HORIZONS] for e in ends])[:, :, None].astype(np.float32)
    n_train = int(0.7 * len(X))
    train = X[:n_train]
    return Task(
        X=X,
        y=y,
        mean=train.reshape(-1, X.shape[-1]).mean(axis=0),
        std=train.reshape(-1, X.shape[-1]).std(axis=0),
        delta_std=delta_scale(train, y[:n_train], [TARGET]),
    )


def build(task: Task, params: LSTMParams, clip_negative: bool = True) -> Any:
    return build_lstm(
        params,
        lookback=LOOKBACK,
        n_features=task.X.shape[-1],
        n_horizons=HORIZONS,
        n_targets=1,
        target_feature_index=[TARGET],
        feature_mean=task.mean,
        feature_std=task.std,
        delta_std=task.delta_std,
        clip_negative=clip_negative,
    )


def persistence(X: np.ndarray) -> np.ndarray:
    return np.repeat(X[:, -1:, [TARGET]], HORIZONS, axis=1)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


#: (model, history, fit_seconds) as returned by train_lstm
Trained = tuple[Any, dict[str, list[float]], float]

TINY = LSTMParams(
    units=8, layers=1, dropout=0.0, learning_rate=1e-2, batch_size=64, epochs=6, patience=3
)


@pytest.fixture(scope="module")
def task() -> Task:
    return make_task()


@pytest.fixture(scope="module")
def trained(task: Task) -> Trained:
    n = len(task.X)
    train, val = slice(0, int(0.7 * n)), slice(int(0.7 * n), n)
    return train_lstm(
        TINY,
        task.X[train],
        task.y[train],
        task.X[val],
        task.y[val],
        target_feature_index=[TARGET],
        feature_mean=task.mean,
        feature_std=task.std,
        seed=7,  # delta_std left to its default: fitted on these training windows
    )


def test_epoch_progress_logs_one_line_per_epoch(task: Task) -> None:
    lines: list[str] = []
    params = LSTMParams(
        units=4, layers=1, dropout=0.0, learning_rate=1e-2, batch_size=256, epochs=2, patience=5
    )
    train_lstm(
        params,
        task.X[:600],
        task.y[:600],
        task.X[600:800],
        task.y[600:800],
        target_feature_index=[TARGET],
        feature_mean=task.mean,
        feature_std=task.std,
        extra_callbacks=[epoch_progress(lines.append, "tiny", params.epochs)],
    )
    assert len(lines) == 2
    assert lines[0].startswith("tiny: epoch 1/2: loss ") and "val_loss" in lines[0]
    assert lines[1].startswith("tiny: epoch 2/2: ") and lines[1].endswith(" s)")


def test_params_name_is_stable_and_identifier_safe() -> None:
    params = LSTMParams(
        units=128, dropout=0.2, learning_rate=1e-4, batch_size=32, epochs=50, patience=5
    )
    assert params.name == "u128_l2_do0p2_lr0p0001_b32_e50_p5"
    assert params.name.replace("_", "").isalnum()
    assert LSTMParams.from_dict({**params.as_dict(), "name": params.name}) == params
    with pytest.raises(ValueError, match="dropout"):
        LSTMParams(units=8, dropout=1.0, learning_rate=1e-3, batch_size=8, epochs=1)


def test_zero_delta_head_is_exactly_persistence(task: Task) -> None:
    """With the head's kernel and bias at 0 the model must return the last raw observation."""
    model = build(task, TINY)
    head = model.get_layer(HEAD_LAYER)
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    out = model.predict(task.X[:50], verbose=0)
    assert out.shape == (50, HORIZONS, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out, persistence(task.X[:50]))


def test_delta_is_rescaled_per_horizon_inside_the_model(task: Task) -> None:
    """A head bias of +1 (standardised) must add exactly that horizon's delta_std in ug/m3."""
    assert len(np.unique(task.delta_std)) == HORIZONS  # the scales really differ by horizon
    model = build(task, TINY, clip_negative=False)
    head = model.get_layer(HEAD_LAYER)
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
    out = model.predict(task.X[:20], verbose=0)
    np.testing.assert_allclose(out, persistence(task.X[:20]) + task.delta_std[None], rtol=1e-5)


def test_delta_scale_is_the_std_of_the_change_per_horizon() -> None:
    X = np.zeros((4, 2, 1), dtype=np.float32)
    X[:, -1, 0] = [10, 20, 30, 40]
    # change from the last value: horizon 1 is +-1, horizon 2 is +-5 and a constant horizon 3
    y = X[:, -1:, :] + np.array([[1, 5, 7], [-1, -5, 7], [1, 5, 7], [-1, -5, 7]])[:, :, None]
    np.testing.assert_allclose(delta_scale(X, y, [0])[:, 0], [1.0, 5.0, 1.0])  # 0 -> floored 1


def test_one_scale_per_target_is_repeated_for_every_horizon(task: Task) -> None:
    delta = scaled_delta_targets(task.X[:5], task.y[:5], [TARGET], [2.0])
    np.testing.assert_allclose(delta * 2.0, task.y[:5] - persistence(task.X[:5]), rtol=1e-5)
    with pytest.raises(ValueError, match="delta_std must have shape"):
        scaled_delta_targets(task.X[:5], task.y[:5], [TARGET], np.ones((HORIZONS + 1, 1)))


def test_negative_forecasts_are_clipped_to_zero(task: Task) -> None:
    model = build(task, TINY)
    head = model.get_layer(HEAD_LAYER)
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.full_like(bias, -100.0)])
    assert float(model.predict(task.X[:5], verbose=0).max()) == 0.0


def test_trained_model_beats_persistence_in_raw_units(task: Task, trained: Trained) -> None:
    model, history, fit_seconds = trained
    assert fit_seconds > 0
    assert set(history) >= {"loss", "val_loss", "mae", "val_mae", "learning_rate"}
    assert 1 <= len(history["val_loss"]) <= TINY.epochs
    val = slice(int(0.7 * len(task.X)), len(task.X))
    forecast = model.predict(task.X[val], verbose=0)
    assert forecast.shape == (len(task.X[val]), HORIZONS, 1)
    # Output is in ug/m3 (raw units), not standardised: same scale as the truth.
    assert 30 < float(forecast.mean()) < 130
    model_rmse = rmse(forecast, task.y[val])
    persistence_rmse = rmse(persistence(task.X[val]), task.y[val])
    assert model_rmse < 0.8 * persistence_rmse, (model_rmse, persistence_rmse)
    # history losses are MSE of the standardised delta: best val_loss matches the model.
    delta_target = scaled_delta_targets(task.X[val], task.y[val], [TARGET], task.delta_std)
    train_view_pred = (forecast - persistence(task.X[val])) / task.delta_std
    assert min(history["val_loss"]) == pytest.approx(
        float(np.mean((train_view_pred - delta_target) ** 2)), rel=1e-3
    )
    assert model.get_layer(DELTA_STD_LAYER).output.shape[1:] == (HORIZONS, 1)


def test_package_round_trip_gives_identical_predictions(
    task: Task, trained: Trained, tmp_path: Path
) -> None:
    model, _, _ = trained
    metadata = ModelMetadata(
        feature_names=["pm2_5", "hour_sin", "hour_cos", "temp"],
        target_pollutants=["pm2_5"],
        lookback=LOOKBACK,
        horizons=[1, 2, 3],
        training_window={"start": "2020-01-01T00:00:00+00:00", "end": "2020-03-01T00:00:00+00:00"},
    )
    save_package(model, metadata, tmp_path / "pkg")
    loaded, loaded_metadata = load_package(tmp_path / "pkg")
    assert loaded_metadata == metadata
    np.testing.assert_array_equal(
        loaded.predict(task.X[:64], verbose=0), model.predict(task.X[:64], verbose=0)
    )


def test_jit_forward_matches_predict_and_is_thread_safe(task: Task, trained: Trained) -> None:
    model, _, _ = trained
    forward = jit_forward(model)
    expected = model.predict(task.X[:32], verbose=0)
    np.testing.assert_allclose(forward(task.X[:32]), expected, atol=1e-4)

    results: dict[int, np.ndarray] = {}

    def worker(i: int) -> None:
        results[i] = forward(task.X[:32])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results.values():
        np.testing.assert_allclose(result, expected, atol=1e-4)
    assert len(results) == 4


def test_jit_forward_is_a_weight_snapshot(task: Task) -> None:
    """Changing the model after building the forward must not change served predictions."""
    model = build(task, TINY)
    forward = jit_forward(model)
    before = forward(task.X[:4])
    head = model.get_layer(HEAD_LAYER)
    head.set_weights([w + 1.0 for w in head.get_weights()])
    np.testing.assert_array_equal(forward(task.X[:4]), before)
