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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airquality_assets.columns import FORECAST_HOURS, ISSUE_TIME, LEAD, LOCATION, TIME
from airquality_assets.sources.forecast_errors import ForecastErrorModel, stand_in_forecasts
from airquality_assets.transforms.features import feature_matrix

__all__ = [
    "FORECAST_WEATHER_FEATURES",
    "ForecastSources",
    "forecast_block",
    "future_feature_names",
    "with_stand_ins",
]

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


@dataclass(frozen=True)
class ForecastSources:
    """How many issues of a training frame were issued and how many are stand-ins."""

    issued: int
    stand_in: int

    @property
    def kind(self) -> str:
        """``issued``, ``stand-in`` or ``issued + stand-in``: recorded with the model."""
        parts = [name for name, n in (("issued", self.issued), ("stand-in", self.stand_in)) if n]
        return " + ".join(parts) or "none"


def with_stand_ins(
    forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    every_hours: int,
    error_model: ForecastErrorModel,
) -> tuple[pd.DataFrame, ForecastSources]:
    """``forecasts`` plus a stand-in for every issue hour of ``observations`` with no issue.

    A live deployment has no archive: its history before it started pulling forecasts has
    observations only. Training there on the observed weather would teach the model a
    perfect view of the future it never gets when serving (measured: it keeps about a fifth
    of the gain). So each missing issue (every ``every_hours`` from 00 UTC, per location,
    over the observed hours) becomes the observed weather plus ``error_model``'s error, the
    same construction as the replay source's forecasts; issued forecasts are kept as they
    are. In replay every issue exists and nothing is added.
    """
    issued = forecasts[[LOCATION, ISSUE_TIME]].drop_duplicates() if len(forecasts) else None
    frames = [forecasts] if len(forecasts) else []
    added = 0
    step = pd.Timedelta(hours=every_hours)
    for location, rows in observations.groupby(LOCATION, sort=True, observed=True):
        times = pd.DatetimeIndex(rows[TIME])
        first = times.min().floor("D")
        candidates = pd.date_range(first, times.max(), freq=step)
        if issued is not None:
            have = issued.loc[issued[LOCATION].astype(str) == str(location), ISSUE_TIME]
            candidates = candidates.difference(pd.DatetimeIndex(have))
        if candidates.empty:
            continue
        frames.append(
            stand_in_forecasts(
                rows, candidates, str(location), range(1, FORECAST_HOURS + 1), error_model
            )
        )
        added += len(candidates)
    n_issued = 0 if issued is None else len(issued)
    if not frames:
        return forecasts, ForecastSources(issued=0, stand_in=0)
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return combined, ForecastSources(issued=n_issued, stand_in=added)
