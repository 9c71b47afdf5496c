"""The drift check replayed hour by hour: which hours the gate must leave out."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from airquality_assets.columns import TIME
from airquality_assets.monitoring.faults import Fault, apply_to_frame
from airquality_assets.monitoring.flags import (
    evaluation_ends,
    flag_hours,
    recent_flags,
    tensor_flags,
)
from airquality_assets.transforms.windowing import build_sequence_tensors, relative_split

SEEN_UNTIL = datetime(2014, 2, 1, tzinfo=UTC)
FAULT_AT = datetime(2014, 3, 10, 5, tzinfo=UTC)


def _history() -> pd.DataFrame:
    """Three winters and springs of plausible hourly readings (seasonal temperature)."""
    times = pd.date_range("2011-06-01", "2014-03-31T23:00", freq="h", tz="UTC")
    rng = np.random.default_rng(11)
    day = times.dayofyear.to_numpy()
    seasonal = 12 - 14 * np.cos(2 * np.pi * (day - 15) / 365)
    temp = (
        seasonal + 4 * np.sin(2 * np.pi * times.hour.to_numpy() / 24) + rng.normal(0, 2, len(times))
    )
    return pd.DataFrame(
        {
            "location": "x",
            TIME: times,
            "pm2_5": np.round(rng.gamma(1.5, 60.0, len(times))),
            "temp": np.round(temp, 1),
        }
    )


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return _history()


def _flags(frame: pd.DataFrame):
    return flag_hours(
        frame, datetime(2014, 3, 1, tzinfo=UTC), SEEN_UNTIL, features=["pm2_5", "temp"]
    )


def test_clean_data_flags_nothing(history: pd.DataFrame) -> None:
    assert _flags(history).counts() == {}


def test_one_cold_dry_day_is_not_a_fault(history: pd.DataFrame) -> None:
    """A real winter day far below the reference range (the bundled data's 2014-02-03,
    dew point -40 degC): the newest-day rule alerts, but the week is not faulty data."""
    cold = history.copy()
    day = cold[TIME].between(
        pd.Timestamp(FAULT_AT), pd.Timestamp(FAULT_AT) + pd.Timedelta(hours=23)
    )
    cold.loc[day, "temp"] = -40.0 + np.arange(int(day.sum())) % 5  # varies: not stuck
    assert _flags(cold).counts() == {}


def test_a_stuck_sensor_flags_exactly_its_frozen_hours(history: pd.DataFrame) -> None:
    stuck = apply_to_frame(history, Fault("stuck", FAULT_AT))
    flags = _flags(stuck)
    assert list(flags.by_reason) == ["pm2_5 stuck"]
    frozen = stuck[TIME].between(
        pd.Timestamp(FAULT_AT), pd.Timestamp(FAULT_AT) + pd.Timedelta(hours=47)
    )
    flagged = flags.by_reason["pm2_5 stuck"]
    # the run of repeated values: the 48 frozen hours and the last real reading they repeat
    assert (flagged & ~frozen).sum() <= 1 and (frozen & ~flagged).sum() == 0


def test_a_unit_change_flags_every_hour_of_the_weeks_it_is_seen_in(
    history: pd.DataFrame,
) -> None:
    shifted = apply_to_frame(history, Fault("fahrenheit", FAULT_AT))
    flags = _flags(shifted)
    assert "temp out of range" in flags.by_reason
    flagged = flags.by_reason["temp out of range"]
    times = shifted[TIME]
    assert flagged[times >= pd.Timestamp(FAULT_AT)].all()
    # the week of the first evaluation at ERROR (the first midnight with half a week of
    # faulty hours: 03-14, 91 h after the change) and nothing before it
    first_error = pd.Timestamp(FAULT_AT).normalize() + pd.Timedelta(days=4)
    week = times > first_error - pd.Timedelta(days=7)
    assert flagged[week].all() and not flagged[~week].any()


def test_evaluations_are_daily_and_end_at_the_newest_hour() -> None:
    ends = evaluation_ends(datetime(2014, 3, 1, 5, tzinfo=UTC), datetime(2014, 3, 3, 7, tzinfo=UTC))
    assert [e.isoformat() for e in ends] == [
        "2014-03-02T00:00:00+00:00",
        "2014-03-03T00:00:00+00:00",
        "2014-03-03T07:00:00+00:00",
    ]


def test_tensor_flags_mark_the_rows_of_the_tensors(history: pd.DataFrame) -> None:
    stuck = apply_to_frame(history, Fault("stuck", FAULT_AT))
    tensors = build_sequence_tensors(
        stuck, ["pm2_5", "temp"], ["pm2_5"], 24, range(1, 25), relative_split(stuck[TIME].max())
    )
    flags = tensor_flags(tensors, SEEN_UNTIL)
    assert list(flags) == ["pm2_5 stuck"]
    rows = np.flatnonzero(flags["pm2_5 stuck"])
    times = pd.to_datetime(tensors.times[rows], unit="s", utc=True)
    assert times.min() <= pd.Timestamp(FAULT_AT) and len(rows) in (48, 49)
    assert np.all(np.diff(tensors.times[rows]) == 3600)


def test_the_drift_check_stays_open_while_flagged_hours_are_in_its_week(
    history: pd.DataFrame,
) -> None:
    stuck = apply_to_frame(history, Fault("stuck", FAULT_AT))
    at = pd.Timestamp(FAULT_AT)
    # four days after the 48 frozen hours ended, the day's own check sees no stuck run of
    # 24 h in the newest day, but the week still holds the frozen hours
    four_days_on = recent_flags(stuck, at + pd.Timedelta(days=6), None, SEEN_UNTIL, ["pm2_5"])
    assert four_days_on == {"pm2_5 stuck": 49}
    a_week_later = recent_flags(stuck, at + pd.Timedelta(days=10), None, SEEN_UNTIL, ["pm2_5"])
    assert a_week_later == {}
    assert recent_flags(history, at + pd.Timedelta(days=6), None, SEEN_UNTIL, ["pm2_5"]) == {}
