"""Baselines on series small enough to compute by hand; Ridge learns from training only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from airquality_assets.ml.baselines import (
    baseline_forecasts,
    climatology_forecast,
    climatology_table,
    fit_lightgbm,
    fit_ridge,
    persistence_forecast,
    seasonal_naive_forecast,
    window_features,
)
from airquality_assets.transforms.windowing import (
    SequenceTensors,
    SplitSpec,
    build_sequence_tensors,
    windows,
)
from airquality_assets_tests.transforms.test_windowing import make_frame

FRACTIONS = SplitSpec(train_end=None, validation_end=None)


def counting_frame(hours: int, start: str = "2020-01-01") -> pd.DataFrame:
    """pm2_5 equals the row number: every forecast names the row it copied."""
    return pd.DataFrame(
        {
            "location": "x",
            "time": pd.date_range(start, periods=hours, freq="h", tz="UTC"),
            "pm2_5": np.arange(hours, dtype=float),
            "temp": 1.0,
        }
    )


def test_persistence_repeats_the_last_input_value() -> None:
    tensors = build_sequence_tensors(counting_frame(40), ["pm2_5"], ["pm2_5"], 4, [1, 2, 3])
    ends = np.array([3, 10, 20])
    forecast = persistence_forecast(tensors, ends)
    assert forecast.shape == (3, 3, 1) and forecast.dtype == np.float32
    np.testing.assert_array_equal(forecast[:, :, 0], [[3, 3, 3], [10, 10, 10], [20, 20, 20]])


def test_persistence_falls_back_to_last_observed_inside_the_window() -> None:
    frame = counting_frame(40)
    frame.loc[[10, 20, 19, 18, 17], "pm2_5"] = np.nan  # target is not a feature here
    tensors = build_sequence_tensors(frame, ["temp"], ["pm2_5"], 4, [1], FRACTIONS)
    forecast = persistence_forecast(tensors, np.array([10, 20, 21]))
    # t=10 -> row 9; t=20: rows 17..20 all missing -> NaN; t=21 -> row 21
    np.testing.assert_array_equal(forecast[:, 0, 0], [9, np.nan, 21])


def test_seasonal_naive_uses_the_latest_same_hour_at_or_before_t() -> None:
    tensors = build_sequence_tensors(counting_frame(200), ["pm2_5"], ["pm2_5"], 4, range(1, 7))
    forecast = seasonal_naive_forecast(tensors, np.array([10]), period=4)[0, :, 0]
    # h=1..4: k=1 -> rows t+h-4 = 7, 8, 9, 10; h=5,6: k=2 -> rows t+h-8 = 7, 8
    np.testing.assert_array_equal(forecast, [7, 8, 9, 10, 7, 8])

    daily = build_sequence_tensors(counting_frame(400), ["pm2_5"], ["pm2_5"], 24, range(1, 25))
    forecast = seasonal_naive_forecast(daily, np.array([100]))[0, :, 0]
    np.testing.assert_array_equal(forecast, np.arange(77, 101))  # same hour yesterday


def test_seasonal_naive_is_nan_across_a_location_boundary() -> None:
    frame = pd.concat([counting_frame(100).assign(location=name) for name in ("a", "b")])
    tensors = build_sequence_tensors(frame, ["pm2_5"], ["pm2_5"], 2, [1, 5], FRACTIONS)
    forecast = seasonal_naive_forecast(tensors, np.array([101, 110]), period=4)
    # end 101 is b's hour 1: h=1 -> row 101+1-4=98 and h=5 -> row 101+5-8=98 are a's rows
    assert np.isnan(forecast[0]).all()
    # end 110 is b's hour 10: both horizons read row 107 (b's hour 7), before the 2 h window
    np.testing.assert_array_equal(forecast[1, :, 0], [7, 7])


def test_climatology_is_the_training_mean_by_target_hour() -> None:
    frame = counting_frame(24 * 10)
    hour = frame["time"].dt.hour.to_numpy()
    frame["pm2_5"] = hour * 10.0
    frame.loc[frame["time"] >= "2020-01-08", "pm2_5"] += 1000.0  # after the train cut
    frame.loc[(frame["time"] < "2020-01-02") & (hour == 5), "pm2_5"] = 110.0  # one odd day
    spec = SplitSpec(train_end="2020-01-05", validation_end="2020-01-07")
    tensors = build_sequence_tensors(frame, ["pm2_5"], ["pm2_5"], 2, [1, 2, 3], spec)
    table = climatology_table(tensors)
    assert table.shape == (1, 24, 1)
    assert table[0, 5, 0] == pytest.approx((110 + 4 * 50) / 5)  # 5 training days at 05:00
    assert table[0, 7, 0] == 70.0  # the +1000 test values never enter
    end_time = pd.Timestamp("2020-01-09 03:00", tz="UTC").timestamp()
    end = np.flatnonzero(tensors.times == end_time)
    forecast = climatology_forecast(tensors, end)
    np.testing.assert_allclose(forecast[0, :, 0], [40.0, 62.0, 60.0])  # hours 4, 5, 6


def test_ridge_is_fitted_on_training_windows_only() -> None:
    frame = make_frame(24 * 30)
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], 24, [1, 6, 24], FRACTIONS)
    ridge = fit_ridge(tensors, alpha=3.0)
    assert ridge.n_train_windows == tensors.ends["train"].size
    fitted = ridge.model.regressor_[-1]  # the Ridge step of the scaler pipeline
    assert ridge.alpha == 3.0 and fitted.alpha == 3.0

    # same training windows, different test data -> identical scalers and coefficients
    last_train_hour = tensors.times[tensors.ends["train"]].max() + 24 * 3600
    changed = frame.copy()
    later = changed["time"] > pd.Timestamp(int(last_train_hour), unit="s", tz="UTC")
    changed.loc[later, ["pm2_5", "temp"]] *= 3.0
    changed_tensors = build_sequence_tensors(changed, None, ["pm2_5"], 24, [1, 6, 24], FRACTIONS)
    np.testing.assert_array_equal(changed_tensors.ends["train"], tensors.ends["train"])
    refitted = fit_ridge(changed_tensors, 3.0).model
    np.testing.assert_array_equal(refitted.regressor_[-1].coef_, fitted.coef_)
    np.testing.assert_array_equal(refitted.regressor_[0].mean_, ridge.model.regressor_[0].mean_)

    ends = tensors.ends["test"]
    forecast = ridge.predict(tensors, ends)
    _, y = windows(tensors, "test")
    assert forecast.shape == y.shape == (ends.size, 3, 1)
    ridge_rmse = np.sqrt(np.mean((forecast - y) ** 2))
    persistence_rmse = np.sqrt(np.mean((persistence_forecast(tensors, ends) - y) ** 2))
    assert ridge_rmse < persistence_rmse  # a daily cycle is learnable, persistence ignores it


def test_baseline_forecasts_share_the_target_shape() -> None:
    tensors = build_sequence_tensors(make_frame(24 * 20), None, ["pm2_5"], split=FRACTIONS)
    ends = tensors.ends["test"]
    forecasts = baseline_forecasts(tensors, ends)
    assert list(forecasts) == ["persistence", "seasonal_naive", "climatology", "ridge", "lightgbm"]
    for forecast in forecasts.values():
        assert forecast.shape == (ends.size, 24, 1) and forecast.dtype == np.float32
        assert np.isfinite(forecast).all()
    np.testing.assert_array_equal(  # at h=24 "same hour yesterday" is the value at t
        forecasts["seasonal_naive"][:, -1], forecasts["persistence"][:, -1]
    )
    fewer = baseline_forecasts(tensors, ends, ridge_alpha=None, with_lightgbm=False)
    assert list(fewer) == ["persistence", "seasonal_naive", "climatology"]


def test_window_features_summarise_each_window() -> None:
    frame = counting_frame(60)  # pm2_5 = row number, temp = 1, starts Wed 2020-01-01 00:00
    tensors = build_sequence_tensors(frame, ["pm2_5", "temp"], ["pm2_5"], 4, [1, 2], FRACTIONS)
    features, names = window_features(tensors, np.array([10, 30]))
    row = dict(zip(names, features[0], strict=True))
    assert [row[f"pm2_5_lag{lag}"] for lag in range(4)] == [10, 9, 8, 7]
    assert (row["pm2_5_change1h"], row["pm2_5_change3h"]) == (1, 3)
    assert row["pm2_5_mean3h"] == 9 and row["pm2_5_mean4h"] == 8.5  # 6, 12, 24 h clip to 4
    assert row["pm2_5_max4h"] == 10
    assert [n for n in names if n.startswith("temp")] == [f"temp_lag{lag}" for lag in (0, 1, 2, 3)]
    assert (row["hour"], row["day_of_week"], row["month"]) == (10, 2, 1)
    assert dict(zip(names, features[1], strict=True))["hour"] == 6  # row 30: 01-02 06:00
    assert "location" not in names and features.dtype == np.float32


def test_lightgbm_learns_from_training_windows_only_and_beats_persistence() -> None:
    frame = make_frame(24 * 40)
    horizons = [1, 6, 12]
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], 24, horizons, FRACTIONS)
    model = fit_lightgbm(tensors)
    assert sorted(model.boosters) == [(0, 1), (0, 6), (0, 12)]
    assert model.n_train_windows == tensors.ends["train"].size

    test_ends = tensors.ends["test"]
    forecast = model.predict(tensors, test_ends)
    _, y = windows(tensors, "test")
    assert forecast.shape == y.shape and np.isfinite(forecast).all()
    lightgbm_rmse = np.sqrt(np.mean((forecast - y) ** 2))
    persistence_rmse = np.sqrt(np.mean((persistence_forecast(tensors, test_ends) - y) ** 2))
    assert lightgbm_rmse < persistence_rmse  # the daily cycle is learnable

    # Test-period data changed: the same training/validation windows give the same model.
    last_validation_hour = tensors.times[tensors.ends["validation"]].max() + 12 * 3600
    changed = frame.copy()
    later = changed["time"] > pd.Timestamp(int(last_validation_hour), unit="s", tz="UTC")
    changed.loc[later, ["pm2_5", "temp"]] *= 3.0
    changed_tensors = build_sequence_tensors(changed, None, ["pm2_5"], 24, horizons, FRACTIONS)
    refitted = fit_lightgbm(changed_tensors)
    train_ends = tensors.ends["train"]
    np.testing.assert_array_equal(
        refitted.predict(changed_tensors, train_ends), model.predict(tensors, train_ends)
    )


def with_forecasts(tensors: SequenceTensors) -> SequenceTensors:
    """A perfect 'forecast' of the target for every hour ahead: ``future[i, h-1] = y[i+h]``."""
    rows, max_h = len(tensors.targets), tensors.max_horizon
    index = np.arange(rows)[:, None] + np.arange(1, max_h + 1)[None, :]
    future = np.where(index < rows, tensors.targets[np.minimum(index, rows - 1), 0], np.nan)
    return dataclasses.replace(
        tensors, future=future[:, :, None].astype(np.float32), future_names=["signal"]
    )


def test_both_learned_baselines_use_forecasts_when_the_tensors_carry_them() -> None:
    rng = np.random.default_rng(0)
    frame = counting_frame(24 * 30)
    frame["pm2_5"] = rng.gamma(2.0, 20.0, len(frame))  # no pattern the past could predict
    plain = build_sequence_tensors(frame, ["pm2_5"], ["pm2_5"], 6, [1, 3], FRACTIONS)
    informed = with_forecasts(plain)
    ends = plain.ends["test"]
    _, y = windows(plain, "test")

    def rmse(forecast: np.ndarray) -> float:
        return float(np.sqrt(np.mean((forecast - y) ** 2)))

    names = fit_lightgbm(informed).feature_names
    assert names[-3:] == ["target_hour", "signal_forecast", "signal_forecast_mean_to_h"]
    assert rmse(fit_lightgbm(informed).predict(informed, ends)) < 0.5 * rmse(
        fit_lightgbm(plain).predict(plain, ends)
    )
    assert rmse(fit_ridge(informed).predict(informed, ends)) < 0.1 * rmse(
        fit_ridge(plain).predict(plain, ends)
    )
    # A missing forecast hour does not stop Ridge: it becomes the training mean.
    informed.future[ends[:5]] = np.nan  # type: ignore[index]
    assert np.isfinite(fit_ridge(informed).predict(informed, ends)).all()


def test_lightgbm_reads_nothing_after_the_window_end() -> None:
    """Every value after a window's last hour replaced: its features and forecast unchanged."""
    frame = make_frame(24 * 30)
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], 12, [1, 3, 6], FRACTIONS)
    informed = with_forecasts(tensors)
    model = fit_lightgbm(informed)
    for end in informed.ends["test"][[0, 40, -1]]:
        later = np.arange(len(informed.targets)) > end
        scrambled = dataclasses.replace(
            informed,
            features=np.where(later[:, None], -999.0, informed.features).astype(np.float32),
            targets=np.where(later[:, None], 999.0, informed.targets).astype(np.float32),
        )
        before, _ = window_features(informed, [end])
        after, _ = window_features(scrambled, [end])
        np.testing.assert_array_equal(after, before)
        np.testing.assert_array_equal(
            model.predict(scrambled, [end]), model.predict(informed, [end])
        )
