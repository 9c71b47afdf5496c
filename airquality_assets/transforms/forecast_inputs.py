"""The weather forecast a window may see: issued at or before its last input hour, never later.

A model that predicts the next 24 h of pollution gains most from the weather of those
hours, but only a *forecast* of it exists when the prediction is made. For every row of the
hourly matrix (one location-hour ``t``) this module picks the newest forecast issued at or
before ``t`` and lays out what it said for ``t+1 .. t+max_horizon``: a block
``(rows, max_horizon, n_future)`` aligned with the rows, so a window ending at row ``t`` reads
``block[t]`` exactly as it reads its past from ``features[t-lookback+1 : t+1]``.

Rows with no usable issue (none yet, or the newest is too old to reach ``t+max_horizon``)
are NaN; windows ending there are dropped and counted by the windowing. Calendar features of
the target hours (``hour_sin`` ...) are known without a forecast and are derived from the
target times, as the past's are from the observation times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from airquality_assets.columns import ISSUE_TIME, LEAD, LOCATION
from airquality_assets.transforms.features import feature_matrix

__all__ = ["FORECAST_WEATHER_FEATURES", "forecast_block", "future_feature_names"]

HOUR = 3600

#: Forecast variables the model reads (as in the observations: wind as a u/v vector).
#: Precipitation is left out: the replay stand-in does not perturb it, so it would be a
#: perfect forecast no real provider gives.
FORECAST_WEATHER_FEATURES: tuple[str, ...] = (
    "temp",
    "dew",
    "humidity",
    "pressure",
    "windspeed",
    "wind_u",
    "wind_v",
)
CALENDAR_OF_TARGET: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")


def future_feature_names(weather: Sequence[str] = FORECAST_WEATHER_FEATURES) -> list[str]:
    """Forecast weather of each target hour, then that hour's calendar encodings."""
    return [*weather, *CALENDAR_OF_TARGET]


def _epoch(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(values).as_unit("s").asi8


def forecast_block(
    forecasts: pd.DataFrame,
    times: np.ndarray,
    location_codes: np.ndarray,
    locations: Sequence[str],
    names: Sequence[str],
    max_horizon: int,
) -> np.ndarray:
    """``(rows, max_horizon, len(names))`` float32: per row, the newest issue's forecast.

    ``forecasts`` is the long ``weather_forecasts`` frame (``location``, ``issue_time``,
    ``time`` = target hour, ``lead``, variables); ``times`` (epoch seconds) and
    ``location_codes`` (index into ``locations``) describe the rows of the hourly matrix.
    Entry ``[r, h-1]`` is what the newest issue at or before ``times[r]`` said for
    ``times[r] + h`` hours; NaN when that issue has no such lead (or there is no issue).
    """
    rows = len(times)
    block = np.full((rows, max_horizon, len(names)), np.nan, dtype=np.float32)
    if forecasts.empty or rows == 0:
        return block
    values = feature_matrix(forecasts, names)  # derives wind u/v and the target's calendar
    issue = _epoch(forecasts[ISSUE_TIME])
    lead = forecasts[LEAD].to_numpy(dtype=np.int64)
    by_location = forecasts[LOCATION].to_numpy()
    for code, name in enumerate(locations):
        mine = by_location == name
        at_rows = np.flatnonzero(location_codes == code)
        if not mine.any() or at_rows.size == 0:
            continue
        issues, issue_index = np.unique(issue[mine], return_inverse=True)
        max_lead = int(lead[mine].max())
        grid = np.full((issues.size, max_lead + 1, len(names)), np.nan, dtype=np.float32)
        grid[issue_index, lead[mine]] = values[mine]
        newest = np.searchsorted(issues, times[at_rows], side="right") - 1
        known = newest >= 0
        rows_known, newest = at_rows[known], newest[known]
        age = (times[rows_known] - issues[newest]) // HOUR  # hours since that issue
        for h in range(1, max_horizon + 1):
            needed = age + h
            reach = needed <= max_lead
            block[rows_known[reach], h - 1] = grid[newest[reach], needed[reach]]
    return block
