"""Drift statistics against hand-computed values, and the seasonal reference selection."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from airquality_assets.monitoring.drift import (
    ERROR,
    NOT_ENOUGH_DATA,
    OK,
    DriftThresholds,
    compare,
    longest_run,
    psi,
    seasonal_reference,
)


def test_psi_identical_samples_is_zero() -> None:
    reference = np.arange(100.0)
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_hand_computation() -> None:
    # Reference 0..99: deciles put 10 values in each of 10 bins (share 0.1).
    reference = np.arange(100.0)
    # Current: 20 values in the first bin, 10 in each of bins 2-9, none in the last.
    current = np.concatenate([np.arange(10.0), np.arange(10.0), np.arange(10.0, 90.0)])
    expected = (0.2 - 0.1) * math.log(0.2 / 0.1) + (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert psi(reference, current) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.75940, abs=1e-4)


def test_psi_ignores_nan_and_rejects_empty() -> None:
    reference = np.arange(100.0)
    with_nan = np.concatenate([reference, [np.nan] * 5])
    assert psi(reference, with_nan) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        psi(reference, np.array([np.nan]))


def test_longest_run_counts_repeats_not_missing() -> None:
    assert longest_run(np.array([1, 1, 1, 2, 2, np.nan, np.nan, 3.0])) == 3
    assert longest_run(np.array([np.nan, np.nan])) == 0
    assert longest_run(np.array([])) == 0


def _hourly(start: str, end: str, **columns) -> pd.DataFrame:
    times = pd.date_range(start, end, freq="h", tz="UTC", inclusive="left")
    frame = pd.DataFrame({"location": "x", "time": times})
    for name, fn in columns.items():
        frame[name] = fn(np.arange(len(times)), times)
    return frame


def test_seasonal_reference_takes_same_weeks_of_training_years() -> None:
    history = _hourly("2012-01-01", "2014-06-01", pm2_5=lambda i, _t: np.ones(len(i)))
    ref = seasonal_reference(
        history,
        window_start=datetime(2014, 3, 1, tzinfo=UTC),
        window_end=datetime(2014, 3, 8, tzinfo=UTC),
        train_start=None,
        train_end=datetime(2014, 1, 1, tzinfo=UTC),
        margin_days=14,
    )
    times = pd.DatetimeIndex(ref["time"])
    assert set(times.year) == {2012, 2013}  # never the window's own year (after training)
    # Window days of year 60..66 (2014) +- 14 days: 46..80 in each training year.
    assert times.dayofyear.min() == 46 and times.dayofyear.max() == 80
    assert set(times.month) == {2, 3}


def test_seasonal_reference_wraps_around_new_year() -> None:
    history = _hourly("2012-01-01", "2014-01-01", pm2_5=lambda i, _t: np.ones(len(i)))
    ref = seasonal_reference(
        history,
        window_start=datetime(2014, 1, 2, tzinfo=UTC),
        window_end=datetime(2014, 1, 9, tzinfo=UTC),
        train_start=datetime(2012, 1, 1, tzinfo=UTC),
        train_end=datetime(2014, 1, 1, tzinfo=UTC),
        margin_days=7,
    )
    months = set(pd.DatetimeIndex(ref["time"]).month)
    assert months == {1, 12}  # late December counts as "near" early January


def _noise(seed: int, mean: float, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 10.0, n)


def test_compare_flags_a_shift_and_passes_the_same_distribution() -> None:
    reference = pd.DataFrame({"pm2_5": _noise(1, 100.0, 2000), "temp": _noise(2, 5.0, 2000)})
    same = pd.DataFrame({"pm2_5": _noise(3, 100.0, 168), "temp": _noise(4, 5.0, 168)})
    shifted = same.assign(pm2_5=same["pm2_5"] * 1.5)

    unshifted = compare(same, reference, window_hours=168, features=["pm2_5", "temp"])
    assert unshifted.status == OK, unshifted.reason
    result = compare(shifted, reference, window_hours=168, features=["pm2_5", "temp"])
    assert result.status == ERROR
    by_feature = {f.feature: f for f in result.features}
    assert by_feature["pm2_5"].status == ERROR and by_feature["temp"].status == OK
    assert result.score == by_feature["pm2_5"].out_of_range
    assert by_feature["pm2_5"].out_of_range > 0.9  # 150 +- 15 against 100 +- 10: ~95 %
    assert "pm2_5" in result.reason
    # Wasserstein distance in reference sd: a 1.5x scale of mean 100 moves ~50 (5 sd).
    assert by_feature["pm2_5"].wasserstein_sd == pytest.approx(5.0, rel=0.15)


def test_wasserstein_and_ks_on_a_hand_made_shift() -> None:
    reference = pd.DataFrame({"pm2_5": np.tile(np.arange(100.0), 4)})
    current = pd.DataFrame({"pm2_5": np.arange(100.0) + 10.0})
    result = compare(current, reference, window_hours=100, features=["pm2_5"])
    f = result.features[0]
    assert f.ks_statistic == pytest.approx(0.10)
    assert f.wasserstein_sd == pytest.approx(10.0 / np.std(np.arange(100.0)))


def test_stuck_sensor_is_an_error_even_inside_the_normal_range() -> None:
    reference = pd.DataFrame({"pm2_5": _noise(1, 100.0, 2000)})
    values = _noise(3, 100.0, 168)
    values[10:58] = 100.0  # 48 h frozen at a perfectly normal value
    result = compare(pd.DataFrame({"pm2_5": values}), reference, 168, features=["pm2_5"])
    assert result.features[0].stuck_hours == 48
    assert result.status == ERROR


def test_not_enough_data_names_n_of_n_and_never_alarms() -> None:
    reference = pd.DataFrame({"pm2_5": _noise(1, 100.0, 2000)})
    sparse = pd.DataFrame({"pm2_5": np.r_[_noise(2, 500.0, 50), [np.nan] * 118]})
    result = compare(sparse, reference, 168, features=["pm2_5"])
    assert result.status == NOT_ENOUGH_DATA
    assert result.reason == "not enough data: 50 of 168 hours observed (need 84)"
    assert math.isnan(result.score)
    small_ref = compare(
        pd.DataFrame({"pm2_5": _noise(2, 100.0, 168)}),
        reference.iloc[:100],
        168,
        features=["pm2_5"],
        thresholds=DriftThresholds(min_reference_rows=336),
    )
    assert small_ref.status == NOT_ENOUGH_DATA
    assert "100 of 336" in small_ref.reason


def test_faults_reach_the_api_bodies() -> None:
    import json
    from datetime import timedelta

    from airquality_assets.monitoring.faults import (
        Fault,
        FaultyAirPollutionSource,
        FaultyWeatherSource,
    )
    from airquality_assets.sources.replay import (
        BEIJING,
        ReplayAirPollutionSource,
        ReplayWeatherSource,
    )

    start = datetime(2014, 3, 1, 12, tzinfo=UTC)
    now = datetime(2014, 3, 3, tzinfo=UTC)
    air = ReplayAirPollutionSource(now=now)
    day = (datetime(2014, 3, 1, tzinfo=UTC), datetime(2014, 3, 1, 23, tzinfo=UTC))

    def pm(source) -> dict[int, float]:
        doc = json.loads(source.history(BEIJING, *day).body)
        return {i["dt"]: i["components"]["pm2_5"] for i in doc["list"]}

    true = pm(air)
    scaled = pm(FaultyAirPollutionSource(air, Fault("recalibration", start)))
    cut = int(start.timestamp())
    assert all(scaled[t] == true[t] for t in true if t < cut)
    assert all(scaled[t] == pytest.approx(true[t] * 1.5) for t in true if t >= cut)
    stuck = pm(FaultyAirPollutionSource(air, Fault("stuck", start)))
    before = max(t for t in true if t < cut)
    assert {stuck[t] for t in true if t >= cut} == {true[before]}

    weather = ReplayWeatherSource(now=now)
    f = FaultyWeatherSource(weather, Fault("fahrenheit", start + timedelta(hours=6)))
    hours = json.loads(f.timeline(BEIJING, day[0].date(), day[0].date()).body)["days"][0]["hours"]
    plain = json.loads(weather.timeline(BEIJING, day[0].date(), day[0].date()).body)["days"][0][
        "hours"
    ]
    assert hours[0]["temp"] == plain[0]["temp"]
    assert hours[-1]["temp"] == pytest.approx(plain[-1]["temp"] * 9 / 5 + 32, abs=0.05)


def test_the_table_says_which_rule_decided_and_sets_the_reading_statistics_apart() -> None:
    """A stuck sensor is an error at a low out-of-range share: the table names the rule, and
    PSI / KS stand under "for reading only", so neither contradicts the status."""
    reference = pd.DataFrame({"pm2_5": _noise(1, 100.0, 2000), "temp": _noise(2, 5.0, 2000)})
    values = _noise(3, 100.0, 168)
    values[10:58] = 100.0
    window = pd.DataFrame({"pm2_5": values, "temp": _noise(4, 5.0, 168)})
    result = compare(window, reference, 168, features=["pm2_5", "temp"])
    by_feature = {f.feature: f for f in result.features}
    assert by_feature["pm2_5"].decided_by == "stuck 48 h >= 24 h"
    assert by_feature["temp"].decided_by == "" and by_feature["temp"].status == OK
    decides, reading = result.table_markdown().split("**For reading only**")
    assert "| pm2_5 | error | stuck 48 h >= 24 h |" in decides
    assert "PSI" not in decides and "PSI" in reading
    assert "| temp | ok | - |" in decides
    widest = max(len(line) for line in result.table_markdown().splitlines())
    assert widest < 100  # fits beside its label in the asset page


def test_an_out_of_range_week_names_its_share_and_the_threshold() -> None:
    reference = pd.DataFrame({"pm2_5": _noise(1, 100.0, 2000)})
    shifted = pd.DataFrame({"pm2_5": _noise(3, 100.0, 168) * 1.5})
    (feature,) = compare(shifted, reference, 168, features=["pm2_5"]).features
    assert feature.decided_by.startswith("out of range 9")
    assert ">= 50%" in feature.decided_by and "; last 24 h out of range 9" in feature.decided_by
