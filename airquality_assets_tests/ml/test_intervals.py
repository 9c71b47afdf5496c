"""Split-conformal intervals: calibrated on one sample, they cover the nominal share of a
fresh one, per horizon, whatever made the point forecast."""

from __future__ import annotations

import numpy as np
import pytest

from airquality_assets.ml.intervals import (
    Intervals,
    conformal_intervals,
    conformal_quantile,
    coverage,
    intervals_of,
)


def _sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts (n, 2 horizons, 1 pollutant) and actuals whose error grows with the horizon
    and is skewed upward (a missed peak), like pollution's."""
    forecast = rng.uniform(80, 300, size=(n, 2, 1))  # actuals stay >= 0
    scale = np.array([5.0, 30.0])[None, :, None]
    actual = forecast + scale * (rng.gamma(2.0, 1.0, size=forecast.shape) - 2.0)
    return actual, forecast


def test_covers_the_nominal_share_of_new_data_per_horizon() -> None:
    rng = np.random.default_rng(0)
    calibration = conformal_intervals(*_sample(rng, 4000), ["pm2_5"], [1, 24], level=0.8)
    actual, forecast = _sample(rng, 20000)
    low, high = calibration.bounds(forecast, ["pm2_5"], [1, 24])
    covered = coverage(actual, low, high)
    assert covered.shape == (2, 1)
    assert np.all(np.abs(covered - 0.8) < 0.02)
    width = (high - low).mean(axis=0)[:, 0]
    assert width[1] > 4 * width[0]  # the 24 h interval is as wide as its errors
    # Skewed errors give an asymmetric interval: more room above than below.
    assert calibration.upper[0][1] > -calibration.lower[0][1]


def test_bounds_are_never_negative_and_unknown_cells_are_nan() -> None:
    calibration = Intervals(0.8, ["pm2_5"], [1], [[-50.0]], [[10.0]], n=100)
    low, high = calibration.bounds(np.array([[[5.0, 5.0]]]), ["pm2_5", "nh3"], [1])
    assert low[0, 0, 0] == 0.0 and high[0, 0, 0] == 15.0
    assert np.isnan(low[0, 0, 1]) and np.isnan(high[0, 0, 1])


def test_round_trips_through_package_metadata() -> None:
    rng = np.random.default_rng(1)
    calibration = conformal_intervals(*_sample(rng, 50), ["pm2_5"], [1, 24])
    again = intervals_of({"intervals": calibration.to_dict()})
    assert again is not None and again.horizons == [1, 24] and again.level == 0.8
    assert again.upper[0] == pytest.approx(calibration.upper[0], abs=1e-4)
    assert intervals_of({}) is None  # a package trained before intervals: none made up


def test_conformal_quantile_is_the_finite_sample_order_statistic() -> None:
    r = np.arange(1.0, 10.0)  # n = 9: (n + 1) 0.9 = 9 -> the largest; 0.1 -> the smallest
    assert conformal_quantile(r, 0.9) == 9.0 and conformal_quantile(r, 0.1) == 1.0
    assert np.isnan(conformal_quantile(np.array([np.nan]), 0.9))
    with pytest.raises(ValueError, match="level"):
        conformal_intervals(np.zeros((3, 1, 1)), np.zeros((3, 1, 1)), ["pm2_5"], [1], level=1.0)
