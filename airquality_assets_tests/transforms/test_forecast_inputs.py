"""A window sees the newest forecast issued at or before its last hour, never a later one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airquality_assets.transforms.forecast_inputs import forecast_block, future_feature_names

HOUR = 3600
T0 = pd.Timestamp("2014-03-01T00:00:00Z")


def forecasts(location: str, issues: list[pd.Timestamp], max_lead: int) -> pd.DataFrame:
    """Each value says which issue made it (temp = issue hour) and for which lead (dew)."""
    rows = [
        {
            "location": location,
            "issue_time": issue,
            "time": issue + pd.Timedelta(hours=lead),
            "lead": lead,
            "temp": float(issue.value // 10**9 // HOUR),
            "dew": float(lead),
            "humidity": 50.0,
            "pressure": 1010.0,
            "windspeed": 10.0,
            "winddir": 90.0,
        }
        for issue in issues
        for lead in range(1, max_lead + 1)
    ]
    return pd.DataFrame(rows)


def hourly_rows(hours: int, locations: int = 1) -> tuple[np.ndarray, np.ndarray]:
    times = np.tile(T0.value // 10**9 + np.arange(hours) * HOUR, locations)
    codes = np.repeat(np.arange(locations, dtype=np.int32), hours)
    return times, codes


def test_each_row_reads_the_newest_issue_at_or_before_it_never_a_later_one() -> None:
    issues = [T0 + pd.Timedelta(hours=h) for h in range(0, 72, 6)]  # every 6 h
    times, codes = hourly_rows(72)
    block = forecast_block(forecasts("a", issues, 48), times, codes, ["a"], ["temp", "dew"], 24)
    used_issue_hour = block[:, :, 0]
    row_hour = (times // HOUR)[:, None]
    known = np.isfinite(used_issue_hour)
    assert known.all()  # an issue at 00:00 covers the first row already
    assert (used_issue_hour <= row_hour).all()  # never issued after the window's end
    assert (row_hour - used_issue_hour < 6).all()  # and the newest one
    # the lead read is the hours from that issue to the target hour
    leads = block[:, :, 1]
    horizons = np.arange(1, 25)[None, :]
    np.testing.assert_array_equal(leads, row_hour - used_issue_hour + horizons)


def test_no_issue_yet_or_one_too_old_to_reach_the_horizon_is_missing() -> None:
    issue = T0 + pd.Timedelta(hours=5)
    times, codes = hourly_rows(40)
    block = forecast_block(forecasts("a", [issue], 30), times, codes, ["a"], ["temp"], 24)
    assert np.isnan(block[:5]).all()  # before the first issue
    assert np.isfinite(block[5:12]).all()  # ages 0..6 h: lead up to 30 h reaches t+24
    assert np.isfinite(block[12, :23]).all() and np.isnan(block[12, 23])  # age 7 h: lead 31


def test_locations_never_share_forecasts_and_derived_features_come_along() -> None:
    times, codes = hourly_rows(12, locations=2)
    frame = pd.concat([forecasts("a", [T0], 48), forecasts("b", [T0 + pd.Timedelta(hours=3)], 48)])
    names = future_feature_names()
    block = forecast_block(frame, times, codes, ["a", "b"], names, 24)
    assert block.shape == (24, 24, len(names))
    b_rows = block[12:]
    assert np.isnan(b_rows[:3]).all() and np.isfinite(b_rows[3:]).all()
    wind_u = block[0, :, names.index("wind_u")]
    np.testing.assert_allclose(wind_u, 10.0, atol=1e-5)  # from the east at 10 km/h
    hour_sin = block[0, :, names.index("hour_sin")]  # of the target hour, 01:00 .. 24:00
    np.testing.assert_allclose(
        hour_sin, np.sin(2 * np.pi * (np.arange(1, 25) % 24) / 24), atol=1e-6
    )


def test_an_empty_forecast_frame_gives_an_all_missing_block() -> None:
    times, codes = hourly_rows(3)
    empty = forecasts("a", [], 48)
    block = forecast_block(empty, times, codes, ["a"], ["temp"], 24)
    assert block.shape == (3, 24, 1) and np.isnan(block).all()


@pytest.mark.parametrize("cadence", [1, 3, 12])
def test_any_cadence_keeps_the_rule(cadence: int) -> None:
    issues = [T0 + pd.Timedelta(hours=h) for h in range(0, 48, cadence)]
    times, codes = hourly_rows(48)
    block = forecast_block(forecasts("a", issues, 48), times, codes, ["a"], ["temp"], 24)
    used = block[:, 0, 0]
    assert (used <= times // HOUR).all() and (times // HOUR - used < cadence).all()


def observed_weather(days: int, location: str = "here") -> pd.DataFrame:
    times = pd.date_range("2021-01-01", periods=24 * days, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "location": pd.array([location] * len(times), dtype="string"),
            "time": times,
            "temp": 5 + rng.normal(0, 3, len(times)),
            "dew": -5 + rng.normal(0, 3, len(times)),
            "humidity": 50.0,
            "pressure": 1015 + rng.normal(0, 2, len(times)),
            "windspeed": 10.0,
            "winddir": 180.0,
        }
    )


def test_issue_hours_without_an_issue_get_a_stand_in_and_issued_ones_are_kept() -> None:
    from airquality_assets.sources.forecast_errors import ForecastErrorModel, stand_in_forecasts
    from airquality_assets.transforms.forecast_inputs import with_stand_ins

    weather = observed_weather(days=3)
    first = pd.Timestamp("2021-01-01T06:00", tz="UTC")
    issued = stand_in_forecasts(weather, [first], "here", range(1, 49), ForecastErrorModel())
    issued["temp"] = 99.0  # marks the issued one: it must come through untouched
    combined, sources = with_stand_ins(issued, weather, 6, ForecastErrorModel(scale=0.0))
    assert (sources.issued, sources.stand_in, sources.kind) == (1, 11, "issued + stand-in")
    assert (combined.loc[combined["issue_time"] == first, "temp"] == 99.0).all()
    # scale 0: a stand-in is the observed weather of its target hour
    others = combined[combined["issue_time"] != first].merge(weather, on="time")
    np.testing.assert_allclose(others["temp_x"], others["temp_y"])
    assert set(combined["issue_time"].dt.hour) == {0, 6, 12, 18}


def test_nothing_is_added_where_every_issue_exists() -> None:
    from airquality_assets.sources.forecast_errors import ForecastErrorModel, stand_in_forecasts
    from airquality_assets.transforms.forecast_inputs import with_stand_ins

    weather = observed_weather(days=2)
    issues = pd.date_range("2021-01-01", "2021-01-02T18:00", freq="6h", tz="UTC")
    issued = stand_in_forecasts(weather, issues, "here", range(1, 49), ForecastErrorModel())
    combined, sources = with_stand_ins(issued, weather, 6, ForecastErrorModel())
    assert (sources.issued, sources.stand_in, sources.kind) == (len(issues), 0, "issued")
    assert len(combined) == len(issued)
