"""Tests of the pure Beijing PM2.5 conversion (raw CSV -> OWM / VC shapes).

The in-test CSV snippet copies the raw file's exact format (header, ``NA``, integer and
fractional fields), so these run in CI without the real data set.
"""

from __future__ import annotations

import gzip
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from airquality_assets.data import beijing

RAW_SNIPPET = """\
No,year,month,day,hour,pm2.5,DEWP,TEMP,PRES,cbwd,Iws,Is,Ir
1,2010,1,1,0,NA,-21,-11,1021,NW,1.79,0,0
2,2010,1,1,1,NA,-21,-12,1020,NW,4.92,0,0
3,2010,1,1,2,9,-21,-11,1019,cv,0.89,0,0
4,2010,1,1,3,10,-20,-12,1019.5,cv,1.78,1,0
5,2010,1,1,4,24.5,-19,-10,1017,SE,1.79,2,0
6,2010,1,1,5,25,-19,14.66666667,1017,SE,3.58,0,1
7,2010,1,1,6,NA,20,20,1017,NE,0.89,0,2
8,2010,1,1,7,75,10,20,1017,NE,4.02,0,0
"""


@pytest.fixture
def raw_csv(tmp_path: Path) -> Path:
    path = tmp_path / "hourly_beijing_pm.csv"
    path.write_text(RAW_SNIPPET)
    return path


def test_local_midnight_2010_is_utc_16h_the_day_before() -> None:
    (epoch,) = beijing.local_to_utc_epoch(2010, 1, 1, 0)
    assert datetime.fromtimestamp(int(epoch), tz=UTC) == datetime(2009, 12, 31, 16, tzinfo=UTC)
    assert epoch == 1262275200


def test_utc_conversion_is_vectorised_and_hourly() -> None:
    epochs = beijing.local_to_utc_epoch([2014, 2014], [12, 12], [31, 31], [22, 23])
    assert epochs.tolist() == [1420034400, 1420038000]  # 14:00Z and 15:00Z


@pytest.mark.parametrize(
    ("temp", "dew", "expected"),
    [
        (20.0, 20.0, 100.0),
        (20.0, 10.0, 52.6),  # e_w(10) / e_w(20) = 12.28 / 23.39 hPa (tables); Magnus: 52.54
        (0.0, -10.0, 46.8),  # 2.86 / 6.11 hPa, over supercooled water
        (30.0, 20.0, 55.1),  # 23.39 / 42.47 hPa
    ],
)
def test_magnus_relative_humidity_known_values(temp: float, dew: float, expected: float) -> None:
    """Expected values are ratios of tabulated saturation vapour pressures (not the formula)."""
    rh = float(beijing.magnus_relative_humidity(temp, dew))
    assert rh == pytest.approx(expected, abs=0.15)


def test_magnus_relative_humidity_is_clipped_to_0_100() -> None:
    rh = beijing.magnus_relative_humidity([5.0, -40.0], [6.0, -40.0])
    assert rh.tolist() == [100.0, 100.0]
    assert 0.0 <= float(beijing.magnus_relative_humidity(42.0, -40.0)) < 1.0


def test_wind_speed_from_cumulated_iws() -> None:
    # NW run (1.79 then +3.13), change to NE restarts the sum, calm hours are 0 whatever Iws
    # says, and a run restarting with the same code but a smaller sum uses Iws itself.
    iws = [1.79, 4.92, 1.79, 2.68, 0.89, 1.78, 4.02, 3.13, 1.79]
    cbwd = ["NW", "NW", "NE", "NE", "cv", "cv", "SE", "SE", "SE"]
    speed = beijing.hourly_wind_speed_ms(iws, cbwd)
    np.testing.assert_allclose(speed, [1.79, 3.13, 1.79, 0.89, 0.0, 0.0, 4.02, 3.13, 1.79])


def test_wind_speed_ignores_float_noise_in_differences() -> None:
    speed = beijing.hourly_wind_speed_ms([0.1, 0.3], ["NW", "NW"])
    assert speed[1] == 0.2  # rounded to Iws's 2 decimals, not 0.19999999999999998


def test_wind_speed_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        beijing.hourly_wind_speed_ms([1.0, 2.0], ["NW"])


@pytest.mark.parametrize(
    ("code", "degrees"), [("NE", 45.0), ("SE", 135.0), ("SW", 225.0), ("NW", 315.0), ("cv", None)]
)
def test_quadrant_degrees(code: str, degrees: float | None) -> None:
    assert beijing.wind_direction_degrees(code) == degrees


def test_unknown_quadrant_is_an_error() -> None:
    with pytest.raises(ValueError, match="'N'"):
        beijing.wind_direction_degrees("N")


