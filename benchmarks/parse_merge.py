"""Benchmark: a year of hourly bodies -> merged hourly frame, project code vs a plain pandas path.

One location, 365 daily OWM Air Pollution bodies + 365 daily Visual Crossing bodies in their
real shapes (generated here with a fixed seed; nulls, integer numbers, preciptype arrays,
a DST-free UTC day of 24 hours, the OWM window's inclusive end repeating the next day's
first hour). Both approaches start from the stored bytes:

* project: ``parse_many`` (air) + ``parse_many`` (weather) + ``merge_hourly`` (full grid);
* reference: ``json.loads`` + ``pandas.json_normalize`` (``list`` / ``days -> hours`` with
  ``record_path``), concat, ``drop_duplicates``, and an inner ``pd.merge`` on time.

The reference does *less* (no full grid, no dtype contract, no precipitation flags), so the
ratio understates the difference. Prints median times over several repeats and the ratio.

Run: ``python benchmarks/parse_merge.py [--repeats 7]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from airquality_assets.transforms.merging import merge_hourly
from airquality_assets.transforms.parsing import parse_many

START = 1704067200  # 2024-01-01T00:00Z
DAYS = 365
POLLUTANTS = ("co", "no", "no2", "o3", "so2", "pm2_5", "pm10", "nh3")


def owm_bodies(rng: np.random.Generator) -> list[bytes]:
    bodies = []
    for day in range(DAYS):
        items = []
        for hour in range(25):  # inclusive end: hour 24 = next day's hour 0
            comps = {p: round(float(rng.gamma(2.0, 15.0)), 2) for p in POLLUTANTS}
            comps["no"] = int(rng.integers(0, 3))  # bare integers happen
            items.append(
                {
                    "main": {"aqi": int(rng.integers(1, 6))},
                    "components": comps,
                    "dt": START + 86400 * day + 3600 * hour,
                }
            )
        body = {"coord": {"lon": 116.47, "lat": 39.95}, "list": items}
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def vc_bodies(rng: np.random.Generator) -> list[bytes]:
    bodies = []
    for day in range(DAYS):
        midnight = START + 86400 * day
        hours = []
        for hour in range(24):
            rain = rng.uniform() < 0.1
            hours.append(
                {
                    "datetime": f"{hour:02d}:00:00",
                    "datetimeEpoch": midnight + 3600 * hour,
                    "temp": round(float(rng.normal(10, 8)), 1),
                    "feelslike": round(float(rng.normal(8, 9)), 1),
                    "humidity": round(float(rng.uniform(20, 100)), 2),
                    "dew": round(float(rng.normal(3, 6)), 1),
                    "precip": round(float(rng.exponential(0.5)), 2) if rain else 0.0,
                    "precipprob": 100.0 if rain else 0.0,
                    "snow": 0.0,
                    "snowdepth": 0.0,
                    "preciptype": ["rain"] if rain else None,
                    "windgust": None if rng.uniform() < 0.3 else round(float(rng.gamma(3, 8)), 1),
                    "windspeed": round(float(rng.gamma(2, 6)), 1),
                    "winddir": round(float(rng.uniform(0, 360)), 1),
                    "pressure": round(float(rng.normal(1013, 8)), 1),
                    "visibility": 10.0,
                    "cloudcover": round(float(rng.uniform(0, 100)), 1),
                    "solarradiation": 0.0 if hour < 6 or hour > 18 else float(rng.integers(0, 800)),
                    "solarenergy": None
                    if hour < 6 or hour > 18
                    else round(float(rng.uniform(0, 3)), 1),
                    "uvindex": float(rng.integers(0, 8)),
                    "severerisk": 10.0,
                    "conditions": "Rain, Overcast" if rain else "Partially cloudy",
                    "icon": "rain" if rain else "partly-cloudy-day",
                    "stations": ["ZBAA"],
                    "source": "obs",
                }
            )
        body = {
            "queryCost": 24,
            "latitude": 39.95,
            "longitude": 116.47,
            "resolvedAddress": "Beijing, China",
            "address": "beijing",
            "timezone": "UTC",
            "tzoffset": 0.0,
            "days": [
                {
                    "datetime": time.strftime("%Y-%m-%d", time.gmtime(midnight)),
                    "datetimeEpoch": midnight,
                    "temp": 10.0,
                    "preciptype": None,
                    "hours": hours,
                }
            ],
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def project(air: list[bytes], weather: list[bytes]) -> pd.DataFrame:
    return merge_hourly(
        parse_many(air, "beijing", kind="air"), parse_many(weather, "beijing", kind="weather")
    )


def reference(air: list[bytes], weather: list[bytes]) -> pd.DataFrame:
    air_frames = [pd.json_normalize(json.loads(b)["list"]) for b in air]
    a = pd.concat(air_frames, ignore_index=True).drop_duplicates("dt", keep="last")
    a["time"] = pd.to_datetime(a["dt"], unit="s", utc=True)
    weather_frames = [
        pd.json_normalize(json.loads(b), record_path=["days", "hours"]) for b in weather
    ]
    w = pd.concat(weather_frames, ignore_index=True).drop_duplicates("datetimeEpoch", keep="last")
    w["time"] = pd.to_datetime(w["datetimeEpoch"], unit="s", utc=True)
    return pd.merge(a, w, on="time", how="inner")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(20240101)
    air, weather = owm_bodies(rng), vc_bodies(rng)
    ours = project(air, weather)
    theirs = reference(air, weather)
    assert len(ours) == DAYS * 24 + 1 and ours["time"].is_unique
    assert len(theirs) == DAYS * 24  # inner join drops the last air-only hour
    ours_s = median_seconds(lambda: project(air, weather), args.repeats)
    theirs_s = median_seconds(lambda: reference(air, weather), args.repeats)
    print(
        f"a year of hourly data ({len(air)} OWM + {len(weather)} VC daily bodies, "
        f"{sum(map(len, air)) + sum(map(len, weather)):,} bytes), median of {args.repeats}:"
    )
    print(f"  project parse_many + merge_hourly : {ours_s * 1000:8.1f} ms")
    print(f"  reference json_normalize + merge  : {theirs_s * 1000:8.1f} ms")
    print(f"  speed-up                          : {theirs_s / ours_s:8.1f}x")


if __name__ == "__main__":
    main()
