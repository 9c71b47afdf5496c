"""Each Pandera model accepts what the transforms produce and rejects each kind of bad frame."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from airquality_assets.columns import AQI, ISSUE_TIME, LEAD, LOCATION, POLLUTANTS, TIME, WEATHER
from airquality_assets.schemas import (
    AirQualityHourlySchema,
    HourlyObservationsSchema,
    WeatherForecastsSchema,
    WeatherHourlySchema,
    validate_lazily,
)
from airquality_assets.transforms.cleaning import clean_observations
from airquality_assets.transforms.merging import merge_hourly

T0 = pd.Timestamp("2024-03-04T00:00Z")
N = 6


def good_air() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            LOCATION: pd.array(["london"] * N, dtype="string"),
            TIME: pd.date_range(T0, periods=N, freq="h"),
            **{p: rng.uniform(0, 50, N) for p in POLLUTANTS},
            AQI: pd.array([1, 2, 3, 4, 5, None], dtype="Int64"),
        }
    )
    frame.loc[2, "no"] = np.nan
    return frame


def good_weather() -> pd.DataFrame:
    values = {w: np.full(N, 10.0) for w in WEATHER}
    values.update(
        humidity=np.full(N, 80.0),
        pressure=np.full(N, 1013.0),
        winddir=np.array([0, 90, 180, 270, 360, np.nan]),
        is_rain=np.array([0, 1, 0, 0, 1, 0.0]),
        is_snow=np.zeros(N),
    )
    return pd.DataFrame(
        {
            LOCATION: pd.array(["london"] * N, dtype="string"),
            TIME: pd.date_range(T0, periods=N, freq="h"),
            **values,
        }
    )


def good_observations() -> pd.DataFrame:
    cleaned, _ = clean_observations(merge_hourly(good_air(), good_weather()))
    return cleaned


SCHEMAS: list[tuple[type, Callable[[], pd.DataFrame]]] = [
    (AirQualityHourlySchema, good_air),
    (WeatherHourlySchema, good_weather),
    (HourlyObservationsSchema, good_observations),
]


@pytest.mark.parametrize(("schema", "make"), SCHEMAS)
def test_good_frames_pass(schema: type, make: Callable[[], pd.DataFrame]) -> None:
    ok, failures, message = validate_lazily(schema, make())
    assert ok, message
    assert failures.empty


def test_object_location_is_coerced_not_rejected() -> None:
    frame = good_air().astype({LOCATION: object})
    assert validate_lazily(AirQualityHourlySchema, frame)[0]


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[row, column] = value
        return frame

    return apply


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[1]]], ignore_index=True).sort_values(
        TIME, kind="stable", ignore_index=True
    )


def _reverse(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[::-1].reset_index(drop=True)


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{TIME: frame[TIME].dt.tz_localize(None)})


def _other_zone(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{TIME: frame[TIME].dt.tz_convert("Europe/Berlin")})


def _off_hour(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{TIME: frame[TIME] + pd.Timedelta(minutes=30)})


def _extra_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(pm25=1.0)


def _int_column(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: np.arange(len(frame))})


def _text_column(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column].astype(str)})


BAD_FRAMES: list[tuple[str, type, Callable[[], pd.DataFrame], Callable, str]] = [
    ("negative pm2_5", AirQualityHourlySchema, good_air, _set("pm2_5", 3, -1.5), "pm2_5"),
    ("aqi 6", AirQualityHourlySchema, good_air, _set(AQI, 0, 6), AQI),
    ("aqi float dtype", AirQualityHourlySchema, good_air, _int_column("co"), "co"),
    ("text pm10", AirQualityHourlySchema, good_air, _text_column("pm10"), "pm10"),
    ("duplicate key", AirQualityHourlySchema, good_air, _duplicate, "uniqueness"),
    ("time decreasing", AirQualityHourlySchema, good_air, _reverse, "increase"),
    ("naive time", AirQualityHourlySchema, good_air, _naive, "datetime64[ns, UTC]"),
    ("non-UTC zone", AirQualityHourlySchema, good_air, _other_zone, "datetime64[ns, UTC]"),
    ("off the hour", AirQualityHourlySchema, good_air, _off_hour, "whole UTC hour"),
    ("unknown column", AirQualityHourlySchema, good_air, _extra_column, "pm25"),
    ("humidity 120", WeatherHourlySchema, good_weather, _set("humidity", 0, 120.0), "humidity"),
    ("winddir 400", WeatherHourlySchema, good_weather, _set("winddir", 1, 400.0), "winddir"),
    ("pressure 500", WeatherHourlySchema, good_weather, _set("pressure", 1, 500.0), "pressure"),
    ("temp 75", WeatherHourlySchema, good_weather, _set("temp", 1, 75.0), "temp"),
    ("cloudcover -1", WeatherHourlySchema, good_weather, _set("cloudcover", 1, -1.0), "cloud"),
    ("is_rain 0.5", WeatherHourlySchema, good_weather, _set("is_rain", 1, 0.5), "is_rain"),
    ("duplicate key", WeatherHourlySchema, good_weather, _duplicate, "uniqueness"),
    ("naive time", WeatherHourlySchema, good_weather, _naive, "datetime64[ns, UTC]"),
    ("negative no2", HourlyObservationsSchema, good_observations, _set("no2", 2, -0.1), "no2"),
    (
        "humidity 120",
        HourlyObservationsSchema,
        good_observations,
        _set("humidity", 0, 120.0),
        "humidity",
    ),
    (
        "winddir 400",
        HourlyObservationsSchema,
        good_observations,
        _set("winddir", 0, 400.0),
        "winddir",
    ),
    ("duplicate key", HourlyObservationsSchema, good_observations, _duplicate, "uniqueness"),
    ("time decreasing", HourlyObservationsSchema, good_observations, _reverse, "increase"),
    ("naive time", HourlyObservationsSchema, good_observations, _naive, "datetime64[ns, UTC]"),
    ("int temp", HourlyObservationsSchema, good_observations, _int_column("temp"), "temp"),
    ("unknown column", HourlyObservationsSchema, good_observations, _extra_column, "pm25"),
]


@pytest.mark.parametrize(
    ("label", "schema", "make", "spoil", "expected"),
    BAD_FRAMES,
    ids=[f"{s.__name__}-{label}" for label, s, *_ in BAD_FRAMES],
)
def test_bad_frames_are_rejected(
    label: str, schema: type, make: Callable[[], pd.DataFrame], spoil: Callable, expected: str
) -> None:
    ok, failures, message = validate_lazily(schema, spoil(make()))
    assert not ok, label
    assert not failures.empty
    assert expected in message, message


def test_interleaved_locations_are_fine() -> None:
    a, b = good_air(), good_air().assign(**{LOCATION: "paris"})
    frame = pd.concat([a, b]).sort_values(TIME, kind="stable", ignore_index=True)
    assert validate_lazily(AirQualityHourlySchema, frame)[0]


def test_one_lazy_report_lists_every_failure() -> None:
    frame = good_observations()
    frame.loc[1, "pm2_5"] = -4.0
    frame.loc[2, "pm2_5"] = -7.0
    frame.loc[3, "humidity"] = 120.0
    frame.loc[4, "winddir"] = 400.0
    frame = _duplicate(frame).assign(extra=1)
    ok, failures, message = validate_lazily(HourlyObservationsSchema, frame)
    assert not ok
    lines = message.splitlines()
    assert lines[0].startswith("HourlyObservationsSchema:")
    for needle in ("'pm2_5'", "'humidity'", "'winddir'", "uniqueness", "unexpected column"):
        assert any(needle in line for line in lines), (needle, message)
    pm = next(line for line in lines if "'pm2_5'" in line)
    assert "3 failure(s)" in pm and "-4.0" in pm and "-7.0" in pm  # row 1 is duplicated
    assert {"column", "check", "failure_case", "index"} <= set(failures.columns)


# --- weather_forecasts ---------------------------------------------------------------------------


def good_forecasts() -> pd.DataFrame:
    """Two issues two hours apart, leads 1..3 each (their 03:00 forecast twice), as
    parse_weather_forecasts builds them."""
    issues = pd.DatetimeIndex([T0, T0 + pd.Timedelta("2h")]).repeat(3)
    lead = np.tile([1, 2, 3], 2).astype(np.int64)
    weather = good_weather()
    return pd.DataFrame(
        {
            LOCATION: pd.array(["london"] * 6, dtype="string"),
            ISSUE_TIME: issues,
            TIME: issues + pd.to_timedelta(lead, "h"),
            LEAD: lead,
            **{w: weather[w].to_numpy() for w in WEATHER},
        }
    )


def _spoil_lead(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[1, LEAD] = 5  # time says 2
    return frame


def _lead_out_of_range(value: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, LEAD] = value
        frame.loc[0, TIME] = frame.loc[0, ISSUE_TIME] + pd.Timedelta(hours=value)
        return frame

    return spoil


def _reverse_within_issue(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[[2, 1, 0, 3, 4, 5]].reset_index(drop=True)


def _issue_off_hour(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{ISSUE_TIME: frame[ISSUE_TIME] + pd.Timedelta("30min")})


FORECAST_BAD: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str]] = [
    ("lead is not time - issue", _spoil_lead, "lead != (time - issue_time) / 1 h"),
    ("lead 0", _lead_out_of_range(0), "lead"),
    ("lead 49", _lead_out_of_range(49), "lead"),
    ("duplicate key", _duplicate, "uniqueness"),
    ("time decreasing in an issue", _reverse_within_issue, "strictly increase"),
    ("issue off the hour", _issue_off_hour, "whole UTC hour"),
    ("naive issue", lambda f: f.assign(**{ISSUE_TIME: f[ISSUE_TIME].dt.tz_localize(None)}), "UTC"),
    ("humidity 120", _set("humidity", 0, 120.0), "humidity"),
    ("unknown column", _extra_column, "pm25"),
]


def test_good_forecasts_pass_and_two_issues_may_forecast_one_hour() -> None:
    frame = good_forecasts()
    assert not frame[TIME].is_unique  # one target hour, two issues: the key has issue_time
    ok, _, message = validate_lazily(WeatherForecastsSchema, frame)
    assert ok, message
    overlap = pd.concat([frame.iloc[:3], frame.iloc[:3].assign(**{LOCATION: "paris"})])
    assert validate_lazily(WeatherForecastsSchema, overlap.reset_index(drop=True))[0]


@pytest.mark.parametrize(
    ("label", "spoil", "expected"), FORECAST_BAD, ids=[label for label, *_ in FORECAST_BAD]
)
def test_bad_forecast_frames_are_rejected(
    label: str, spoil: Callable[[pd.DataFrame], pd.DataFrame], expected: str
) -> None:
    ok, failures, message = validate_lazily(WeatherForecastsSchema, spoil(good_forecasts()))
    assert not ok, label
    assert not failures.empty
    assert expected in message, message


def test_parsed_replay_forecasts_pass_the_schema() -> None:
    from datetime import UTC, datetime, timedelta

    from airquality_assets.sources.replay import BEIJING, ReplayWeatherSource
    from airquality_assets.transforms.parsing import parse_weather_forecasts

    source = ReplayWeatherSource(datetime(2013, 2, 1, tzinfo=UTC))
    issues = [datetime(2013, 1, 30, tzinfo=UTC) + timedelta(hours=6 * k) for k in range(9)]
    frame = parse_weather_forecasts(
        [(issue, source.forecast(BEIJING, issue).body) for issue in issues], "beijing"
    )
    assert len(frame) == 9 * 48
    ok, _, message = validate_lazily(WeatherForecastsSchema, frame)
    assert ok, message