def test_precip_types_from_cumulated_counts() -> None:
    snow = [0, 1, 2, 0, 0, 0, 0]
    rain = [0, 0, 0, 1, 3, 0, 1]  # 1 -> 3 skips a number; still rain
    assert beijing.precip_types(snow, rain) == [
        None,
        ["snow"],
        ["snow"],
        ["rain"],
        ["rain"],
        None,
        ["rain"],
    ]


@pytest.mark.parametrize(
    ("pm25", "aqi"),
    [(0.0, 1), (9.99, 1), (10.0, 2), (24.9, 2), (25.0, 3), (49.9, 3), (50.0, 4), (75.0, 5)],
)
def test_owm_aqi_bands_are_half_open(pm25: float, aqi: int) -> None:
    assert beijing.owm_aqi_from_pm25(pm25) == aqi


def test_owm_aqi_rejects_missing_or_negative() -> None:
    for bad in (math.nan, -1.0):
        with pytest.raises(ValueError):
            beijing.owm_aqi_from_pm25(bad)


def test_air_pollution_records_skip_na_and_carry_only_pm25(raw_csv: Path) -> None:
    frame = beijing.read_raw_csv(raw_csv)
    records = beijing.air_pollution_records(frame)
    assert len(records) == 5  # 8 rows, 3 NA
    first = records[0]
    assert list(first) == ["main", "components", "dt"]
    assert first == {"main": {"aqi": 1}, "components": {"pm2_5": 9.0}, "dt": 1262282400}
    assert [r["main"]["aqi"] for r in records] == [1, 2, 2, 3, 5]
    assert all(list(r["components"]) == ["pm2_5"] for r in records)
    na_epochs = {1262275200, 1262278800, 1262296800}  # local 00:00, 01:00, 06:00
    assert na_epochs.isdisjoint(r["dt"] for r in records)


def test_weather_hours_shape_and_derivations(raw_csv: Path) -> None:
    hours = beijing.weather_hours(beijing.read_raw_csv(raw_csv))
    assert len(hours) == 8  # weather is kept for NA pm2.5 hours too
    first = hours[0]
    assert list(first) == [
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
    assert first["datetime"] == "16:00:00"
    assert first["datetimeEpoch"] == 1262275200
    assert (first["temp"], first["dew"], first["pressure"]) == (-11.0, -21.0, 1021.0)
    assert first["windspeed"] == round(1.79 * 3.6, 1)
    assert first["winddir"] == 315.0
    assert (first["stations"], first["source"]) == (None, "obs")
    assert hours[1]["windspeed"] == round(3.13 * 3.6, 1)
    calm = hours[2]
    assert (calm["windspeed"], calm["winddir"]) == (0.0, None)
    assert hours[3]["pressure"] == 1019.5
    assert [h["preciptype"] for h in hours] == [
        None,
        None,
        None,
        ["snow"],
        ["snow"],
        ["rain"],
        ["rain"],
        None,
    ]
    assert hours[5]["temp"] == 14.7
    assert hours[6]["humidity"] == 100.0
    assert hours[7]["humidity"] == pytest.approx(52.54, abs=0.01)
    for absent in ("precip", "snow", "feelslike", "cloudcover", "conditions", "icon"):
        assert all(absent not in h for h in hours)


def test_read_raw_csv_rejects_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("No,year,month,day,hour,pm25\n1,2010,1,1,0,5\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        beijing.read_raw_csv(path)


def test_read_raw_csv_rejects_unordered_hours(tmp_path: Path) -> None:
    lines = RAW_SNIPPET.splitlines()
    path = tmp_path / "swapped.csv"
    path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")
    with pytest.raises(ValueError, match="increasing"):
        beijing.read_raw_csv(path)


def test_convert_writes_deterministic_gzip_files(raw_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    summary = beijing.convert(raw_csv, out)
    assert summary == beijing.ConversionSummary(
        raw_rows=8,
        pm25_missing=3,
        air_pollution_records=5,
        weather_hours=8,
        first_epoch=1262275200,
        last_epoch=1262275200 + 7 * 3600,
    )
    owm = json.loads(gzip.decompress((out / beijing.OWM_FILE_NAME).read_bytes()))
    assert list(owm) == ["coord", "list"]
    assert owm["coord"] == {"lon": beijing.STATION_LONGITUDE, "lat": beijing.STATION_LATITUDE}
    assert len(owm["list"]) == 5
    vc = json.loads(gzip.decompress((out / beijing.VC_FILE_NAME).read_bytes()))
    assert len(vc["hours"]) == 8
    first_bytes = {p.name: p.read_bytes() for p in out.iterdir()}
    beijing.convert(raw_csv, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first_bytes
