"""Parsing of OWM Air Pollution and Visual Crossing bodies in their exact wire formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airquality_assets.columns import AQI, LOCATION, POLLUTANTS, TIME, WEATHER
from airquality_assets.transforms.parsing import (
    AIR_COLUMNS,
    FORECAST_FRAME_COLUMNS,
    WEATHER_FRAME_COLUMNS,
    body_kind,
    parse_air_pollution,
    parse_many,
    parse_weather,
    parse_weather_forecasts,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# As OWM sends it: compact, key order main/components/dt, "no":0 a bare integer.
OWM_LONDON = (
    '{"coord":{"lon":-0.1278,"lat":51.5074},"list":['
    '{"main":{"aqi":2},"components":{"co":293.73,"no":0,"no2":28.79,"o3":21.82,"so2":4.35,'
    '"pm2_5":11.84,"pm10":15.16,"nh3":1.12},"dt":1709510400},'
    '{"main":{"aqi":1},"components":{"co":280.38,"no":0.12,"no2":25.36,"o3":27.54,"so2":3.87,'
    '"pm2_5":9.71,"pm10":12.64,"nh3":0.98},"dt":1709517600}]}'
)


def vc_hour(epoch: int, clock: str, **values: Any) -> dict[str, Any]:
    """A metric VC hour object with the recorded key order; ``values`` override defaults."""
    hour: dict[str, Any] = {
        "datetime": clock,
        "datetimeEpoch": epoch,
        "temp": 7.1,
        "feelslike": 4.6,
        "humidity": 88.21,
        "dew": 5.3,
        "precip": 0.0,
        "precipprob": 0.0,
        "snow": 0.0,
        "snowdepth": 0.0,
        "preciptype": None,
        "windgust": 25.2,
        "windspeed": 14.8,
        "winddir": 200.0,
        "pressure": 1004.0,
        "visibility": 15.0,
        "cloudcover": 88.5,
        "solarradiation": 0.0,
        "solarenergy": None,
        "uvindex": 0.0,
        "severerisk": 10.0,
        "conditions": "Partially cloudy",
        "icon": "partly-cloudy-night",
        "stations": ["EGLL"],
        "source": "obs",
    }
    hour.update(values)
    return hour


def vc_body(days: list[tuple[str, int, list[dict[str, Any]]]], tzoffset: float = 0.0) -> str:
    """A Timeline body: top-level metadata, ``days[]`` each with ``hours[]``."""
    return json.dumps(
        {
            "queryCost": sum(len(h) for _, _, h in days),
            "latitude": 40.7146,
            "longitude": -74.0071,
            "resolvedAddress": "New York, NY, United States",
            "address": "New York,NY",
            "timezone": "America/New_York",
            "tzoffset": tzoffset,
            "days": [
                {"datetime": d, "datetimeEpoch": e, "temp": 8.3, "preciptype": None, "hours": h}
                for d, e, h in days
            ],
        }
    )


# ---------------------------------------------------------------- OWM


def test_owm_columns_dtypes_and_int_values() -> None:
    frame = parse_air_pollution(OWM_LONDON, "london")
    assert tuple(frame.columns) == AIR_COLUMNS
    assert frame[LOCATION].dtype == "string"
    assert str(frame[TIME].dtype) == "datetime64[ns, UTC]"
    assert all(frame[p].dtype == np.float64 for p in POLLUTANTS)
    assert frame[AQI].dtype == "Int64"
    assert frame[TIME].tolist() == [
        pd.Timestamp("2024-03-04T00:00Z"),
        pd.Timestamp("2024-03-04T02:00Z"),
    ]
    assert frame["no"].tolist() == [0.0, 0.12]  # the bare integer 0 is a real zero
    assert frame[AQI].tolist() == [2, 1]
    assert frame.attrs["duplicates_dropped"] == 0


def test_owm_bytes_str_and_dict_give_the_same_frame() -> None:
    a = parse_air_pollution(OWM_LONDON, "london")
    b = parse_air_pollution(OWM_LONDON.encode(), "london")
    c = parse_air_pollution(json.loads(OWM_LONDON), "london")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_owm_null_or_missing_component_is_nan_not_zero() -> None:
    body = (
        '{"coord":{"lon":50,"lat":50},"list":[{"main":{"aqi":3},"components":'
        '{"co":201,"no":null,"o3":68.66,"so2":0.64,"pm2_5":0.5,"pm10":0.54,"nh3":0.12},'
        '"dt":1606482000},{"main":{},"dt":1606485600}]}'
    )
    frame = parse_air_pollution(body, "x")
    assert np.isnan(frame["no"].iloc[0])
    assert np.isnan(frame["no2"].iloc[0])  # key absent
    assert frame["co"].iloc[0] == 201.0
    assert frame.iloc[1][list(POLLUTANTS)].isna().all()  # no components at all
    assert frame[AQI].isna().tolist() == [False, True]


def test_owm_float_aqi_from_doc_sample_becomes_int() -> None:
    body = '{"coord":[50.0,50.0],"list":[{"dt":1606147200,"main":{"aqi":4.0},"components":{}}]}'
    frame = parse_air_pollution(body, "x")  # coord in the documentation's array form
    assert frame[AQI].tolist() == [4]


def test_owm_empty_list_gives_empty_typed_frame() -> None:
    frame = parse_air_pollution('{"coord":{"lon":-0.1278,"lat":51.5074},"list":[]}', "london")
    assert frame.empty
    assert tuple(frame.columns) == AIR_COLUMNS
    full = parse_air_pollution(OWM_LONDON, "london")
    assert frame.dtypes.equals(full.dtypes)


def test_owm_duplicates_keep_last_and_are_counted_and_sorted() -> None:
    doc = json.loads(OWM_LONDON)
    first, second = doc["list"]
    revised = json.loads(json.dumps(first))
    revised["components"]["pm2_5"] = 99.0
    doc["list"] = [second, first, revised]
    frame = parse_air_pollution(doc, "london")
    assert frame.attrs["duplicates_dropped"] == 1
    assert frame[TIME].is_monotonic_increasing
    assert frame["pm2_5"].tolist() == [99.0, 9.71]


def test_off_hour_times_are_floored_and_counted() -> None:
    body = '{"coord":{"lon":0,"lat":0},"list":[{"main":{"aqi":1},"components":{},"dt":1709512200}]}'
    frame = parse_air_pollution(body, "x")
    assert frame[TIME].tolist() == [pd.Timestamp("2024-03-04T00:00Z")]
    assert frame.attrs["off_hour_floored"] == 1


def test_rows_without_time_are_skipped_and_counted() -> None:
    body = '{"coord":{"lon":0,"lat":0},"list":[{"main":{"aqi":1},"components":{}},{"dt":0}]}'
    frame = parse_air_pollution(body, "x")
    assert len(frame) == 1
    assert frame.attrs["rows_without_time"] == 1


def test_error_body_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="no 'list' key"):
        parse_air_pollution('{"cod":401, "message": "Invalid API key."}', "x")


# ---------------------------------------------------------------- Visual Crossing


def test_vc_types_nulls_absent_keys_and_precip_flags() -> None:
    hours = [
        vc_hour(1709510400, "00:00:00"),
        vc_hour(1709514000, "01:00:00", precip=0, preciptype=["rain"], windgust=None),
        vc_hour(1709517600, "02:00:00", preciptype=["snow", "freezingrain"]),
        vc_hour(1709521200, "03:00:00", preciptype=["ice"]),
    ]
    del hours[3]["humidity"]  # absent, as with options=nonulls
    frame = parse_weather(vc_body([("2024-03-04", 1709510400, hours)]), "london")
    assert tuple(frame.columns) == WEATHER_FRAME_COLUMNS
    assert all(frame[c].dtype == np.float64 for c in WEATHER)
    assert frame["precip"].iloc[1] == 0.0
    assert np.isnan(frame["windgust"].iloc[1])
    assert np.isnan(frame["humidity"].iloc[3])
    assert frame["solarenergy"].isna().all()  # null at night
    assert frame["is_rain"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert frame["is_snow"].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_vc_absent_preciptype_is_unknown_not_dry() -> None:
    """null means "no precipitation"; a source that never sends the key says nothing."""
    hours = [vc_hour(1709510400, "00:00:00"), vc_hour(1709514000, "01:00:00")]
    del hours[1]["preciptype"]
    frame = parse_weather(vc_body([("2024-03-04", 1709510400, hours)]), "london")
    assert frame["is_rain"].iloc[0] == 0.0 and frame["is_snow"].iloc[0] == 0.0
    assert np.isnan(frame["is_rain"].iloc[1]) and np.isnan(frame["is_snow"].iloc[1])


def test_vc_never_reported_precipitation_is_unknown_not_dry() -> None:
    """A station whose ``precip`` is null in every hour: a null type then says nothing."""
    day = [vc_hour(1709510400 + 3600 * h, f"{h:02d}:00:00", precip=None) for h in range(24)]
    frame = parse_weather(vc_body([("2024-03-04", 1709510400, day)]), "london")
    assert frame["precip"].isna().all()
    assert frame["is_rain"].isna().all() and frame["is_snow"].isna().all()  # not 0.0
    mixed = [
        vc_hour(1709510400, "00:00:00", precip=None),  # unknown
        vc_hour(1709514000, "01:00:00", precip=0.0),  # dry
        vc_hour(1709517600, "02:00:00", precip=1.2),  # it fell, type not named: unknown
        vc_hour(1709521200, "03:00:00", precip=None, preciptype=["snow"]),  # the type speaks
    ]
    frame = parse_weather(vc_body([("2024-03-04", 1709510400, mixed)]), "london")
    np.testing.assert_array_equal(frame["is_rain"], [np.nan, 0.0, np.nan, 0.0])
    np.testing.assert_array_equal(frame["is_snow"], [np.nan, 0.0, np.nan, 1.0])
    # a source that sends the type but no amount at all (the replay's station): type speaks
    for hour in mixed:
        del hour["precip"]
    frame = parse_weather(vc_body([("2024-03-04", 1709510400, mixed)]), "london")
    assert frame["is_rain"].tolist() == [0.0, 0.0, 0.0, 0.0]


NY_SPRING_MIDNIGHT = 1710046800  # 2024-03-10 00:00 EST = 05:00Z
NY_FALL_MIDNIGHT = 1730606400  # 2024-11-03 00:00 EDT = 04:00Z


def test_vc_spring_forward_day_has_23_distinct_hours() -> None:
    clocks = [f"{h:02d}:00:00" for h in range(24) if h != 2]
    hours = [
        vc_hour(NY_SPRING_MIDNIGHT + 3600 * i, c, **({"tzoffset": -4.0} if i >= 2 else {}))
        for i, c in enumerate(clocks)
    ]
    frame = parse_weather(vc_body([("2024-03-10", NY_SPRING_MIDNIGHT, hours)], -5.0), "nyc")
    assert len(frame) == 23
    assert frame[TIME].iloc[0] == pd.Timestamp("2024-03-10T05:00Z")
    assert frame[TIME].iloc[2] == pd.Timestamp("2024-03-10T07:00Z")  # local 03:00 EDT
    assert (frame[TIME].diff().dropna() == pd.Timedelta(hours=1)).all()


def test_vc_fall_back_day_has_25_hours_with_repeated_clock() -> None:
    clocks = ["00:00:00", "01:00:00", "01:00:00"] + [f"{h:02d}:00:00" for h in range(2, 24)]
    hours = [
        vc_hour(
            NY_FALL_MIDNIGHT + 3600 * i, c, temp=float(i), **({"tzoffset": -5.0} if i >= 2 else {})
        )
        for i, c in enumerate(clocks)
    ]
    frame = parse_weather(vc_body([("2024-11-03", NY_FALL_MIDNIGHT, hours)], -4.0), "nyc")
    assert len(frame) == 25
    assert frame[TIME].is_unique
    assert frame.attrs["duplicates_dropped"] == 0
    # both "01:00:00" rows survive, in epoch order
    assert frame["temp"].iloc[1:3].tolist() == [1.0, 2.0]
    assert frame[TIME].iloc[-1] == pd.Timestamp("2024-11-04T04:00Z")


def test_vc_duplicate_epochs_across_days_keep_last() -> None:
    day1 = [vc_hour(1709510400 + 3600 * i, f"{i:02d}:00:00", temp=1.0) for i in range(3)]
    day2 = [vc_hour(1709510400 + 3600 * 2, "02:00:00", temp=9.0)]
    body = vc_body([("2024-03-04", 1709510400, day1), ("2024-03-05", 1709596800, day2)])
    frame = parse_weather(body, "x")
    assert len(frame) == 3
    assert frame["temp"].tolist() == [1.0, 1.0, 9.0]
    assert frame.attrs["duplicates_dropped"] == 1


def test_vc_day_without_hours_and_fractional_offset() -> None:
    # Delhi (+5:30): local whole hours are half-hour UTC epochs -> floored, none lost.
    hours = [vc_hour(1709490600 + 3600 * i, f"{i:02d}:00:00") for i in range(3)]
    body = json.loads(vc_body([("2024-03-04", 1709490600, hours)], 5.5))
    body["days"].append({"datetime": "2024-03-20", "datetimeEpoch": 1710873000, "source": "stats"})
    frame = parse_weather(body, "delhi")
    assert len(frame) == 3
    assert frame[TIME].iloc[0] == pd.Timestamp("2024-03-03T18:00Z")
    assert frame.attrs["off_hour_floored"] == 3


def test_vc_plain_text_error_is_not_json() -> None:
    with pytest.raises(ValueError):
        parse_weather("Bad API Request:Invalid location parameter value.", "x")


# ---------------------------------------------------------------- many bodies, speed


def _daily_owm(day: int) -> str:
    start = 1704067200 + 86400 * day
    items = ",".join(
        f'{{"main":{{"aqi":2}},"components":{{"co":250.34,"no":0,"no2":35.99,"o3":30.76,'
        f'"so2":8.11,"pm2_5":{3 + h},"pm10":3.81,"nh3":0.74}},"dt":{start + 3600 * h}}}'
        for h in range(25)  # inclusive end: hour 24 repeats the next day's first hour
    )
    return f'{{"coord":{{"lon":116.47,"lat":39.95}},"list":[{items}]}}'


def test_parse_many_pools_bodies_and_dedupes_across_them() -> None:
    """(Its speed is measured by benchmarks/parse_merge.py.)"""
    bodies = [_daily_owm(d) for d in range(365)]
    frame = parse_many(bodies, "beijing")
    assert len(frame) == 365 * 24 + 1
    assert frame.attrs["duplicates_dropped"] == 364
    # the later body wins: hour 00 of day d+1 comes from body d+1 (pm2_5 3), not d (27)
    assert frame["pm2_5"].iloc[24] == 3.0
    assert frame[TIME].is_monotonic_increasing and frame[TIME].is_unique


def test_parse_many_kind_detection_and_errors() -> None:
    assert body_kind(OWM_LONDON) == "air"
    assert body_kind(vc_body([])) == "weather"
    assert len(parse_many([], "x", kind="weather")) == 0
    with pytest.raises(ValueError, match="no bodies"):
        parse_many([], "x")
    with pytest.raises(ValueError):
        parse_many([OWM_LONDON, vc_body([])], "x")


@pytest.mark.parametrize(
    ("name", "parser"),
    [
        ("owm_history_london_2024-03-04.json", parse_air_pollution),
        ("owm_history_duplicates_nulls.json", parse_air_pollution),
        ("owm_history_empty.json", parse_air_pollution),
        ("vc_timeline_london_2024-03-04.json", parse_weather),
        ("vc_timeline_newyork_2024-11-03_fallback.json", parse_weather),
    ],
)
def test_shared_fixtures_parse_into_unique_sorted_hours(name: str, parser: Any) -> None:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared fixture {name} not present")
    frame = parser(path.read_bytes(), "somewhere")
    assert frame[TIME].is_unique and frame[TIME].is_monotonic_increasing
    assert (frame[TIME].dt.floor("h") == frame[TIME]).all()


# ---------------------------------------------------------------- forecasts as issued

ISSUE_12 = pd.Timestamp("2024-03-04T12:00Z")
D1 = 1709510400  # 2024-03-04T00:00Z


def forecast_body(issue_epoch: int, leads: list[int], **values: Any) -> str:
    """A timeline forecast body: the issue day's hours up to the issue observed, then the
    given leads as ``fcst`` hours (in their UTC days)."""
    epochs = [issue_epoch - 3600, issue_epoch] + [issue_epoch + 3600 * k for k in leads]
    days: dict[int, list[dict[str, Any]]] = {}
    for e in epochs:
        source = "obs" if e <= issue_epoch else "fcst"
        hour = vc_hour(e, f"{e % 86400 // 3600:02d}:00:00", source=source, **values)
        days.setdefault(e // 86400 * 86400, []).append(hour)
    return vc_body(
        [(pd.Timestamp(d, unit="s").strftime("%Y-%m-%d"), d, h) for d, h in days.items()]
    )


def test_forecast_fixture_parses_into_leads_after_the_issue() -> None:
    body = (FIXTURES / "vc_forecast_london_2024-03-04T12.json").read_bytes()
    frame = parse_weather_forecasts([(ISSUE_12, body)], "london")
    assert tuple(frame.columns) == FORECAST_FRAME_COLUMNS
    assert frame["lead"].tolist() == [1, 12, 24, 48]  # the observed 12:00 hour is left out
    assert frame["lead"].dtype == np.int64
    assert str(frame["issue_time"].dtype) == str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert (frame["time"] - frame["issue_time"] == pd.to_timedelta(frame["lead"], "h")).all()
    assert frame["temp"].tolist() == [9.6, 6.2, 8.4, 7.7]
    assert frame["is_rain"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert np.isnan(frame["windgust"].iloc[1])  # null: unknown
    assert frame["pressure"].iloc[2] == 999.8
    assert (frame["location"] == "london").all()
    assert all(frame[c].dtype == np.float64 for c in WEATHER)


def test_forecast_issues_keep_their_own_rows_sorted_by_issue_then_time() -> None:
    six = int(ISSUE_12.timestamp()) - 6 * 3600
    later = forecast_body(int(ISSUE_12.timestamp()), [1, 2, 3], temp=2.0)
    earlier = forecast_body(six, [1, 6, 7, 8, 9], temp=1.0)
    frame = parse_weather_forecasts(
        [(ISSUE_12.to_pydatetime(), later), (ISSUE_12 - pd.Timedelta("6h"), earlier)], "london"
    )
    assert frame["issue_time"].is_monotonic_increasing
    assert frame["lead"].tolist() == [1, 6, 7, 8, 9, 1, 2, 3]
    # the same target hour forecast by two issues: two rows, each with its issue's value
    target = pd.Timestamp("2024-03-04T13:00Z")
    both = frame.loc[frame["time"] == target]
    assert sorted(zip(both["lead"], both["temp"], strict=True)) == [(1, 2.0), (7, 1.0)]


def test_forecast_leads_beyond_the_limit_and_before_the_issue_are_left_out() -> None:
    body = forecast_body(int(ISSUE_12.timestamp()), [1, 24, 48, 49, 60])
    assert parse_weather_forecasts([(ISSUE_12, body)], "x")["lead"].tolist() == [1, 24, 48]
    short = parse_weather_forecasts([(ISSUE_12, body)], "x", max_lead=24)
    assert short["lead"].tolist() == [1, 24]


def test_forecast_repeated_hours_keep_the_last_and_odd_rows_are_counted() -> None:
    issue = int(ISSUE_12.timestamp())
    hours = [
        vc_hour(issue + 3600, "13:00:00", temp=1.0, source="fcst"),
        vc_hour(issue + 3600, "13:00:00", temp=2.0, source="fcst"),  # repeated: the last wins
        vc_hour(issue + 7200 + 60, "14:01:00", source="fcst"),  # off the hour: floored
        vc_hour(None, "15:00:00", source="fcst"),  # no time at all
    ]
    body = vc_body([("2024-03-04", D1, hours)])
    frame = parse_weather_forecasts([(ISSUE_12, body)], "x")
    assert frame["lead"].tolist() == [1, 2]
    assert frame["temp"].iloc[0] == 2.0
    assert frame.attrs == {"duplicates_dropped": 1, "rows_without_time": 1, "off_hour_floored": 1}


def test_forecast_issue_times_must_be_aware_whole_hours_and_bodies_timelines() -> None:
    body = forecast_body(int(ISSUE_12.timestamp()), [1])
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_weather_forecasts([(pd.Timestamp("2024-03-04T12:00"), body)], "x")
    with pytest.raises(ValueError, match="whole UTC hour"):
        parse_weather_forecasts([(ISSUE_12 + pd.Timedelta("30min"), body)], "x")
    with pytest.raises(ValueError, match="no 'days' key"):
        parse_weather_forecasts([(ISSUE_12, '{"list":[]}')], "x")


def test_no_forecast_bodies_give_an_empty_typed_frame() -> None:
    frame = parse_weather_forecasts([], "x")
    assert frame.empty and tuple(frame.columns) == FORECAST_FRAME_COLUMNS
    assert frame["lead"].dtype == np.int64
    assert str(frame["issue_time"].dtype) == "datetime64[ns, UTC]"
