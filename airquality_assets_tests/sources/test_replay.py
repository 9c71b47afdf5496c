"""Tests of the offline replay source: exact OWM / VC shapes, the clock, and the station check.

These read the committed files in ``airquality_assets/data/replay``. One test re-runs the
conversion on the raw CSV and compares bytes; it needs the raw file, named by the environment
variable ``AIRQUALITY_BEIJING_RAW_CSV`` (see ``scripts/convert_beijing_pm25.py`` for how to
get it), and is skipped otherwise (CI has no copy).
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from airquality_assets.data import beijing
from airquality_assets.sources.base import (
    AirPollutionSource,
    Location,
    RawResponse,
    SourceError,
    WeatherSource,
)
from airquality_assets.sources.replay import (
    BEIJING,
    DEFAULT_NOW,
    ReplayAirPollutionSource,
    ReplayWeatherSource,
)

HOUR = 3600
FIRST_MEASURED_EPOCH = 1262361600  # 2010-01-02 00:00 local = 2010-01-01T16:00Z, pm2.5 129
LAST_EPOCH = 1420038000  # 2014-12-31 23:00 local = 2014-12-31T15:00Z
TOTAL_RECORDS = 41757  # 43,824 hours minus 2,067 NA
TOTAL_HOURS = 43824
AFTER_DATA = datetime(2015, 6, 1, tzinfo=UTC)

HOUR_KEYS = [
    "datetime",
    "datetimeEpoch",
    "temp",
    "humidity",
    "dew",
    "preciptype",
    "windspeed",
    "winddir",
    "pressure",
    "stations",
    "source",
]
DAY_KEYS = [
    "datetime",
    "datetimeEpoch",
    "tempmax",
    "tempmin",
    "temp",
    "dew",
    "humidity",
    "preciptype",
    "windspeed",
    "pressure",
    "stations",
    "source",
    "hours",
]
TOP_KEYS = [
    "queryCost",
    "latitude",
    "longitude",
    "resolvedAddress",
    "address",
    "timezone",
    "tzoffset",
    "days",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def owm_list(response: RawResponse) -> list[dict[str, Any]]:
    payload = json.loads(response.body)
    assert response.record_count == len(payload["list"])
    return payload["list"]


def vc_days(response: RawResponse) -> list[dict[str, Any]]:
    payload = json.loads(response.body)
    assert response.record_count == sum(len(day["hours"]) for day in payload["days"])
    return payload["days"]


@pytest.fixture(scope="module")
def air() -> ReplayAirPollutionSource:
    return ReplayAirPollutionSource()


@pytest.fixture(scope="module")
def weather() -> ReplayWeatherSource:
    return ReplayWeatherSource()


# --------------------------------------------------------------------------- contract


def test_sources_implement_the_protocols(
    air: ReplayAirPollutionSource, weather: ReplayWeatherSource
) -> None:
    assert isinstance(air, AirPollutionSource)
    assert isinstance(weather, WeatherSource)
    assert air.source_name == "replay-openweathermap"
    assert weather.source_name == "replay-visualcrossing"
    assert air.now() == weather.now() == DEFAULT_NOW == utc(2014, 12, 31)


def test_default_location_is_the_station() -> None:
    assert Location("beijing", beijing.STATION_LATITUDE, beijing.STATION_LONGITUDE) == BEIJING


def test_clock_is_configurable_and_normalised_to_utc() -> None:
    source = ReplayAirPollutionSource(now="2012-03-04T20:30:00+08:00")
    assert source.now() == utc(2012, 3, 4, 12, 30)
    assert source.now().tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        ReplayWeatherSource(now=datetime(2013, 1, 1))


# --------------------------------------------------------------------------- OWM shape


def test_history_body_is_compact_owm_json_with_known_real_values(
    air: ReplayAirPollutionSource,
) -> None:
    response = air.history(BEIJING, utc(2010, 1, 1, 16), utc(2010, 1, 1, 19))
    assert response.body == (
        b'{"coord":{"lon":116.47,"lat":39.95},"list":['
        b'{"main":{"aqi":5},"components":{"pm2_5":129.0},"dt":1262361600},'
        b'{"main":{"aqi":5},"components":{"pm2_5":148.0},"dt":1262365200},'
        b'{"main":{"aqi":5},"components":{"pm2_5":159.0},"dt":1262368800},'
        b'{"main":{"aqi":5},"components":{"pm2_5":181.0},"dt":1262372400}]}'
    )
    assert response.record_count == 4
    assert response.duration_s >= 0
    assert response.url == (
        "replay://openweathermap/history?lat=39.95&lon=116.47&start=1262361600&end=1262372400"
    )


def test_history_records_have_owm_keys_order_and_types(air: ReplayAirPollutionSource) -> None:
    payload = json.loads(air.history(BEIJING, utc(2013, 1, 1), utc(2013, 2, 1)).body)
    assert list(payload) == ["coord", "list"]
    assert list(payload["coord"]) == ["lon", "lat"]
    records = payload["list"]
    assert len(records) > 600
    for record in records:
        assert list(record) == ["main", "components", "dt"]
        assert list(record["main"]) == ["aqi"] and type(record["main"]["aqi"]) is int
        assert 1 <= record["main"]["aqi"] <= 5
        assert list(record["components"]) == ["pm2_5"]  # never invented components
        assert isinstance(record["components"]["pm2_5"], float)
        assert type(record["dt"]) is int and record["dt"] % HOUR == 0
        assert record["main"]["aqi"] == beijing.owm_aqi_from_pm25(record["components"]["pm2_5"])
    dts = [r["dt"] for r in records]
    assert dts == sorted(set(dts))


def test_coord_echoes_the_requested_point(air: ReplayAirPollutionSource) -> None:
    centre = Location("beijing-centre", 39.9042, 116.4074)
    payload = json.loads(air.history(centre, utc(2013, 1, 1), utc(2013, 1, 1, 5)).body)
    assert payload["coord"] == {"lon": 116.4074, "lat": 39.9042}


def test_history_bounds_are_inclusive_and_need_not_be_hour_aligned(
    air: ReplayAirPollutionSource,
) -> None:
    inclusive = owm_list(air.history(BEIJING, utc(2010, 1, 1, 17), utc(2010, 1, 1, 18)))
    assert [r["dt"] for r in inclusive] == [
        FIRST_MEASURED_EPOCH + HOUR,
        FIRST_MEASURED_EPOCH + 2 * HOUR,
    ]
    inner = owm_list(air.history(BEIJING, utc(2010, 1, 1, 16, 0, 1), utc(2010, 1, 1, 18, 59, 59)))
    assert [r["dt"] for r in inner] == [
        FIRST_MEASURED_EPOCH + HOUR,
        FIRST_MEASURED_EPOCH + 2 * HOUR,
    ]
    point = owm_list(air.history(BEIJING, utc(2010, 1, 1, 16), utc(2010, 1, 1, 16)))
    assert [r["dt"] for r in point] == [FIRST_MEASURED_EPOCH]


def test_history_accepts_any_utc_equivalent_timezone(air: ReplayAirPollutionSource) -> None:
    start = datetime(2010, 1, 2, 0, tzinfo=timezone(timedelta(hours=8)))  # = 16:00Z
    records = owm_list(air.history(BEIJING, start, start))
    assert [r["dt"] for r in records] == [FIRST_MEASURED_EPOCH]


def test_na_hours_are_absent(air: ReplayAirPollutionSource) -> None:
    # The whole first local day (2010-01-01) is NA in the raw file.
    response = air.history(BEIJING, utc(2009, 12, 31, 16), utc(2010, 1, 1, 15))
    assert response.body == b'{"coord":{"lon":116.47,"lat":39.95},"list":[]}'
    assert response.record_count == 0


def test_history_never_returns_records_after_now(air: ReplayAirPollutionSource) -> None:
    source = ReplayAirPollutionSource(utc(2012, 6, 1, 12, 30))
    records = owm_list(source.history(BEIJING, utc(2012, 6, 1), utc(2012, 6, 3)))
    assert records
    assert max(r["dt"] for r in records) <= epoch(utc(2012, 6, 1, 12))
    assert owm_list(source.history(BEIJING, utc(2012, 7, 1), utc(2012, 7, 2))) == []
    default_clock = owm_list(air.history(BEIJING, utc(2014, 12, 30), utc(2015, 1, 1)))
    assert max(r["dt"] for r in default_clock) <= epoch(DEFAULT_NOW)


def test_whole_data_set_record_count() -> None:
    records = owm_list(
        ReplayAirPollutionSource(AFTER_DATA).history(BEIJING, utc(2009, 1, 1), AFTER_DATA)
    )
    assert len(records) == TOTAL_RECORDS
    assert records[0]["dt"] == FIRST_MEASURED_EPOCH
    assert records[-1]["dt"] == LAST_EPOCH
    assert records[-1]["components"]["pm2_5"] == 12.0  # last raw row: 2014-12-31 23:00, 12


def test_history_rejects_reversed_range_and_naive_times(air: ReplayAirPollutionSource) -> None:
    with pytest.raises(SourceError) as err:
        air.history(BEIJING, utc(2013, 1, 2), utc(2013, 1, 1))
    assert err.value.status == 400
    with pytest.raises(ValueError, match="timezone-aware"):
        air.history(BEIJING, datetime(2013, 1, 1), datetime(2013, 1, 2))


# --------------------------------------------------------------------------- station check


PARIS = Location("paris", 48.8566, 2.3522)


@pytest.mark.parametrize("call", ["history", "timeline"])
def test_a_location_other_than_the_station_is_an_error(
    air: ReplayAirPollutionSource, weather: ReplayWeatherSource, call: str
) -> None:
    with pytest.raises(SourceError) as err:
        if call == "history":
            air.history(PARIS, utc(2013, 1, 1), utc(2013, 1, 2))
        else:
            weather.timeline(PARIS, date(2013, 1, 1), date(2013, 1, 1))
    assert err.value.status == 404
    assert err.value.location == "paris"
    assert "replay" in str(err.value) and "Beijing" in str(err.value)


def test_nearby_points_and_explicit_aliases_are_served(air: ReplayAirPollutionSource) -> None:
    def first_hour(source: ReplayAirPollutionSource, location: Location) -> RawResponse:
        return source.history(location, utc(2010, 1, 1, 16), utc(2010, 1, 1, 16))

    for near in (Location("centre", 39.9042, 116.4074), Location("edge", 40.44, 116.96)):
        assert first_hour(air, near).record_count == 1
    with pytest.raises(SourceError):
        first_hour(air, Location("too-far", 40.46, 116.47))
    aliased = ReplayAirPollutionSource(station_aliases=("my-station",))
    assert first_hour(aliased, Location("my-station", 0.0, 0.0)).record_count == 1


def test_out_of_range_coordinates_are_a_400(air: ReplayAirPollutionSource) -> None:
    with pytest.raises(SourceError) as err:
        air.history(Location("bad", 91.0, 116.47), utc(2013, 1, 1), utc(2013, 1, 2))
    assert err.value.status == 400
    assert "wrong latitude" in str(err.value)


# --------------------------------------------------------------------------- VC shape


def test_timeline_has_vc_shape_key_order_and_types(weather: ReplayWeatherSource) -> None:
    response = weather.timeline(BEIJING, date(2013, 7, 15), date(2013, 7, 15))
    assert b": " not in response.body and b", " not in response.body
    payload = json.loads(response.body)
    assert list(payload) == TOP_KEYS
    assert payload["queryCost"] == 24
    assert (payload["latitude"], payload["longitude"]) == (39.95, 116.47)
    assert payload["resolvedAddress"] == payload["address"] == "39.95,116.47"
    assert (payload["timezone"], payload["tzoffset"]) == ("Z", 0.0)
    (day,) = payload["days"]
    assert list(day) == DAY_KEYS
    assert day["datetime"] == "2013-07-15"
    assert day["datetimeEpoch"] == epoch(utc(2013, 7, 15))  # UTC midnight: timezone=Z
    assert (day["stations"], day["source"]) == (None, "obs")
    hours = day["hours"]
    assert len(hours) == 24 == response.record_count
    for k, hour in enumerate(hours):
        assert list(hour) == HOUR_KEYS
        assert hour["datetime"] == f"{k:02d}:00:00"
        assert hour["datetimeEpoch"] == day["datetimeEpoch"] + k * HOUR
        for key in ("temp", "humidity", "dew", "windspeed", "pressure"):
            assert isinstance(hour[key], float), key
        assert hour["winddir"] is None or hour["winddir"] in (45.0, 135.0, 225.0, 315.0)
        assert hour["winddir"] is not None or hour["windspeed"] == 0.0
        assert hour["preciptype"] in (None, ["rain"], ["snow"])
        assert 0.0 <= hour["humidity"] <= 100.0
        assert (hour["stations"], hour["source"]) == (None, "obs")
    assert response.url == (
        "replay://visualcrossing/timeline/39.95,116.47/2013-07-15/2013-07-15"
        "?unitGroup=metric&include=days,hours&timezone=Z"
    )


def test_day_aggregates_are_computed_from_the_hours(weather: ReplayWeatherSource) -> None:
    days = vc_days(weather.timeline(BEIJING, date(2012, 1, 1), date(2012, 12, 31)))
    assert len(days) == 366
    for day in days:
        hours = day["hours"]
        temps = [h["temp"] for h in hours]
        assert day["tempmax"] == max(temps) and day["tempmin"] == min(temps)
        assert day["temp"] == pytest.approx(sum(temps) / len(temps), abs=0.051)
        assert day["windspeed"] == max(h["windspeed"] for h in hours)
        kinds = sorted({k for h in hours for k in (h["preciptype"] or [])})
        assert sorted(day["preciptype"] or []) == kinds
    assert any(day["preciptype"] == ["rain"] for day in days)


def test_timeline_first_hour_is_the_first_raw_row(weather: ReplayWeatherSource) -> None:
    days = vc_days(weather.timeline(BEIJING, date(2009, 12, 31), date(2010, 1, 1)))
    assert [d["datetime"] for d in days] == ["2009-12-31", "2010-01-01"]
    assert [len(d["hours"]) for d in days] == [8, 24]  # data starts 16:00Z
    first = days[0]["hours"][0]
    # Raw row 1: 2010-01-01 00:00 local, DEWP -21, TEMP -11, PRES 1021, NW, Iws 1.79.
    assert first["datetime"] == "16:00:00"
    assert first["datetimeEpoch"] == 1262275200
    assert (first["temp"], first["dew"], first["pressure"]) == (-11.0, -21.0, 1021.0)
    assert (first["windspeed"], first["winddir"]) == (6.4, 315.0)


def test_every_hour_is_served_once_in_its_own_day() -> None:
    # A clock after the range: every hour observed. Each day holds its own hours only.
    days = vc_days(
        ReplayWeatherSource(AFTER_DATA).timeline(BEIJING, date(2012, 3, 1), date(2012, 3, 4))
    )
    epochs = [h["datetimeEpoch"] for d in days for h in d["hours"]]
    assert len(epochs) == len(set(epochs)) == 4 * 24
    for day in days:
        assert {h["datetimeEpoch"] // 86400 * 86400 for h in day["hours"]} == {day["datetimeEpoch"]}


def test_hours_after_now_are_forecast_hours() -> None:
    source = ReplayWeatherSource(utc(2013, 3, 10, 5, 30))
    response = source.timeline(BEIJING, date(2013, 3, 9), date(2013, 3, 11))
    days = vc_days(response)
    assert [d["source"] for d in days] == ["obs", "comb", "fcst"]
    mixed = days[1]["hours"]
    assert [h["source"] for h in mixed] == ["obs"] * 6 + ["fcst"] * 18
    assert all(h["stations"] is None for h in mixed)
    assert json.loads(response.body)["queryCost"] == 24 + 6 + 1  # a forecast bills as 1


def test_each_day_holds_its_own_hours_only() -> None:
    """A day observed before the clock holds its 24 hours, not every hour up to the clock
    (a year's timeline was 911 MB when each day ran on to ``now``)."""
    source = ReplayWeatherSource(utc(2013, 3, 10, 5, 30))
    days = vc_days(source.timeline(BEIJING, date(2013, 3, 8), date(2013, 3, 10)))
    assert [len(d["hours"]) for d in days] == [24, 24, 24]
    assert [h["source"] for h in days[2]["hours"]] == ["obs"] * 6 + ["fcst"] * 18
    hours = [h["datetimeEpoch"] for d in days for h in d["hours"]]
    assert hours == sorted(set(hours))


def test_days_beyond_the_forecast_horizon_or_the_data_are_left_out() -> None:
    source = ReplayWeatherSource(utc(2013, 3, 10, 5))
    days = vc_days(source.timeline(BEIJING, date(2013, 3, 20), date(2013, 4, 30)))
    assert days[-1]["datetime"] == "2013-03-24"  # today + 14 days
    beyond = source.timeline(BEIJING, date(2013, 4, 1), date(2013, 4, 2))
    assert vc_days(beyond) == [] and beyond.record_count == 0
    end_of_data = ReplayWeatherSource(AFTER_DATA).timeline(
        BEIJING, date(2014, 12, 31), date(2015, 1, 2)
    )
    assert [(d["datetime"], len(d["hours"])) for d in vc_days(end_of_data)] == [("2014-12-31", 16)]


def test_timeline_rejects_reversed_range_and_datetimes(weather: ReplayWeatherSource) -> None:
    with pytest.raises(SourceError) as err:
        weather.timeline(BEIJING, date(2013, 1, 2), date(2013, 1, 1))
    assert err.value.status == 400
    with pytest.raises(TypeError, match="date"):
        weather.timeline(BEIJING, utc(2013, 1, 1), utc(2013, 1, 1))  # type: ignore[arg-type]


def test_whole_data_set_hour_count() -> None:
    response = ReplayWeatherSource(AFTER_DATA).timeline(
        BEIJING, date(2009, 12, 31), date(2014, 12, 31)
    )
    assert response.record_count == TOTAL_HOURS
    assert json.loads(response.body)["queryCost"] == TOTAL_HOURS


def test_a_year_of_day_by_day_pulls() -> None:
    """What a daily-partitioned backfill does; fast because pulls only slice sorted arrays."""
    air, weather = ReplayAirPollutionSource(), ReplayWeatherSource()
    day = date(2013, 1, 1)
    hours = records = 0
    while day.year == 2013:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        records += air.history(BEIJING, start, start + timedelta(hours=23)).record_count
        hours += weather.timeline(BEIJING, day, day).record_count
        day += timedelta(days=1)
    assert hours == 365 * 24
    whole_year = air.history(BEIJING, utc(2013, 1, 1), utc(2013, 12, 31, 23))
    assert records == whole_year.record_count
    assert 8000 < records < 8760


# --------------------------------------------------------------------------- committed files


def test_committed_files_are_small() -> None:
    folder = resources.files("airquality_assets.data").joinpath("replay")
    sizes = [
        len(folder.joinpath(name).read_bytes())
        for name in (beijing.OWM_FILE_NAME, beijing.VC_FILE_NAME)
    ]
    assert sum(sizes) < 3_000_000


def test_committed_files_match_a_fresh_conversion_of_the_raw_csv(tmp_path: Path) -> None:
    raw = os.environ.get("AIRQUALITY_BEIJING_RAW_CSV", "")
    if not raw or not Path(raw).is_file():
        pytest.skip("set AIRQUALITY_BEIJING_RAW_CSV to the raw hourly_beijing_pm.csv to run")
    summary = beijing.convert(raw, tmp_path)
    assert summary.raw_rows == TOTAL_HOURS
    assert summary.air_pollution_records == TOTAL_RECORDS
    folder = resources.files("airquality_assets.data").joinpath("replay")
    for name in (beijing.OWM_FILE_NAME, beijing.VC_FILE_NAME):
        fresh = gzip.decompress((tmp_path / name).read_bytes())
        assert fresh == gzip.decompress(folder.joinpath(name).read_bytes()), name


def test_replay_locations_are_distinct_deterministic_and_served() -> None:
    from airquality_assets.sources.replay import replay_locations

    assert replay_locations(1) == [BEIJING]
    many = replay_locations(100)
    assert [loc.name for loc in many[:2]] == ["beijing-001", "beijing-002"]
    assert many[-1].name == "beijing-100"
    assert len({loc.name for loc in many}) == 100
    assert replay_locations(100) == many
    source = ReplayAirPollutionSource()
    start = datetime(2014, 3, 1, tzinfo=UTC)
    end = datetime(2014, 3, 1, 23, tzinfo=UTC)
    first = source.history(many[0], start, end)
    last = source.history(many[-1], start, end)
    assert first.body == last.body and first.record_count == 24
    with pytest.raises(ValueError):
        replay_locations(0)


# --------------------------------------------------------------------------- stand-in forecasts

ISSUE = utc(2013, 7, 15, 6)  # days 2013-07-15 .. 2013-07-17 (06 UTC + 48 h)


def forecast_hours(response: RawResponse) -> list[dict[str, Any]]:
    return [hour for day in vc_days(response) for hour in day["hours"]]


def observed_hours(first: date, last: date) -> dict[int, dict[str, Any]]:
    served = ReplayWeatherSource(AFTER_DATA).timeline(BEIJING, first, last)
    return {h["datetimeEpoch"]: h for h in forecast_hours(served)}


def test_forecast_is_a_timeline_body_over_the_issues_48_hours() -> None:
    source = ReplayWeatherSource(utc(2013, 7, 15, 9))
    response = source.forecast(BEIJING, ISSUE + timedelta(minutes=20))  # floored to 06:00
    payload = json.loads(response.body)
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert response.body == compact  # one line, VC's compact separators
    assert list(payload) == [*TOP_KEYS[:-1], "description", "days"]
    assert payload["queryCost"] == 1  # VC bills a forecast as one record
    assert "stand-in" in payload["description"]
    days = payload["days"]
    assert [d["datetime"] for d in days] == ["2013-07-15", "2013-07-16", "2013-07-17"]
    assert [d["source"] for d in days] == ["comb", "fcst", "fcst"]
    hours = forecast_hours(response)
    assert len(hours) == 72 == response.record_count
    issue = epoch(ISSUE)
    for hour in hours:
        assert list(hour) == HOUR_KEYS
        assert hour["source"] == ("obs" if hour["datetimeEpoch"] <= issue else "fcst")
        assert hour["stations"] is None
    for day in days:  # the aggregates are those of the hours as served
        temps = [h["temp"] for h in day["hours"]]
        assert (day["tempmax"], day["tempmin"]) == (max(temps), min(temps))
    assert response.url == (
        "replay://visualcrossing/timeline/39.95,116.47/2013-07-15/2013-07-17"
        "?unitGroup=metric&include=days,hours&timezone=Z&issued=2013-07-15T06:00:00Z"
        "&error_scale=1&error_seed=0"
    )


def test_forecast_hours_up_to_the_issue_are_the_observations_and_later_ones_are_not() -> None:
    response = ReplayWeatherSource(ISSUE).forecast(BEIJING, ISSUE)
    observed = observed_hours(date(2013, 7, 15), date(2013, 7, 17))
    hours = forecast_hours(response)
    for hour in hours:
        if hour["source"] == "obs":
            assert hour == observed[hour["datetimeEpoch"]]
    forecast = [h for h in hours if h["source"] == "fcst"]
    assert len(forecast) == 65  # 07:00 on the 15th .. the 17th's last hour
    moved = [h["temp"] != observed[h["datetimeEpoch"]]["temp"] for h in forecast]
    assert sum(moved) > 50  # an error on (almost) every hour: never the later measurement
    assert all(h["datetime"] == observed[h["datetimeEpoch"]]["datetime"] for h in forecast)


def test_a_re_pull_is_byte_identical_and_the_seed_and_location_change_it() -> None:
    first = ReplayWeatherSource(utc(2013, 8, 1)).forecast(BEIJING, ISSUE).body
    again = ReplayWeatherSource(utc(2014, 1, 1)).forecast(BEIJING, ISSUE).body  # a later clock
    assert first == again
    from airquality_assets.sources.forecast_errors import ForecastErrorModel

    reseeded = ReplayWeatherSource(ISSUE, error_model=ForecastErrorModel(seed=1))
    assert reseeded.forecast(BEIJING, ISSUE).body != first
    alias = Location("beijing-002", BEIJING.latitude, BEIJING.longitude)
    aliased = ReplayWeatherSource(ISSUE, station_aliases=("beijing-002",))
    assert aliased.forecast(alias, ISSUE).body != first  # its own errors


def test_error_scale_zero_serves_the_observations_as_the_forecast() -> None:
    from airquality_assets.sources.forecast_errors import ForecastErrorModel

    perfect = ReplayWeatherSource(ISSUE, error_model=ForecastErrorModel(scale=0.0))
    observed = observed_hours(date(2013, 7, 15), date(2013, 7, 17))
    for hour in forecast_hours(perfect.forecast(BEIJING, ISSUE)):
        expected = {**observed[hour["datetimeEpoch"]], "source": hour["source"]}
        assert hour == expected


def test_forecast_values_are_the_error_models_rounded_as_vc_prints_them() -> None:
    """The body and :func:`stand_in_forecasts` over the same observations agree to the
    printed decimals: one error model, two ways to use it."""
    import pandas as pd

    from airquality_assets.sources.forecast_errors import stand_in_forecasts
    from airquality_assets.transforms.parsing import parse_weather, parse_weather_forecasts

    issues = [ISSUE + timedelta(hours=6 * k) for k in range(8)]
    source = ReplayWeatherSource(AFTER_DATA)
    parsed = parse_weather_forecasts(
        [(issue, source.forecast(BEIJING, issue).body) for issue in issues], "beijing"
    )
    weather = parse_weather(
        source.timeline(BEIJING, date(2013, 7, 15), date(2013, 7, 21)).body, "beijing"
    )
    made = stand_in_forecasts(weather, issues, "beijing")
    merged = parsed.merge(made, on=["issue_time", "time", "lead"], suffixes=("", "_made"))
    assert len(merged) == len(parsed) == 8 * 48
    printed = {"temp": 1, "dew": 1, "pressure": 1, "humidity": 2, "windspeed": 1}
    for column, decimals in printed.items():
        gap = (merged[column] - merged[f"{column}_made"]).abs().max()
        assert gap <= 0.5 * 10**-decimals + 1e-9, column
    both = merged["winddir"].notna() & merged["winddir_made"].notna()
    turn = (merged.loc[both, "winddir"] - merged.loc[both, "winddir_made"]).abs()
    assert (pd.concat([turn, 360 - turn], axis=1).min(axis=1) <= 0.05 + 1e-9).all()


def test_an_issue_after_the_clock_does_not_exist_yet() -> None:
    source = ReplayWeatherSource(ISSUE)
    assert source.forecast(BEIJING, ISSUE).record_count == 72  # the issue due now: served
    with pytest.raises(SourceError) as err:
        source.forecast(BEIJING, ISSUE + timedelta(hours=1))
    assert err.value.status == 400
    assert "not issued yet" in str(err.value)
    assert err.value.time_range == "forecast issued 2013-07-15T07:00:00Z"


def test_forecast_near_the_end_of_the_data_leaves_the_missing_hours_out() -> None:
    response = ReplayWeatherSource(AFTER_DATA).forecast(BEIJING, utc(2014, 12, 31, 6))
    hours = forecast_hours(response)
    assert hours[-1]["datetimeEpoch"] == LAST_EPOCH
    assert response.record_count == 16  # the data ends at 15:00Z on the issue's day


def test_forecast_for_another_place_is_a_404(weather: ReplayWeatherSource) -> None:
    with pytest.raises(SourceError) as err:
        weather.forecast(PARIS, ISSUE)
    assert err.value.status == 404


def test_the_air_pollution_forecast_is_not_available_in_replay(
    air: ReplayAirPollutionSource,
) -> None:
    from airquality_assets.sources.base import NotAvailableError

    with pytest.raises(NotAvailableError) as err:
        air.forecast(BEIJING, ISSUE)
    assert not isinstance(err.value, SourceError)  # nothing to retry, no breaker to trip
    assert "not available in replay" in str(err.value)
    with pytest.raises(SourceError):
        air.forecast(PARIS, ISSUE)  # a wrong place is still the caller's error
