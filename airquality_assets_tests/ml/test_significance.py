"""Diebold-Mariano: a hand-computed example, its size under the null, its power, symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from airquality_assets.ml.significance import (
    HOUR,
    diebold_mariano,
    dm_by_horizon,
    dm_on_mean,
    format_p,
    horizon_ranges,
    verdict,
)

D = np.array([1.0, -1.0, 2.0, 0.0, 3.0])  # a loss differential small enough to do by hand
TIMES = np.arange(5) * HOUR


def test_horizon_one_matches_the_hand_computation() -> None:
    # mean 1; deviations 0, -2, 1, -1, 2 -> gamma0 = 10 / 5 = 2; DM = 1 / sqrt(2 / 5);
    # HLN (h = 1): sqrt((5 + 1 - 2) / 5)
    result = diebold_mariano(D, np.zeros(5), TIMES, horizon=1)
    expected = (1 / math.sqrt(2 / 5)) * math.sqrt(4 / 5)
    assert result.statistic == pytest.approx(expected)
    assert result.mean_difference == pytest.approx(1.0)
    assert result.p_value == pytest.approx(2 * stats.t.sf(expected, 4))
    assert result.p_a_worse == pytest.approx(stats.t.sf(expected, 4))
    assert (result.n, result.hours, result.reason) == (5, 5, None)


def test_horizon_two_adds_the_first_autocovariance_with_bartlett_weight() -> None:
    # gamma1 = (0*-2 + -2*1 + 1*-1 + -1*2) / 5 = -1; long run 2 + 2 * 0.5 * -1 = 1;
    # DM = 1 / sqrt(1 / 5); HLN (h = 2): sqrt((5 + 1 - 4 + 2 / 5) / 5)
    result = diebold_mariano(D, np.zeros(5), TIMES, horizon=2)
    assert result.statistic == pytest.approx(math.sqrt(5) * math.sqrt(2.4 / 5))


def test_a_missing_hour_breaks_the_lag_pairs_across_it() -> None:
    # Hours 0, 1, 3, 4 (hour 2 missing): d = 1, -1, 0, 3; mean 0.75; deviations
    # 0.25, -1.75, -0.75, 2.25; lag-1 pairs only (0,1) and (3,4).
    times = np.array([0, 1, 3, 4]) * HOUR
    dev = np.array([0.25, -1.75, -0.75, 2.25])
    gamma0 = (dev @ dev) / 4
    gamma1 = (dev[0] * dev[1] + dev[2] * dev[3]) / 4
    long_run = gamma0 + 2 * 0.5 * gamma1
    correction = math.sqrt((4 + 1 - 4 + 2 / 4) / 4)
    result = diebold_mariano([1, -1, 0, 3], [0, 0, 0, 0], times, horizon=2)
    assert result.statistic == pytest.approx(0.75 / math.sqrt(long_run / 4) * correction)


def ma_errors(rng: np.random.Generator, n: int, order: int) -> np.ndarray:
    """MA(order) errors with unit-ish variance: overlapping multi-step forecast errors."""
    shocks = rng.standard_normal(n + order)
    return np.convolve(shocks, np.ones(order + 1) / math.sqrt(order + 1), mode="valid")


def test_equally_good_forecasts_are_rejected_about_alpha_of_the_time() -> None:
    # Two forecasts with equally large, independent MA(5) errors (h = 6): under the null the
    # p-values are roughly uniform. Without the HAC term the rejection rate at 5 % would be
    # far higher, since neighbouring losses are strongly correlated.
    rng = np.random.default_rng(7)
    p_values = []
    for _ in range(300):
        a, b = ma_errors(rng, 720, 5), ma_errors(rng, 720, 5)
        p_values.append(diebold_mariano(a**2, b**2, np.arange(720) * HOUR, horizon=6).p_value)
    p = np.asarray(p_values)
    assert 0.01 <= (p < 0.05).mean() <= 0.10
    assert 0.4 <= np.median(p) <= 0.6


def test_ignoring_the_overlap_would_reject_too_often() -> None:
    """The same null, tested with lag 0: the contrast that shows the HAC term matters."""
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(300):
        a, b = ma_errors(rng, 720, 5), ma_errors(rng, 720, 5)
        rejected += diebold_mariano(a**2, b**2, np.arange(720) * HOUR, horizon=1).p_value < 0.05
    assert rejected / 300 > 0.2


def test_a_clearly_better_forecast_has_a_tiny_p_value() -> None:
    rng = np.random.default_rng(1)
    truth = rng.standard_normal(720)
    good = truth + 0.5 * ma_errors(rng, 720, 2)
    bad = truth + 1.0 * ma_errors(rng, 720, 2)
    result = diebold_mariano((good - truth) ** 2, (bad - truth) ** 2, np.arange(720) * HOUR, 3)
    assert result.p_value < 1e-6 and result.p_a_better < 1e-6 and result.p_a_worse > 0.99
    assert verdict(result) == "better"


def test_swapping_the_forecasts_flips_the_sign_and_keeps_the_two_sided_p() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(200) ** 2, 1.1 * rng.standard_normal(200) ** 2
    times = np.arange(200) * HOUR
    ab, ba = diebold_mariano(a, b, times, 4), diebold_mariano(b, a, times, 4)
    assert ab.statistic == pytest.approx(-ba.statistic)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.p_a_better == pytest.approx(ba.p_a_worse)


def test_pairs_with_a_missing_loss_are_skipped() -> None:
    with_nan = diebold_mariano([1, np.nan, -1, 2, 0, 3], [0, 0, np.nan, 0, 0, 0],
                               np.arange(6) * HOUR, 1)  # fmt: skip
    dropped = diebold_mariano([1, 2, 0, 3], [0, 0, 0, 0], np.array([0, 3, 4, 5]) * HOUR, 1)
    assert with_nan.n == 4
    assert with_nan.statistic == pytest.approx(dropped.statistic)


def test_identical_forecasts_give_no_p_value_and_say_why() -> None:
    loss = np.arange(10.0)
    result = diebold_mariano(loss, loss, np.arange(10) * HOUR, 1)
    assert math.isnan(result.p_value) and "constant" in str(result.reason)
    assert verdict(result) == "untested"
    assert format_p(result.p_value) == "n/a"
    empty = diebold_mariano([np.nan], [1.0], [0], 1)
    assert empty.n == 0 and math.isnan(empty.p_value) and empty.reason


def test_copies_of_one_station_count_once() -> None:
    """Locations are averaged per hour first: a duplicated station adds no evidence."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(100) ** 2, rng.standard_normal(100) ** 2
    times = np.arange(100) * HOUR
    one = diebold_mariano(a, b, times, 2)
    two = diebold_mariano(np.tile(a, 2), np.tile(b, 2), np.tile(times, 2), 2)
    assert two.n == 200 and two.hours == 100
    assert two.statistic == pytest.approx(one.statistic)


