"""The LSTM + LightGBM ensemble: weights fitted on validation windows only, the package
round trip, and the forward it shares with the service."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from airquality_assets.ml.ensemble import (
    EnsembleModel,
    array_features,
    fit_ensemble,
    fit_weights,
    with_members,
)
from airquality_assets.ml.forward import jit_forward
from airquality_assets.ml.package import load_package, read_metadata
from airquality_assets_tests.serving.conftest import FORECAST_HOURS, build_ensemble_package


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ensemble_package(tmp_path_factory.mktemp("ensemble") / "pkg")


def inputs(model: EnsembleModel, batch: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 50, (batch, 24, len(model.feature_names))).astype(np.float32)
    future = rng.uniform(0, 30, (batch, FORECAST_HOURS, len(model.future_names)))
    return [x, future.astype(np.float32)]


def test_fit_weights_recovers_the_mix_and_stays_in_range() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 10, (2, 500, 3, 1))
    y = 0.3 * a + 0.7 * b
    np.testing.assert_allclose(fit_weights(a, b, y)[:, 0], 0.3, atol=1e-6)
    assert fit_weights(a, b, 2 * a - b)[0, 0] == 1.0  # extrapolation clipped to [0, 1]
    y_missing = y.copy()
    y_missing[:10] = np.nan  # missing targets are left out, not propagated
    assert np.isfinite(fit_weights(a, b, y_missing)).all()


def test_weights_are_the_validation_optimum(ensemble_dir: Path) -> None:
    """The stored weights are exactly fit_weights on the validation windows' forecasts, and
    the blend there is no worse than either member at any horizon."""
    model, _ = load_package(ensemble_dir)
    assert model.extra["weights_fitted_on"] == "validation"
    rmse = model.extra["validation_rmse"]
    assert rmse["ensemble"] <= min(rmse["lstm"], rmse["lightgbm"]) + 1e-6


def test_fit_ensemble_reads_no_window_but_train_and_validation() -> None:
    """Weights from train + validation arrays only: changing what would be test data
    (anything not passed) cannot move them, and changing validation targets does."""
    import keras

    from airquality_assets.ml.model import LSTMParams, build_lstm
    from airquality_assets.transforms.features import default_feature_names
    from airquality_assets.transforms.forecast_inputs import future_feature_names

    keras.utils.set_random_seed(0)
    features, future = default_feature_names(["pm2_5"]), future_feature_names()
    params = LSTMParams(units=4, layers=1, dropout=0.0, learning_rate=1e-3, batch_size=8,
                        epochs=1, patience=1)  # fmt: skip
    lstm = build_lstm(params, lookback=24, n_features=len(features), n_horizons=3,
                      n_targets=1, target_feature_index=[features.index("pm2_5")],
                      feature_mean=[20.0] * len(features), feature_std=[20.0] * len(features),
                      delta_std=[15.0], future_mean=[10.0] * len(future),
                      future_std=[10.0] * len(future))  # fmt: skip
    rng = np.random.default_rng(1)

    def split(n: int):
        x = rng.uniform(0, 50, (n, 24, len(features))).astype(np.float32)
        block = rng.uniform(0, 30, (n, 3, len(future))).astype(np.float32)
        y = x[:, -1:, [features.index("pm2_5")]] + block[:, :, [future.index("temp")]]
        return [x, block], y.astype(np.float32)

    (x_tr, y_tr), (x_va, y_va) = split(200), split(100)
    args = (features, future, ["pm2_5"], [1, 2, 3])
    first = fit_ensemble([lstm], x_tr, y_tr, x_va, y_va, *args)
    again = fit_ensemble([lstm], x_tr, y_tr, x_va, y_va, *args)
    np.testing.assert_array_equal(first.weights, again.weights)  # deterministic
    lstm_val = jit_forward(lstm)(*x_va)
    np.testing.assert_allclose(
        first.weights, fit_weights(lstm_val, first.lightgbm(*x_va), y_va), atol=1e-6
    )
    # Other validation targets, other weights: they are what the weights are fitted on.
    shifted = with_members(first, [lstm], x_va, lstm_val + rng.normal(0, 0.1, lstm_val.shape))
    assert (shifted.weights > 0.9).all()


def test_package_round_trip_gives_identical_predictions(ensemble_dir: Path, tmp_path: Path) -> None:
    from airquality_assets.ml.package import save_package

    model, metadata = load_package(ensemble_dir)
    assert isinstance(model, EnsembleModel) and (ensemble_dir / "model.keras").exists()
    arrays = inputs(model, 5, 0)
    before = jit_forward(model)(*arrays)
    save_package(model, metadata, tmp_path / "again")
    again, meta_again = load_package(tmp_path / "again")
    np.testing.assert_array_equal(jit_forward(again)(*arrays), before)
    np.testing.assert_array_equal(again.weights, model.weights)
    assert meta_again == read_metadata(ensemble_dir)
    # The blend is what the forward returns: members and boosters weighted per horizon.
    lstm = jit_forward(model.members[0])(*arrays)
    w = model.weights[None]
    np.testing.assert_allclose(before, w * lstm + (1 - w) * model.lightgbm(*arrays), rtol=1e-6)


def test_forward_keeps_its_signature_and_is_thread_safe(ensemble_dir: Path) -> None:
    model, _ = load_package(ensemble_dir)
    forward = jit_forward(model)
    assert forward.n_inputs == 2
    with pytest.raises(ValueError, match="reads 2 input"):
        forward(inputs(model, 1, 0)[0])
    batches = [inputs(model, 1 + i % 5, i) for i in range(32)]
    serial = [forward(*b) for b in batches]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda b: forward(*b), batches))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_array_features_see_only_the_window_and_its_forecast() -> None:
    """Each horizon's row changes with that hour's forecast and not with a later one."""
    names = ["pm2_5", "temp", "hour_sin", "hour_cos"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 50, (2, 24, 4)).astype(np.float32)
    future = rng.uniform(0, 30, (2, 6, 1)).astype(np.float32)
    rows = array_features(x, future, names, ["temp"], ["pm2_5"], [1, 3])
    later = future.copy()
    later[:, 3:, :] += 10.0  # hours 4-6 are after both horizons' target hours
    rows_later = array_features(x, later, names, ["temp"], ["pm2_5"], [1, 3])
    for a, b in zip(rows, rows_later, strict=True):
        np.testing.assert_array_equal(a, b)
    moved = future.copy()
    moved[:, 2, :] += 10.0  # hour 3: horizon 3 sees it, horizon 1 does not
    rows_moved = array_features(x, moved, names, ["temp"], ["pm2_5"], [1, 3])
    np.testing.assert_array_equal(rows[0], rows_moved[0])
    assert not np.array_equal(rows[1], rows_moved[1])
