"""Issued forecasts: inputs end at the issue hour, a champion reading weather forecasts gets
the newest issued at or before it (never a later one), and a stored forecast is never
rewritten."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from airquality_assets.monitoring.forecasting import (
    INCOMPLETE_WINDOW,
    NO_WEATHER_FORECAST,
    WEATHER_FORECAST_INPUT,
    ForecastStore,
    inputs_missing_since,
    issue,
    issue_forecast_inputs,
    issue_hours,
    issuing_verdict,
)
from airquality_assets.sources.forecast_errors import ForecastErrorModel, stand_in_forecasts
from airquality_assets.transforms.forecast_inputs import future_feature_names

DAY = date(2014, 3, 2)
COMPUTED_AT = datetime(2014, 3, 2, 23, 10, tzinfo=UTC)


def _observations() -> pd.DataFrame:
    times = pd.date_range("2014-03-01", "2014-03-03", freq="h", tz="UTC")
    return pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": np.arange(len(times), dtype=float),
         "temp": 1.0}
    )  # fmt: skip


def _model(offset: float):
    """A stand-in forward pass: last pm2_5 in the window + offset, for 2 horizons."""

    def forward(x: np.ndarray) -> np.ndarray:
        last = x[:, -1, 0]
        return np.stack([last + offset, last + 2 * offset], axis=1)[:, :, None]

    return forward


def _issue(hours, model, version: str, observations: pd.DataFrame | None = None):
    obs = _observations() if observations is None else observations
    return issue(obs, "x", hours, model, ["pm2_5", "temp"], ["pm2_5"], 3, [1, 2], "m", version,
                 computed_at=COMPUTED_AT)  # fmt: skip


def test_issue_hours_stop_at_the_clock() -> None:
    hours = issue_hours(DAY, datetime(2014, 3, 2, 5, 30, tzinfo=UTC))
    assert list(hours.hour) == [0, 1, 2, 3, 4, 5]


def test_inputs_end_at_the_issue_hour() -> None:
    hours = issue_hours(DAY, datetime(2014, 3, 2, 1, tzinfo=UTC))
    frame, report = _issue(hours, _model(10.0), "1")
    assert report.skipped == {} and report.filled == {}
    first = frame[frame["issued_at"] == hours[0]].set_index("horizon")
    # pm2_5 at 2014-03-02T00 is 24 (hours since 03-01T00); persistence is that value.
    assert first.loc[1, "forecast"] == 34.0 and first.loc[2, "forecast"] == 44.0
    assert first.loc[1, "last_observed"] == 24.0
    assert first.loc[2, "target_time"] == pd.Timestamp("2014-03-02T02:00Z")
    assert (frame["computed_at"] == pd.Timestamp(COMPUTED_AT)).all()
    assert (frame["filled_inputs"] == "").all()


def test_a_gap_in_the_target_skips_that_hour_and_says_since_when() -> None:
    obs = _observations()
    obs.loc[obs["time"] == pd.Timestamp("2014-03-01T23:00Z"), "pm2_5"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 3, tzinfo=UTC))
    frame, report = issue(obs, "x", hours, _model(1.0), ["pm2_5"], ["pm2_5"], 3, [1, 2], "m",
                          "1")  # fmt: skip
    assert report.skipped == {
        INCOMPLETE_WINDOW: ["2014-03-02T00:00:00+00:00", "2014-03-02T01:00:00+00:00"]
    }
    assert report.skipped_hours == 2
    assert report.missing_since == {"pm2_5": "2014-03-01T23:00:00+00:00"}
    assert sorted(set(frame["issued_at"].dt.hour)) == [2, 3]


def test_a_missing_weather_input_is_filled_from_its_last_reading_and_flagged() -> None:
    """A temperature sensor gone (e.g. readings in Fahrenheit fail the bounds): forecasting
    goes on with the last reading, and each forecast says so."""
    obs = _observations()
    gone = obs["time"] >= pd.Timestamp("2014-03-02T01:00Z")
    obs.loc[gone, "temp"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 3, tzinfo=UTC))
    frame, report = _issue(hours, _model(1.0), "1", obs)
    assert report.skipped == {}
    assert report.filled == {"temp": 3}  # the windows ending at 01, 02 and 03
    assert report.missing_since == {"temp": "2014-03-02T01:00:00+00:00"}
    by_hour = frame.groupby(frame["issued_at"].dt.hour)["filled_inputs"].first()
    assert list(by_hour) == ["", "temp", "temp", "temp"]
    # beyond the fill limit the hour is not forecast
    _, limited = issue(obs, "x", hours, _model(1.0), ["pm2_5", "temp"], ["pm2_5"], 3, [1, 2],
                       "m", "1", fill_limit_hours=1)  # fmt: skip
    assert limited.skipped == {
        INCOMPLETE_WINDOW: ["2014-03-02T02:00:00+00:00", "2014-03-02T03:00:00+00:00"]
    }


def test_issued_forecasts_are_not_rewritten_on_rerun(tmp_path) -> None:
    store = ForecastStore(tmp_path)
    morning = issue_hours(DAY, datetime(2014, 3, 2, 5, tzinfo=UTC))
    first, _ = _issue(morning, _model(10.0), "1")
    assert store.append("x", DAY, first) == (len(first), 0)

    # Later the same day, a new champion (v2) re-runs the partition.
    evening = issue_hours(DAY, datetime(2014, 3, 2, 8, tzinfo=UTC))
    second, _ = _issue(evening, _model(-5.0), "2")
    added, kept = store.append("x", DAY, second)
    assert added == 3 * 2 and kept == 6 * 2

    stored = store.read_day("x", DAY)
    by_hour = stored.groupby(stored["issued_at"].dt.hour)["model_version"].first()
    assert list(by_hour.loc[0:5]) == ["1"] * 6  # what v1 said stays what was said
    assert list(by_hour.loc[6:8]) == ["2"] * 3
    early = stored[(stored["issued_at"].dt.hour == 0) & (stored["horizon"] == 1)]
    assert early["forecast"].item() == 34.0
    assert store.append("x", DAY, second) == (0, len(second))  # idempotent
    window = store.read(datetime(2014, 3, 2, 6, tzinfo=UTC), datetime(2014, 3, 3, tzinfo=UTC),
                        ["x"])  # fmt: skip
    assert sorted(set(window["issued_at"].dt.hour)) == [6, 7, 8]


def test_latest_is_the_newest_issue_of_the_newest_day(tmp_path) -> None:
    store = ForecastStore(tmp_path)
    assert store.locations() == [] and store.latest("x").empty
    day_one, _ = _issue(issue_hours(DAY, datetime(2014, 3, 2, 23, tzinfo=UTC)), _model(1.0), "1")
    next_day = date(2014, 3, 3)
    day_two, _ = _issue(issue_hours(next_day, datetime(2014, 3, 3, 2, tzinfo=UTC)),
                        _model(2.0), "2")  # fmt: skip
    store.append("x", DAY, day_one)
    store.append("x", next_day, day_two)
    store.append("y", DAY, day_one.assign(location="y"))
    (tmp_path / "forecasts" / "x" / ".2014-03-04.parquet.abc.tmp").write_bytes(b"half")

    assert store.locations() == ["x", "y"]
    latest = store.latest("x")
    assert set(latest["issued_at"]) == {pd.Timestamp("2014-03-03T00:00Z")}  # 01, 02: no window
    assert sorted(latest["horizon"]) == [1, 2] and set(latest["model_version"]) == {"2"}
    assert set(store.latest("y")["issued_at"]) == {pd.Timestamp("2014-03-02T23:00Z")}
    assert store.latest("z").empty and store.latest("../forecasts").empty


# --- A champion that reads the weather forecast of its target hours ---------------------

FUTURE = future_feature_names()
HORIZONS = list(range(1, 25))
TEMP = FUTURE.index("temp")


def _weather() -> pd.DataFrame:
    """Observations with every weather field the forecast features derive from; temp
    rises 0.1 degC an hour, so a forecast's values say which hour they are for."""
    times = pd.date_range("2014-02-28", "2014-03-04", freq="h", tz="UTC")
    n = len(times)
    return pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": 50.0, "temp": np.arange(n) * 0.1,
         "dew": -5.0, "humidity": 50.0, "pressure": 1015.0, "windspeed": 10.0, "winddir": 90.0}
    )  # fmt: skip


