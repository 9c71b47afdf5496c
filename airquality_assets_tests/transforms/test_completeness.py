"""Completeness against the partition's expected hours (OWM omits missing hours)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airquality_assets.transforms.completeness import (
    expected_hours,
    longest_run,
    measure_completeness,
    windows_hours,
)


def _frame(location: str, hours: pd.DatetimeIndex, **columns: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"location": location, "time": hours, **columns})


def test_expected_hours_of_a_month_and_a_clipped_window() -> None:
    assert len(expected_hours("2014-02-01", "2014-03-01")) == 28 * 24
    clipped = expected_hours("2014-12-01", pd.Timestamp("2014-12-31T05:30Z"))
    assert len(clipped) == 30 * 24 + 5
    assert clipped[-1] == pd.Timestamp("2014-12-31T04:00Z")
    assert len(expected_hours("2014-01-02", "2014-01-01")) == 0


def test_windows_hours_is_a_sorted_union() -> None:
    hours = windows_hours(
        [
            (pd.Timestamp("2014-02-01", tz="UTC"), pd.Timestamp("2014-03-01", tz="UTC")),
            (pd.Timestamp("2014-01-01", tz="UTC"), pd.Timestamp("2014-02-01", tz="UTC")),
        ]
    )
    assert len(hours) == (31 + 28) * 24
    assert hours.is_monotonic_increasing


def test_longest_run_respects_breaks() -> None:
    mask = np.array([True, True, False, True, True, True])
    assert longest_run(mask) == 3
    assert longest_run(np.zeros(3, dtype=bool)) == 0
    breaks = np.array([True, False, False, False, True, False])
    assert longest_run(mask, breaks) == 2


def test_omitted_hours_count_as_missing() -> None:
    """A day of 24 expected hours where the API left 5 hours out (never sent as null)."""
    day = expected_hours("2014-03-04", "2014-03-05")
    kept = day.delete([3, 10, 11, 12, 20])
    values = [1.0] * len(kept)
    values[0] = np.nan  # one stored NaN as well
    frame = _frame("x", kept, pm2_5=values)
    result = measure_completeness(frame, {"x": day}, ["pm2_5"])
    assert round(frame["pm2_5"].isna().mean(), 3) == 0.053  # what the old row-based check saw
    column = result.columns["pm2_5"]
    assert result.expected_hours == 24
    assert result.rows_in_window == 19
    assert column.missing_hours == 6
    assert column.longest_gap_hours == 3
    assert round(column.missing_share, 4) == 0.25
    assert result.never_reported == {}


def test_never_reported_and_absent_columns_are_named_per_location() -> None:
    day = expected_hours("2014-03-04", "2014-03-05")
    a = _frame("a", day, temp=[1.0] * 24, humidity=[np.nan] * 24)
    b = _frame("b", day, temp=[2.0] * 24, humidity=[50.0] * 24)
    result = measure_completeness(
        pd.concat([a, b], ignore_index=True), {"a": day, "b": day}, ["temp", "humidity", "dew"]
    )
    assert result.never_reported == {"humidity": ["a"], "dew": ["a", "b"]}
    assert result.columns["humidity"].missing_hours == 24
    assert result.columns["dew"].missing_hours == 48
    meta = result.as_metadata()
    assert meta["missing_hours"] == {"temp": 0, "humidity": 24, "dew": 48}


def test_empty_columns_have_no_gap_and_months_have_their_own_figures() -> None:
    """dew is never reported: named, not one gap as long as the window; per month, a gap
    across the boundary is cut at it."""
    hours = expected_hours("2014-01-31", "2014-02-02")  # 24 h of January, 24 h of February
    pm = [1.0] * 48
    pm[20:30] = [np.nan] * 10  # 4 h in January, 6 h in February
    frame = _frame("x", hours, pm2_5=pm, dew=[np.nan] * 48)
    result = measure_completeness(frame, {"x": hours}, ["pm2_5", "dew"])
    assert result.empty_columns == ["dew"]
    assert result.columns["pm2_5"].longest_gap_hours == 10
    assert result.columns["dew"].longest_gap_hours == 0
    assert result.columns["dew"].missing_hours == 48
    meta = result.as_metadata()
    assert meta["longest_gap_hours"] == {"pm2_5": 10}
    assert meta["never_reported"] == {"dew": ["x"]}
    january, february = result.per_month["2014-01|x"], result.per_month["2014-02|x"]
    assert january.expected_hours == february.expected_hours == 24
    assert january.columns["pm2_5"].missing_hours == 4
    assert january.columns["pm2_5"].longest_gap_hours == 4
    assert february.columns["pm2_5"].longest_gap_hours == 6
    assert february.never_reported == {"dew": ["x"]}
    assert february.as_metadata()["longest_gap_hours"] == {"pm2_5": 6}
    assert result.by_month["2014-02|x"]["pm2_5"] == 0.25


def test_rows_outside_the_window_and_unknown_locations_are_ignored() -> None:
    day = expected_hours("2014-03-04", "2014-03-05")
    frame = _frame("x", expected_hours("2014-03-03", "2014-03-06"), no2=[1.0] * 72)
    result = measure_completeness(frame, {"x": day, "y": day}, ["no2"])
    assert result.rows_in_window == 24
    assert result.columns["no2"].missing_hours == 24  # all of location y
    assert result.never_reported == {"no2": ["y"]}


def test_months_over_a_threshold_are_found_even_when_the_total_is_fine() -> None:
    """One month never stored among twelve is 8 % of the year but 100 % of that month."""
    year = expected_hours("2014-01-01", "2015-01-01")
    stored = year[(year.month != 2)]
    frame = _frame("x", stored, pm2_5=[1.0] * len(stored))
    result = measure_completeness(frame, {"x": year}, ["pm2_5", "temp"])
    assert result.columns["pm2_5"].missing_share < 0.1
    assert result.months_over(["pm2_5"], 0.2) == {"2014-02|x": {"pm2_5": 1.0}}
    assert result.by_month["2014-03|x"] == {"pm2_5": 0.0, "temp": 1.0}


def test_a_column_a_station_never_reports_is_excused_once_missing_data_are_not() -> None:
    """Station x has no humidity sensor; station y sent no weather at all in the window."""
    months = expected_hours("2014-01-01", "2014-04-01")
    frame = pd.concat(
        [
            _frame("x", months, temp=[5.0] * len(months), humidity=[np.nan] * len(months)),
            _frame("y", months, temp=[np.nan] * len(months), humidity=[np.nan] * len(months)),
        ],
        ignore_index=True,
    )
    result = measure_completeness(frame, {"x": months, "y": months}, ["temp", "humidity"])
    assert result.excused(["temp", "humidity"]) == {"humidity": ["x"]}  # y: data missing
    verdict = result.judge(["temp", "humidity"], 0.2, excusable=["temp", "humidity"])
    assert not verdict.passed
    assert verdict.excused == {"humidity": ["x"]}
    assert {k for k, v in verdict.months.items() if "humidity" in v} == {
        "2014-01|y",
        "2014-02|y",
        "2014-03|y",
    }  # x's humidity is named once, not listed month after month
    assert verdict.judged["humidity"].expected_hours == len(months)  # y's hours only

    only_x = measure_completeness(
        frame[frame["location"] == "x"], {"x": months}, ["temp", "humidity"]
    )
    verdict = only_x.judge(["temp", "humidity"], 0.2, excusable=["temp", "humidity"])
    assert verdict.passed and verdict.excused == {"humidity": ["x"]}
    # not excusable (a target): never reported still fails
    assert not only_x.judge(["temp", "humidity"], 0.2).passed


def test_weather_mostly_missing_fails_though_the_targets_are_whole() -> None:
    """35 of 36 weather months missing: temp in 744 of 26,280 hours."""
    hours = expected_hours("2012-01-01", "2015-01-01")
    temp = np.where(hours < pd.Timestamp("2012-02-01", tz="UTC"), 5.0, np.nan)
    frame = _frame("x", hours, pm2_5=[1.0] * len(hours), temp=temp)
    result = measure_completeness(frame, {"x": hours}, ["pm2_5", "temp"])
    assert result.columns["temp"].missing_hours == len(hours) - 744
    assert result.judge(["pm2_5"], 0.2).passed  # what the old check judged
    verdict = result.judge(["pm2_5", "temp"], 0.2, excusable=["temp"])
    assert not verdict.passed and set(verdict.failing) == {"temp"}
    assert verdict.excused == {}  # temp has values in one month: not "never reported"
    assert len(verdict.months) == 35
