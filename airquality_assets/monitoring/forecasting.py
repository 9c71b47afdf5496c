"""Issue hourly forecasts from the latest observations, and keep them as issued.

A forecast is a record of what was said at the time: :class:`ForecastStore` appends the
forecasts of issue hours it has not seen and never rewrites a stored one, so re-running a
day after a new champion was promoted keeps what the earlier model said (score what was
forecast, not what a later model would have said).

A champion that reads the weather forecast of its target hours gets, for each issue hour
H, the newest weather forecast issued at or before H (never a later one: it did not exist
yet), as training's windows do
(:func:`~airquality_assets.transforms.forecast_inputs.forecast_block`). An hour with no
such forecast (none issued yet, or the newest too old to reach its last horizon) is
skipped with that reason, like an hour with an incomplete input window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION, TIME
from airquality_assets.monitoring.scoring import FORECAST_COLUMNS, empty_forecasts
from airquality_assets.storage import (
    StoragePath,
    read_frames,
    storage_location,
    write_frame_atomic,
)
from airquality_assets.transforms.features import feature_matrix
from airquality_assets.transforms.forecast_inputs import forecast_block

#: Why an issue hour got no forecast: the keys of :func:`issue`'s skipped hours.
INCOMPLETE_WINDOW = "incomplete_input_window"
NO_WEATHER_FORECAST = "no_weather_forecast"
SKIP_REASONS: Mapping[str, str] = {
    INCOMPLETE_WINDOW: "a gap in the observations of its input window",
    NO_WEATHER_FORECAST: "no weather forecast issued at or before it that reaches its horizons",
}


def issue_hours(day: date, now: datetime) -> pd.DatetimeIndex:
    """Whole UTC hours of ``day`` at or before ``now``: when a forecast was (or is) due."""
    start = pd.Timestamp(day, tz="UTC")
    hours = pd.date_range(start, start + pd.Timedelta(hours=23), freq="h")
    return hours[hours <= pd.Timestamp(now)]


def issue_inputs(
    observations: pd.DataFrame,
    feature_names: Sequence[str],
    targets: Sequence[str],
    lookback: int,
    issued_at: pd.DatetimeIndex,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs for each issue hour H: the ``lookback`` hours ending at H (inclusive).

    Returns ``(x, ok, last)``: windows (n, lookback, features), whether each window is
    complete and finite (an incomplete one is not forecast: the model never saw gaps), and
    the targets' values at H (persistence).
    """
    frame = observations.sort_values(TIME).drop_duplicates(TIME, keep="last")
    grid = pd.date_range(
        issued_at.min() - pd.Timedelta(hours=lookback - 1), issued_at.max(), freq="h"
    )
    frame = frame.set_index(TIME).reindex(grid).rename_axis(TIME).reset_index()
    matrix = feature_matrix(frame, feature_names)
    positions = grid.get_indexer(issued_at)
    index = positions[:, None] + np.arange(-lookback + 1, 1)[None, :]
    x = matrix[index]
    ok = np.isfinite(x).all(axis=(1, 2))
    last = frame[list(targets)].to_numpy(dtype=float)[positions]
    return x, ok, last