def _stand_ins(issues: pd.DatetimeIndex, scale: float = 0.0) -> pd.DataFrame:
    """The replay source's construction: observed weather plus the error model, issued at
    ``issues`` for leads 1..48 (scale 0: exactly the observed weather)."""
    return stand_in_forecasts(_weather(), issues, "x", range(1, 49), ForecastErrorModel(scale))


def _reads_the_forecast(x: np.ndarray, future: np.ndarray) -> np.ndarray:
    """A two-input stand-in: each horizon's forecast temperature (a model needing both)."""
    assert x.shape[1:] == (3, 2) and future.shape[1:] == (24, len(FUTURE))
    return future[:, :, TEMP : TEMP + 1]


def _issue_with(weather_forecasts, hours, forward=_reads_the_forecast, observations=None):
    obs = _weather() if observations is None else observations
    return issue(obs, "x", hours, forward, ["pm2_5", "temp"], ["pm2_5"], 3, HORIZONS,
                 "m", "1", future_feature_names=FUTURE,
                 weather_forecasts=weather_forecasts)  # fmt: skip


def _observed_temp(at: pd.Timestamp) -> float:
    weather = _weather().set_index("time")
    return float(weather.loc[at, "temp"])


def test_each_hour_reads_the_newest_forecast_issued_at_or_before_it() -> None:
    issues = pd.date_range("2014-03-01", "2014-03-02T18:00", freq="6h", tz="UTC")
    forecasts = _stand_ins(issues)
    later = forecasts["issue_time"] == pd.Timestamp("2014-03-02T06:00Z")
    forecasts.loc[later, "temp"] += 100.0  # the 06:00 issue is recognisable
    hours = issue_hours(DAY, datetime(2014, 3, 2, 7, tzinfo=UTC))
    frame, report = _issue_with(forecasts, hours)
    assert report.skipped == {}
    at = frame.set_index(["issued_at", "horizon"])["forecast"]
    for hour in hours:
        for h in (1, 6, 24):
            target = hour + pd.Timedelta(hours=h)
            # 00..05 read the 00:00 issue (the 06:00 one did not exist yet), 06..07 read it
            shift = 100.0 if hour.hour >= 6 else 0.0
            assert at[(hour, h)] == pytest.approx(_observed_temp(target) + shift, abs=1e-4)