def test_by_horizon_and_on_the_mean_use_each_horizon_and_the_longest_lag() -> None:
    rng = np.random.default_rng(11)
    n, horizons = 300, [1, 2, 3]
    truth = rng.standard_normal((n, 3, 1))
    a = truth + 0.5 * rng.standard_normal((n, 3, 1))
    b = truth + rng.standard_normal((n, 3, 1))
    b[0, 2, 0] = np.nan
    times = np.arange(n) * HOUR
    table = dm_by_horizon(truth, a, b, times, ["pm2_5"], horizons)
    assert table["horizon"].tolist() == horizons
    assert table["n"].tolist() == [n, n, n - 1]
    direct = diebold_mariano((a[:, 1, 0] - truth[:, 1, 0]) ** 2,
                             (b[:, 1, 0] - truth[:, 1, 0]) ** 2, times, 2)  # fmt: skip
    assert table.loc[1, "statistic"] == pytest.approx(direct.statistic)
    mean = dm_on_mean(truth, a, b, times, ["pm2_5"], horizons)["pm2_5"]
    assert mean.n == n - 1 and mean.horizon == 3 and mean.p_a_better < 1e-6


def test_p_values_and_horizon_runs_read_well() -> None:
    assert [format_p(p) for p in (0.0004, 0.003, 0.0312, 0.18, float("nan"))] == [
        "<0.001", "0.003", "0.03", "0.18", "n/a",
    ]  # fmt: skip
    assert horizon_ranges([8, 1, 2, 3, 5, 7]) == "1-3, 5, 7-8 h"
    assert horizon_ranges([4]) == "4 h" and horizon_ranges([]) == ""
