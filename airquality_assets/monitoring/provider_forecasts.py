"""OpenWeatherMap's own air-pollution forecast, as the rows the forecast store holds.

OWM's forecast is what a user would look at instead of ours, so it is scored beside the
champion on the same (issue, target) pairs wherever it exists: in live mode, where the hourly
tick stores every issue exactly as returned (``raw_air_pollution_forecast``). Replay has no
stand-in for it; the caller says "not available in replay" rather than inventing one.

Each stored issue becomes one row per target hour and pollutant with ``horizon`` = hours
after the issue hour, ``last_observed`` the value observed at the issue hour (so persistence
is scored on the same pairs, as for the champion), ``model_name`` :data:`PROVIDER_MODEL`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION, TIME
from airquality_assets.monitoring.scoring import FORECAST_COLUMNS, empty_forecasts
from airquality_assets.transforms.parsing import parse_air_pollution

PROVIDER_MODEL = "openweathermap"
PROVIDER_VERSION = "forecast API"
_HOUR = pd.Timedelta(hours=1)


def provider_forecast_rows(
    issues: Iterable[tuple[datetime, bytes]],
    location: str,
    pollutants: Sequence[str],
    observations: pd.DataFrame,
    horizons: Sequence[int],
) -> pd.DataFrame:
    """The stored OWM forecast issues of one location as forecast-store rows.

    ``issues`` are ``(issue hour, body)`` pairs as stored; target hours that are not a whole
    number of hours after the issue, or outside ``horizons``, are left out (OWM's list starts
    at the current hour: horizon 0 is not a forecast).
    """
    frames: list[pd.DataFrame] = []
    wanted = {int(h) for h in horizons}
    for issued_at, body in issues:
        parsed = parse_air_pollution(body, location)
        if parsed.empty:
            continue
        issued = pd.Timestamp(issued_at).tz_convert("UTC")
        lead = (parsed[TIME] - issued) / _HOUR
        keep = (lead % 1 == 0) & lead.isin(wanted)
        parsed, lead = parsed[keep], lead[keep].astype("int64")
        for pollutant in pollutants:
            frames.append(
                pd.DataFrame(
                    {
                        LOCATION: location,
                        "pollutant": pollutant,
                        "issued_at": issued,
                        "target_time": parsed[TIME].to_numpy(),
                        "horizon": lead.to_numpy(),
                        "forecast": parsed[pollutant].to_numpy(dtype=float),
                    }
                )
            )
    if not frames:
        return empty_forecasts()
    rows = pd.concat(frames, ignore_index=True)
    rows["target_time"] = pd.to_datetime(rows["target_time"], utc=True)
    rows["last_observed"] = _observed_at(rows, observations, location)
    rows["model_name"], rows["model_version"] = PROVIDER_MODEL, PROVIDER_VERSION
    rows["filled_inputs"] = ""  # the provider's inputs are its own
    rows["computed_at"] = pd.NaT  # not stated in its body
    rows["computed_at"] = pd.to_datetime(rows["computed_at"], utc=True)
    rows["lower"] = rows["upper"] = np.nan  # the provider states no interval
    return rows[list(FORECAST_COLUMNS)]


def _observed_at(rows: pd.DataFrame, observations: pd.DataFrame, location: str) -> np.ndarray:
    """Each row's pollutant as observed at its issue hour (NaN where not observed)."""
    mine = observations[observations[LOCATION] == location].drop_duplicates(TIME, keep="last")
    out = np.full(len(rows), np.nan)
    for pollutant, index in rows.groupby("pollutant").groups.items():
        if pollutant not in mine.columns:
            continue
        series = mine.set_index(TIME)[pollutant].astype(float)
        out[rows.index.get_indexer(index)] = series.reindex(rows.loc[index, "issued_at"]).to_numpy()
    return out