def test_the_forecast_input_matches_the_stand_in_issue_it_came_from() -> None:
    issues = pd.DatetimeIndex([pd.Timestamp("2014-03-02T00:00Z")])
    forecasts = _stand_ins(issues, scale=1.0)  # with the error model's error
    hours = pd.DatetimeIndex([pd.Timestamp("2014-03-02T03:00Z")])
    block, ok = issue_forecast_inputs(forecasts, "x", hours, FUTURE, 24)
    assert ok.all() and block.shape == (1, 24, len(FUTURE))
    issued = forecasts.set_index("lead")
    np.testing.assert_allclose(block[0, :, TEMP], issued.loc[4:27, "temp"], atol=1e-4)
    np.testing.assert_allclose(  # the target hour's calendar: 04:00 .. 03:00 next day
        block[0, :, FUTURE.index("hour_sin")],
        np.sin(2 * np.pi * ((np.arange(24) + 4) % 24) / 24),
        atol=1e-5,
    )


def test_hours_without_a_usable_forecast_are_skipped_and_counted() -> None:
    only = pd.DatetimeIndex([pd.Timestamp("2014-03-01T00:00Z"), pd.Timestamp("2014-03-02T02:00Z")])
    forecasts = _stand_ins(only)
    hours = issue_hours(DAY, datetime(2014, 3, 2, 3, tzinfo=UTC))
    frame, report = _issue_with(forecasts, hours)
    # 00:00 reads the 03-01T00 issue at leads 25..48; 01:00 would need lead 49, which no
    # issue keeps, and the 02:00 issue did not exist yet
    assert report.skipped == {NO_WEATHER_FORECAST: ["2014-03-02T01:00:00+00:00"]}
    assert report.missing_since == {WEATHER_FORECAST_INPUT: "2014-03-02T01:00:00+00:00"}
    assert sorted(set(frame["issued_at"].dt.hour)) == [0, 2, 3]
    nothing, none_stored = _issue_with(None, hours)
    assert nothing.empty and len(none_stored.skipped[NO_WEATHER_FORECAST]) == len(hours)
    other = _stand_ins(only).assign(location="y")  # another location's forecasts
    assert len(_issue_with(other, hours)[1].skipped[NO_WEATHER_FORECAST]) == len(hours)


