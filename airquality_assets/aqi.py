"""OpenWeatherMap's 1-5 air quality index, per pollutant and overall: the one band table.

The service bands its forecasts with it; the replay data derives its ``main.aqi`` from it.

Bands follow OpenWeatherMap's Air Pollution API documentation: half-open
intervals ``[low, high)`` in ug/m3, so a value exactly on a breakpoint belongs to the worse
band (PM2.5 = 10.0 is band 2). Only SO2, NO2, PM10, PM2.5, O3 and CO have a scale; NH3 and
NO do not count towards the index.

NaN is treated as "unknown" and mapped to band 0 rather than raising: forecasts and
observations legitimately contain gaps, and 0 can never be mistaken for a real band (1-5).
A negative concentration is a bug upstream (schemas and request validation reject them),
so it raises instead of being silently banded as "Good".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

# Lower edges of bands 2..5 (band 1 starts at 0), ug/m3.
AQI_BREAKPOINTS: dict[str, tuple[float, float, float, float]] = {
    "so2": (20.0, 80.0, 250.0, 350.0),
    "no2": (40.0, 70.0, 150.0, 200.0),
    "pm10": (20.0, 50.0, 100.0, 200.0),
    "pm2_5": (10.0, 25.0, 50.0, 75.0),
    "o3": (60.0, 100.0, 140.0, 180.0),
    "co": (4400.0, 9400.0, 12400.0, 15400.0),
}

AQI_POLLUTANTS: tuple[str, ...] = tuple(AQI_BREAKPOINTS)


def has_aqi_scale(pollutant: str) -> bool:
    """Whether OWM defines bands for this pollutant (NH3 and NO have none)."""
    return pollutant in AQI_BREAKPOINTS


def aqi_band(pollutant: str, values: float | Iterable[float] | np.ndarray) -> np.ndarray:
    """Band 1-5 for each concentration (ug/m3); NaN gives 0. Vectorised, any shape.

    ``np.searchsorted(..., side="right")`` implements the half-open ``[low, high)`` rule:
    the count of breakpoints <= value is exactly ``band - 1``.
    """
    try:
        edges = np.asarray(AQI_BREAKPOINTS[pollutant], dtype=np.float64)
    except KeyError:
        raise KeyError(
            f"no OWM AQI scale for {pollutant!r}; scaled pollutants: {list(AQI_POLLUTANTS)}"
        ) from None
    array = np.asarray(values, dtype=np.float64)
    unknown = np.isnan(array)
    if np.any(array[~unknown] < 0):
        raise ValueError(f"negative {pollutant} concentration cannot be banded")
    bands = np.searchsorted(edges, np.where(unknown, 0.0, array), side="right") + 1
    return np.where(unknown, 0, bands).astype(np.int64)


def overall_aqi(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """Worst band across pollutants, ignoring unknown (0) entries; 0 if all are unknown.

    OWM does not document the combination rule; "worst pollutant decides" is the usual
    convention (and what EU CAQI does), so that is what we report.
    """
    arrays = [np.asarray(b, dtype=np.int64) for b in bands.values()]
    if not arrays:
        raise ValueError("overall_aqi needs at least one pollutant's bands")
    return np.maximum.reduce(arrays)
