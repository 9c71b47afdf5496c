"""Physically plausible range of every measured column: the one definition.

Cleaning removes values outside it, the Pandera schemas reject them and the service refuses
requests carrying them, so the three can never disagree. Inclusive bounds in the units of
:mod:`airquality_assets.columns`. Upper limits sit above the highest values ever recorded
(hourly PM2.5 near 2,000 ug/m3 in the worst smog episodes, PM10 above 10,000 in dust storms,
a 305 mm hourly rainfall, a 408 km/h gust) so no real reading is lost, yet they keep a
forecast's inputs finite in float32 and away from values no model was trained on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airquality_assets.columns import AQI

Bounds = tuple[float, float]

PHYSICAL_BOUNDS: dict[str, Bounds] = {
    # Pollutants, ug/m3.
    "co": (0.0, 100_000.0),
    "no": (0.0, 5_000.0),
    "no2": (0.0, 5_000.0),
    "o3": (0.0, 2_000.0),
    "so2": (0.0, 20_000.0),
    "pm2_5": (0.0, 5_000.0),
    "pm10": (0.0, 20_000.0),
    "nh3": (0.0, 5_000.0),
    AQI: (1.0, 5.0),
    # Weather.
    "temp": (-90.0, 60.0),
    "feelslike": (-100.0, 70.0),
    "humidity": (0.0, 100.0),
    "dew": (-90.0, 60.0),
    "precip": (0.0, 400.0),
    "precipprob": (0.0, 100.0),
    "snow": (0.0, 1_000.0),
    "snowdepth": (0.0, 3_000.0),
    "windgust": (0.0, 500.0),
    "windspeed": (0.0, 500.0),
    "winddir": (0.0, 360.0),
    "pressure": (850.0, 1100.0),
    "visibility": (0.0, 500.0),
    "cloudcover": (0.0, 100.0),
    "solarradiation": (0.0, 1500.0),
    "solarenergy": (0.0, 10.0),
    "uvindex": (0.0, 50.0),
    "is_rain": (0.0, 1.0),
    "is_snow": (0.0, 1.0),
}

#: Accepted observation times [start, end): wide enough for any real record, narrow enough
#: that a forecast's horizon timestamps can always be represented.
TIME_BOUNDS: tuple[datetime, datetime] = (
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(2100, 1, 1, tzinfo=UTC),
)
