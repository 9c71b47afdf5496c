"""A recalibrated sensor seen against the champion's forecasts: the hours the gate leaves out."""

from __future__ import annotations

import numpy as np
import pytest

from airquality_assets.monitoring.level_shift import DAY, detect, row_flags

HOURS = 80 * 24
START = 1_385_856_000  # 2013-12-01 00:00 UTC
FAULT_DAY = 76  # the last 4 days


def _gate(factor: float, seed: int = 3):
    """Hourly windows (24 horizons) of a bursty pollutant and a forecast that follows it
    with a day-to-day bias (under on some days, over on others) and hourly noise; from
    ``FAULT_DAY`` on the actuals read ``factor`` x the truth and the forecast follows the
    scaled inputs only a third of the way (a model reverting to its usual levels)."""
    rng = np.random.default_rng(seed)
    times = START + 3600 * np.arange(HOURS, dtype=np.int64)
    level = np.exp(np.cumsum(rng.normal(0, 0.08, HOURS)) * 0.5 + 4.0)
    truth = level[:, None] * rng.lognormal(0, 0.3, (HOURS, 24))
    daily_bias = np.repeat(rng.normal(0, 0.12, HOURS // 24), 24)
    forecast = level[:, None] * np.exp(daily_bias)[:, None] * rng.lognormal(0, 0.2, (HOURS, 24))
    faulty = times >= START + FAULT_DAY * DAY
    actual = truth.copy()
    actual[faulty] *= factor
    forecast[faulty] *= factor ** (1 / 3)
    return times, actual, forecast


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_clean_data_has_no_shift(seed: int) -> None:
    assert detect(*_gate(1.0, seed)) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_recalibration_is_found_from_its_onset_day(seed: int) -> None:
    shift = detect(*_gate(1.5, seed))
    assert shift is not None
    assert shift.onset == START + FAULT_DAY * DAY
    assert shift.days == 4 and 1.15 < shift.factor < 1.5


def test_a_shift_that_ended_is_not_this_detectors_business() -> None:
    times, actual, forecast = _gate(1.5)
    # the fault lasted days 60-66 and is over by the gate's newest day
    actual = actual.copy()
    faulty = times >= START + FAULT_DAY * DAY
    actual[faulty] /= 1.5
    forecast[faulty] /= 1.5 ** (1 / 3)
    window = (times >= START + 60 * DAY) & (times < START + 66 * DAY)
    actual[window] *= 1.5
    assert detect(times, actual, forecast) is None


def test_row_flags_mark_every_hour_of_the_location_from_the_onset() -> None:
    times, actual, forecast = _gate(1.5)
    # two locations' rows side by side; only the second one's sensor was recalibrated
    _, clean_actual, clean_forecast = _gate(1.0)
    rows_t = np.r_[times, times]
    codes = np.r_[np.zeros(HOURS, np.int32), np.ones(HOURS, np.int32)]
    ends = np.arange(2 * HOURS)
    flags, shifts = row_flags(
        rows_t,
        codes,
        ends,
        np.r_[clean_actual, actual],
        np.r_[clean_forecast, forecast],
        "pm2_5",
    )
    assert list(flags) == ["pm2_5 scale shift"] and list(shifts) == ["1"]
    flagged = flags["pm2_5 scale shift"]
    onset = START + FAULT_DAY * DAY
    np.testing.assert_array_equal(flagged, (codes == 1) & (rows_t >= onset))
