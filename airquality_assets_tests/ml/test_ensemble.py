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


def test_fit_weights_recovers_the_mix_and_stays_on_the_simplex() -> None:
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(0, 10, (3, 500, 3, 1))
    parts = np.stack([a, b, c], axis=-1)
    w = fit_weights(parts, 0.2 * a + 0.5 * b + 0.3 * c)
    np.testing.assert_allclose(w[:, 0], [[0.2, 0.5, 0.3]] * 3, atol=1e-4)
    # extrapolation (2a - b) is not a mix: the weights stay in [0, 1] and sum to 1
    w = fit_weights(parts[..., :2], 2 * a - b)
    assert ((w >= 0) & (w <= 1)).all()
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w[0, 0], [1.0, 0.0], atol=1e-4)
    y_missing = 0.3 * a + 0.7 * b
    y_missing[:10] = np.nan  # missing targets are left out, not propagated
    w = fit_weights(parts[..., :2], y_missing)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w[:, 0], [[0.3, 0.7]] * 3, atol=1e-4)


def test_residual_boosters_learn_what_the_member_misses() -> None:
    """Boosters fitted to a biased forecast's residuals take the bias out (validation
    windows early-stop them; the test rows are never seen)."""
    from airquality_assets.ml.ensemble import fit_boosters

    names, future_names = ["pm2_5", "temp"], ["temp"]
    rng = np.random.default_rng(3)

    def split(n: int):
        x = rng.uniform(0, 50, (n, 24, 2)).astype(np.float32)
        future = rng.uniform(0, 30, (n, 2, 1)).astype(np.float32)
        y = (x[:, -1:, :1] + future[:, :, :1]).astype(np.float32)
        return [x, future], y, (y - 5.0 - 0.3 * future[:, :, :1]).astype(np.float32)

    (x_tr, y_tr, f_tr), (x_va, y_va, f_va), (x_te, y_te, f_te) = split(3000), split(500), split(500)
    boosters = fit_boosters(x_tr, y_tr, x_va, y_va, names, future_names, ["pm2_5"], [1, 2],
                            forecasts=(f_tr, f_va))  # fmt: skip
    model = EnsembleModel(
        members=[], boosters={}, weights=np.zeros((2, 1, 1), np.float32), feature_names=names,
        future_names=future_names, target_names=["pm2_5"], horizons=[1, 2],
        residual_boosters=boosters,
    )  # fmt: skip
    corrected = model.residual(f_te, *x_te)
    before, after = np.abs(f_te - y_te).mean(), np.abs(corrected - y_te).mean()
    assert after < 0.25 * before, (before, after)


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
    assert first.components == ["lstm", "lstm_residual", "lightgbm"]
    np.testing.assert_allclose(first.weights, fit_weights(first.parts(*x_va), y_va), atol=1e-6)
    # Other validation targets, other weights: they are what the weights are fitted on.
    shifted = with_members(first, [lstm], x_va, lstm_val + rng.normal(0, 0.1, lstm_val.shape))
    assert (shifted.share("lstm") > 0.9).all()


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
    # The blend is what the forward returns: each component weighted per horizon.
    lstm = jit_forward(model.members[0])(*arrays)
    expected = (
        model.share("lstm")[None] * lstm
        + model.share("lstm_residual")[None] * model.residual(lstm, *arrays)
        + model.share("lightgbm")[None] * model.lightgbm(*arrays)
    )
    np.testing.assert_allclose(before, expected, rtol=1e-5, atol=1e-4)


def test_a_package_from_before_the_residual_member_loads_and_blends_as_it_did(
    ensemble_dir: Path, tmp_path: Path
) -> None:
    """Champions registered before the residual member keep serving: a 2-D ``weights``
    (the LSTM's share) and no residual boosters load as the two-part blend."""
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(ensemble_dir, old)
    spec = json.loads((old / "ensemble.json").read_text())
    lstm_share = np.full((len(spec["horizons"]), len(spec["target_names"])), 0.25)
    spec["weights"] = lstm_share.tolist()
    for key in ("components", "residual_boosters"):
        spec.pop(key)
    (old / "ensemble.json").write_text(json.dumps(spec))
    model, _ = load_package(old)
    assert model.components == ["lstm", "lightgbm"] and not model.residual_boosters
    arrays = inputs(model, 4, 1)
    lstm = jit_forward(model.members[0])(*arrays)
    np.testing.assert_allclose(
        jit_forward(model)(*arrays), 0.25 * lstm + 0.75 * model.lightgbm(*arrays), rtol=1e-5
    )


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
