"""Convert the UCI "Beijing PM2.5" data set into OpenWeatherMap / Visual Crossing JSON shapes.

The replay source (:mod:`airquality_assets.sources.replay`) serves real measurements through
the same JSON shapes the live APIs return, so the demo runs the production parsing code. This
module holds the pure, tested conversion from the raw CSV to those shapes; the thin CLI
``scripts/convert_beijing_pm25.py`` runs it once and the output is committed.

Raw data (Liang et al. 2015, CC BY 4.0): hourly readings from the US Embassy station in
Beijing, 2010-01-01 .. 2014-12-31 in Beijing local time (UTC+8, no DST). Columns ``No, year,
month, day, hour, pm2.5, DEWP, TEMP, PRES, cbwd, Iws, Is, Ir``.

Honesty rules, because downstream code must not mistake invented numbers for measurements:

* Only measured or derived fields are emitted. The station measured PM2.5 only, so an
  air-pollution record has ``components`` ``{"pm2_5": x}`` and nothing else; an hour whose
  PM2.5 is ``NA`` is left out of the list, exactly like an hour the API did not return.
* ``main.aqi`` is *derived* from PM2.5 with OWM's published band table (the one copy is
  ``aqi.py``); the live API computes it server-side from all pollutants.
* Weather fields that the station did not record (precipitation amount, snow depth, cloud
  cover, visibility, ...) are absent from the hour objects, never zero.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.aqi import aqi_band

# Approximate position of the US Embassy monitor (Anjialou, Chaoyang district). The data set
# does not publish coordinates; these are read off a map and good to about 1 km, which is far
# finer than the 0.5 degree tolerance the replay source uses to recognise the station.
STATION_LATITUDE = 39.95
STATION_LONGITUDE = 116.47
STATION_NAME = "beijing"

#: Beijing local time is UTC+8 all year (China has had no DST since 1991).
LOCAL_UTC_OFFSET_HOURS = 8

RAW_COLUMNS: tuple[str, ...] = (
    "No",
    "year",
    "month",
    "day",
    "hour",
    "pm2.5",
    "DEWP",
    "TEMP",
    "PRES",
    "cbwd",
    "Iws",
    "Is",
    "Ir",
)

#: Magnus formula constants of Alduchov & Eskridge (1996), J. Appl. Meteor. 35, 601-609:
#: saturation vapour pressure over water e_s(T) = 6.1094 * exp(B * T / (C + T)) hPa, T in degC,
#: accurate to <0.4 % for -40..50 degC, which covers this station (-19..42 degC).
MAGNUS_B = 17.625
MAGNUS_C_DEGC = 243.04

#: Quadrant codes used by the data set ("cv" = calm / variable has no direction).
WIND_QUADRANT_DEGREES: dict[str, float] = {"NE": 45.0, "SE": 135.0, "SW": 225.0, "NW": 315.0}
CALM_CODE = "cv"

MS_TO_KMH = 3.6

OWM_FILE_NAME = "owm_air_pollution.json.gz"
VC_FILE_NAME = "vc_hours.json.gz"


def local_to_utc_epoch(
    year: Any, month: Any, day: Any, hour: Any, offset_hours: int = LOCAL_UTC_OFFSET_HOURS
) -> np.ndarray:
    """Unix seconds (UTC) for Beijing local wall-clock hours: subtract the fixed +8 h offset.

    Accepts scalars or equal-length arrays; always returns an int64 array.
    """
    frame = pd.DataFrame(
        {
            "year": np.atleast_1d(year),
            "month": np.atleast_1d(month),
            "day": np.atleast_1d(day),
            "hour": np.atleast_1d(hour),
        }
    )
    local = pd.to_datetime(frame[["year", "month", "day", "hour"]])
    naive_seconds = local.to_numpy(dtype="datetime64[s]").astype(np.int64)
    return naive_seconds - offset_hours * 3600


def magnus_relative_humidity(temp_c: Any, dew_c: Any) -> np.ndarray:
    """Relative humidity in % from air temperature and dew point (both degC), clipped 0..100.

    RH = 100 * e_s(Td) / e_s(T) with the Magnus form (constants above); the 6.1094 prefactor
    cancels. Clipping matters because the station reports whole degrees, so a dew point a
    rounding step above the temperature (it happens once in the raw file) would give >100 %.
    """
    t = np.asarray(temp_c, dtype=float)
    td = np.asarray(dew_c, dtype=float)
    ratio = np.exp(MAGNUS_B * td / (MAGNUS_C_DEGC + td) - MAGNUS_B * t / (MAGNUS_C_DEGC + t))
    return np.clip(100.0 * ratio, 0.0, 100.0)


def hourly_wind_speed_ms(iws: Sequence[float] | np.ndarray, cbwd: Sequence[str]) -> np.ndarray:
    """Per-hour wind speed (m/s) recovered from the data set's cumulated ``Iws``.

    ``Iws`` adds each hour's speed to a running sum that restarts whenever the direction code
    ``cbwd`` changes. So the hour's own speed is ``Iws - previous Iws`` when the code stayed
    the same and the sum grew, and ``Iws`` itself at the start of a run (or if the sum did
    not grow, which would mean a restart the code does not show). Calm/variable hours ("cv")
    are reported as 0.0: the data set still accumulates a small value for them, but "calm" is
    what the observer recorded, and a speed without a direction would be misleading.
    """
    values = np.asarray(iws, dtype=float)
    codes = np.asarray(cbwd, dtype=object)
    if values.shape != codes.shape:
        raise ValueError("iws and cbwd must have the same length")
    speed = values.copy()
    if values.size > 1:
        # Round: Iws carries 2 decimals, so float noise must not flip the "grew" test.
        step = np.round(values[1:] - values[:-1], 2)
        same_run = codes[1:] == codes[:-1]
        use_step = same_run & (step > 0)
        speed[1:] = np.where(use_step, step, values[1:])
    speed[codes == CALM_CODE] = 0.0
    return speed


def wind_direction_degrees(code: str) -> float | None:
    """Direction the wind blows from, in degrees, for a quadrant code; ``None`` for calm.

    The data set only resolves quadrants, so NE is 45 degrees etc. (the quadrant's centre).
    """
    if code == CALM_CODE:
        return None
    try:
        return WIND_QUADRANT_DEGREES[code]
    except KeyError:
        raise ValueError(f"unknown wind direction code {code!r}") from None


def precip_types(snow_hours: Sequence[int], rain_hours: Sequence[int]) -> list[list[str] | None]:
    """VC ``preciptype`` per hour from the cumulated ``Is`` (snow) / ``Ir`` (rain) hour counts.

    The counts run 1, 2, 3, ... through a precipitation spell and are 0 otherwise, so a count
    above zero means it rained (snowed) during that hour. (A few spells skip a number, e.g.
    1 -> 3; the hour is still wet.) VC writes ``null``, not ``[]``, for a dry hour.
    """
    out: list[list[str] | None] = []
    for snow, rain in zip(snow_hours, rain_hours, strict=True):
        kinds = [kind for kind, count in (("rain", rain), ("snow", snow)) if count > 0]
        out.append(kinds or None)
    return out


def owm_aqi_from_pm25(pm25: float) -> int:
    """OWM's 1..5 index for a PM2.5 concentration (ug/m3), from the service's band table.

    This is a *derivation*: the live API's ``main.aqi`` is the server's own value over all
    pollutants, and the replay only knows PM2.5.
    """
    if math.isnan(pm25) or pm25 < 0:
        raise ValueError(f"PM2.5 must be a non-negative number, got {pm25!r}")
    return int(aqi_band("pm2_5", pm25))


def read_raw_csv(path: str | Path) -> pd.DataFrame:
    """Read the raw CSV, check its columns, and add ``epoch`` (UTC seconds) per row.

    Raises ``ValueError`` on an unexpected header or non-increasing hours, so a different
    file version cannot silently produce shifted data.
    """
    frame = pd.read_csv(path, na_values=["NA"], keep_default_na=False)
    if tuple(frame.columns) != RAW_COLUMNS:
        raise ValueError(f"unexpected columns {list(frame.columns)}, want {list(RAW_COLUMNS)}")
    frame["epoch"] = local_to_utc_epoch(frame["year"], frame["month"], frame["day"], frame["hour"])
    if not (np.diff(frame["epoch"].to_numpy()) > 0).all():
        raise ValueError("rows must be strictly increasing in time")
    return frame


def air_pollution_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """OWM ``list`` elements (key order main, components, dt); NA hours are left out."""
    records: list[dict[str, Any]] = []
    for epoch, pm25 in zip(frame["epoch"], frame["pm2.5"], strict=True):
        if pd.isna(pm25):
            continue
        value = round(float(pm25), 2)
        records.append(
            {
                "main": {"aqi": owm_aqi_from_pm25(value)},
                "components": {"pm2_5": value},
                "dt": int(epoch),
            }
        )
    return records


def weather_hours(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """VC hour objects (UTC ``datetime``, VC key order) holding only measured/derived fields.

    Key order follows the VC hour object: datetime, datetimeEpoch, temp, humidity, dew,
    preciptype, windspeed, winddir, pressure, stations, source. Absent on purpose: feelslike,
    precip, precipprob, snow, snowdepth, windgust, visibility, cloudcover, solar fields,
    uvindex, severerisk, conditions, icon (not measured, and not honestly derivable).
    Numbers are rounded like VC's own output (1 decimal, humidity 2).
    """
    humidity = magnus_relative_humidity(frame["TEMP"], frame["DEWP"])
    speed_kmh = hourly_wind_speed_ms(frame["Iws"], frame["cbwd"]) * MS_TO_KMH
    kinds = precip_types(frame["Is"], frame["Ir"])
    hours: list[dict[str, Any]] = []
    columns = zip(
        frame["epoch"],
        frame["TEMP"],
        frame["DEWP"],
        frame["PRES"],
        frame["cbwd"],
        humidity,
        speed_kmh,
        kinds,
        strict=True,
    )
    for epoch, temp, dew, pressure, code, rh, speed, kind in columns:
        epoch = int(epoch)
        hours.append(
            {
                "datetime": utc_clock_string(epoch),
                "datetimeEpoch": epoch,
                "temp": round(float(temp), 1),
                "humidity": round(float(rh), 2),
                "dew": round(float(dew), 1),
                "preciptype": kind,
                "windspeed": round(float(speed), 1),
                "winddir": wind_direction_degrees(code),
                "pressure": round(float(pressure), 1),
                "stations": None,
                "source": "obs",
            }
        )
    return hours


def utc_clock_string(epoch: int) -> str:
    """``HH:mm:ss`` of a UTC epoch: VC's hour ``datetime`` when the request uses timezone=Z."""
    seconds = epoch % 86400
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_json_gz(obj: Any, path: Path) -> None:
    """Compact JSON, gzip with mtime 0: re-running the conversion gives identical bytes."""
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(payload)


@dataclass(frozen=True)
class ConversionSummary:
    """What one conversion saw and wrote; the script prints it, data/replay/README.md quotes it."""

    raw_rows: int
    pm25_missing: int
    air_pollution_records: int
    weather_hours: int
    first_epoch: int
    last_epoch: int


def convert(csv_path: str | Path, out_dir: str | Path) -> ConversionSummary:
    """Convert the raw CSV into the two committed replay files in ``out_dir``."""
    frame = read_raw_csv(csv_path)
    records = air_pollution_records(frame)
    hours = weather_hours(frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_gz(
        {"coord": {"lon": STATION_LONGITUDE, "lat": STATION_LATITUDE}, "list": records},
        out / OWM_FILE_NAME,
    )
    write_json_gz(
        {"latitude": STATION_LATITUDE, "longitude": STATION_LONGITUDE, "hours": hours},
        out / VC_FILE_NAME,
    )
    return ConversionSummary(
        raw_rows=len(frame),
        pm25_missing=int(frame["pm2.5"].isna().sum()),
        air_pollution_records=len(records),
        weather_hours=len(hours),
        first_epoch=int(frame["epoch"].iloc[0]),
        last_epoch=int(frame["epoch"].iloc[-1]),
    )