def issue_forecast_inputs(
    weather_forecasts: pd.DataFrame | None,
    location: str,
    issued_at: pd.DatetimeIndex,
    future_feature_names: Sequence[str],
    hours: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The forecast input for each issue hour H: what the newest weather forecast issued at
    or before H said for ``H+1 .. H+hours`` (``(n, hours, features)``, raw units, the target
    hours' calendar derived from their times), and whether it is complete.

    ``weather_forecasts`` is the long ``weather_forecasts`` frame (or ``None``: nothing
    stored); its issues after an hour are never read for that hour.
    """
    names = list(future_feature_names)
    empty = np.full((len(issued_at), hours, len(names)), np.nan, dtype=np.float32)
    if weather_forecasts is None or weather_forecasts.empty or len(issued_at) == 0:
        return empty, np.zeros(len(issued_at), dtype=bool)
    mine = weather_forecasts[(weather_forecasts[LOCATION].astype(str) == location).to_numpy()]
    epochs = pd.DatetimeIndex(issued_at).as_unit("s").asi8
    codes = np.zeros(len(issued_at), dtype=np.int64)
    block = forecast_block(mine, epochs, codes, [location], names, hours)
    return block, np.isfinite(block).all(axis=(1, 2))


def forecast_frame(
    location: str,
    issued_at: pd.DatetimeIndex,
    predictions: np.ndarray,
    last: np.ndarray,
    targets: Sequence[str],
    horizons: Sequence[int],
    model_name: str,
    model_version: str,
) -> pd.DataFrame:
    """Long rows (one per issue hour x horizon x pollutant) from ``(n, horizons, targets)``."""
    n, n_h, n_t = predictions.shape
    issue = np.repeat(issued_at.to_numpy(), n_h * n_t)
    horizon = np.tile(np.repeat(np.asarray(horizons, dtype=np.int64), n_t), n)
    pollutant = np.tile(np.asarray(targets, dtype=object), n * n_h)
    frame = pd.DataFrame(
        {
            LOCATION: location,
            "pollutant": pollutant,
            "issued_at": pd.to_datetime(issue, utc=True),
            "horizon": horizon,
            "forecast": predictions.reshape(-1).astype(float),
            "last_observed": np.repeat(last, n_h, axis=0).reshape(-1),
            "model_name": model_name,
            "model_version": str(model_version),
        }
    )
    frame["target_time"] = frame["issued_at"] + pd.to_timedelta(frame["horizon"], unit="h")
    return frame[list(FORECAST_COLUMNS)]


def issue(
    observations: pd.DataFrame,
    location: str,
    hours: pd.DatetimeIndex,
    forward: Callable[..., np.ndarray],
    feature_names: Sequence[str],
    targets: Sequence[str],
    lookback: int,
    horizons: Sequence[int],
    model_name: str,
    model_version: str,
    *,
    future_feature_names: Sequence[str] = (),
    weather_forecasts: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Forecasts for every issue hour with complete inputs; and the skipped hours by reason
    (:data:`SKIP_REASONS`; ISO times).

    With ``future_feature_names`` (a champion reading the weather forecast) ``forward``
    takes ``(x, forecast)`` and each hour reads ``weather_forecasts`` as
    :func:`issue_forecast_inputs` does; otherwise ``forward(x)``, as before.
    """
    if len(hours) == 0:
        return empty_forecasts(), {}
    x, ok, last = issue_inputs(observations, feature_names, targets, lookback, hours)
    skipped: dict[str, list[str]] = {}
    if not ok.all():
        skipped[INCOMPLETE_WINDOW] = [h.isoformat() for h in hours[~ok]]
    inputs = [x]
    if future_feature_names:
        future, forecast_ok = issue_forecast_inputs(
            weather_forecasts, location, hours, future_feature_names, max(horizons)
        )
        if (ok & ~forecast_ok).any():
            skipped[NO_WEATHER_FORECAST] = [h.isoformat() for h in hours[ok & ~forecast_ok]]
        ok = ok & forecast_ok
        inputs.append(future)
    if not ok.any():
        return empty_forecasts(), skipped
    predictions = np.asarray(forward(*(a[ok] for a in inputs)))
    return (
        forecast_frame(location, hours[ok], predictions, last[ok], targets, horizons,
                       model_name, model_version),
        skipped,
    )  # fmt: skip


class ForecastStore:
    """``<base>/forecasts/<location>/<YYYY-MM-DD>.parquet``: one file per location and issue
    day, appended to and never rewritten (written atomically). ``base`` is a local directory
    or an object-store URL, like every other store of the project."""

    def __init__(self, base: str | Path) -> None:
        self.base = storage_location(base) / "forecasts"

    def path(self, location: str, day: date) -> StoragePath:
        return self.base / location / f"{day.isoformat()}.parquet"

    def read_day(self, location: str, day: date) -> pd.DataFrame:
        frame = read_frames([self.path(location, day)])
        return empty_forecasts() if frame is None else frame

    def append(self, location: str, day: date, new: pd.DataFrame) -> tuple[int, int]:
        """Add the rows of issue hours not stored yet; returns (added, kept as issued)."""
        stored = self.read_day(location, day)
        seen = set(pd.to_datetime(stored["issued_at"], utc=True))
        fresh = new[~pd.to_datetime(new["issued_at"], utc=True).isin(seen)]
        if fresh.empty:
            return 0, len(new)
        combined = pd.concat([stored, fresh], ignore_index=True) if len(stored) else fresh
        combined = combined.sort_values(["issued_at", "horizon", "pollutant"], kind="stable")
        write_frame_atomic(combined.reset_index(drop=True), self.path(location, day))
        return len(fresh), len(new) - len(fresh)

    def read(self, start: datetime, end: datetime, locations: Sequence[str]) -> pd.DataFrame:
        """Forecasts issued in [start, end] for ``locations``."""
        days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end), freq="D")
        paths = [self.path(loc, d.date()) for loc in locations for d in days]
        frame = read_frames(paths)
        if frame is None:
            return empty_forecasts()
        issued = pd.to_datetime(frame["issued_at"], utc=True)
        frame = frame[(issued >= pd.Timestamp(start)) & (issued <= pd.Timestamp(end))]
        return frame.reset_index(drop=True)

    def locations(self) -> list[str]:
        """Locations with at least one stored forecast, sorted (a listing of the store)."""
        if not self.base.exists():
            return []
        return sorted(
            p.name for p in self.base.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def latest(self, location: str) -> pd.DataFrame:
        """The rows of ``location``'s newest issue (every horizon and pollutant), or an empty
        frame when nothing is stored for it. Reads one file: the newest issue day's."""
        if location not in self.locations():  # also keeps "../x" out of the path
            return empty_forecasts()
        days = sorted(p.name for p in (self.base / location).iterdir() if p.suffix == ".parquet")
        days = [name for name in days if not name.startswith(".")]
        if not days:
            return empty_forecasts()
        frame = self.read_day(location, date.fromisoformat(days[-1].removesuffix(".parquet")))
        issued = pd.to_datetime(frame["issued_at"], utc=True)
        return frame[issued == issued.max()].reset_index(drop=True)