def test_a_gap_in_the_observations_is_its_own_reason() -> None:
    issues = pd.date_range("2014-03-01", "2014-03-02T18:00", freq="6h", tz="UTC")
    weather = _weather()
    weather.loc[weather["time"] == pd.Timestamp("2014-03-02T01:00Z"), "pm2_5"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 4, tzinfo=UTC))
    frame, report = issue(weather, "x", hours, _reads_the_forecast, ["pm2_5", "temp"],
                          ["pm2_5"], 3, HORIZONS, "m", "1", future_feature_names=FUTURE,
                          weather_forecasts=_stand_ins(issues))  # fmt: skip
    assert list(report.skipped) == [INCOMPLETE_WINDOW]
    assert len(report.skipped[INCOMPLETE_WINDOW]) == 3  # windows holding 01:00: 01, 02, 03
    assert sorted(set(frame["issued_at"].dt.hour)) == [0, 4]


def test_an_observation_only_champion_is_called_as_before() -> None:
    issues = pd.date_range("2014-03-01", "2014-03-02T18:00", freq="6h", tz="UTC")
    hours = issue_hours(DAY, datetime(2014, 3, 2, 1, tzinfo=UTC))
    frame, report = issue(_observations(), "x", hours, _model(10.0), ["pm2_5", "temp"],
                          ["pm2_5"], 3, [1, 2], "m", "1",
                          weather_forecasts=_stand_ins(issues))  # fmt: skip
    assert report.skipped == {} and len(frame) == 2 * 2  # forward(x): one argument


def test_filling_never_applies_to_the_forecast_block() -> None:
    """Observed temperature gone for two hours is filled from its last reading; a weather
    forecast issue that is missing is not: those hours are skipped, and named."""
    weather = _weather()
    weather.loc[weather["time"] >= pd.Timestamp("2014-03-02T03:00Z"), "temp"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 4, tzinfo=UTC))
    # one issue at 03-01T00 reaches 00:00 (leads 25..48) only; the 03:00 issue covers 03..04
    forecasts = _stand_ins(pd.DatetimeIndex(["2014-03-01T00:00Z", "2014-03-02T03:00Z"]))
    frame, report = _issue_with(forecasts, hours, observations=weather)
    assert report.skipped == {
        NO_WEATHER_FORECAST: ["2014-03-02T01:00:00+00:00", "2014-03-02T02:00:00+00:00"]
    }
    assert sorted(set(frame["issued_at"].dt.hour)) == [0, 3, 4]
    assert report.filled == {"temp": 2} and report.filled_hours == 2  # 03 and 04
    assert report.missing_since == {
        "temp": "2014-03-02T03:00:00+00:00",
        WEATHER_FORECAST_INPUT: "2014-03-02T01:00:00+00:00",
    }
    # the day's cause, without a forward pass, names the same inputs
    assert inputs_missing_since(
        weather, ["pm2_5", "temp"], ["pm2_5"], 3, hours, HORIZONS, "x",
        future_feature_names=FUTURE, weather_forecasts=forecasts,
    ) == report.missing_since  # fmt: skip
    verdict = issuing_verdict(hours, frame, report.missing_since)
    assert verdict.status == "stopped"  # 3 of 5 due hours issued
    assert "weather_forecast missing since 2014-03-02T01:00" in verdict.description


def test_the_issuing_verdict_says_stopped_degraded_or_ok_and_why() -> None:
    due = issue_hours(DAY, datetime(2014, 3, 2, 23, tzinfo=UTC))
    complete, _ = _issue(due, _model(1.0), "1")
    ok = issuing_verdict(due, complete, {})
    assert ok.passed and ok.description == "24 of 24 due forecasts issued"

    obs = _observations()
    obs.loc[obs["time"] >= pd.Timestamp("2014-03-02T20:00Z"), "temp"] = np.nan
    filled, report = _issue(due, _model(1.0), "1", obs)
    degraded = issuing_verdict(due, filled, report.missing_since)
    assert degraded.status == "degraded" and degraded.severity == "WARN"
    assert degraded.description == (
        "forecasting degraded: 4 of 24 issued with inputs filled from the last reading "
        "(temp missing since 2014-03-02T20:00)"
    )

    obs.loc[obs["time"] >= pd.Timestamp("2014-03-02T05:00Z"), "pm2_5"] = np.nan
    few, report = _issue(due, _model(1.0), "1", obs)
    stopped = issuing_verdict(due, few, report.missing_since)
    assert stopped.status == "stopped" and stopped.severity == "ERROR"
    assert stopped.description.startswith("forecasting stopped: 5 of 24 due forecasts issued (")
    assert "pm2_5 missing since 2014-03-02T05:00" in stopped.description
