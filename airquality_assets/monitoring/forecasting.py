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
skipped with that reason, like an hour with an incomplete input window. Filling (an
observed weather input missing for up to :data:`FILL_LIMIT_HOURS` takes its last reading)
applies to the observations only, never to the forecast block: a forecast of the target
hours cannot be carried forward from a reading, so such an hour is skipped instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION, TIME
from airquality_assets.ml.intervals import Intervals
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
#: The weather forecast block's name where missing inputs are named (``missing_since``).
WEATHER_FORECAST_INPUT = "weather_forecast"


def issue_hours(day: date, now: datetime) -> pd.DatetimeIndex:
    """Whole UTC hours of ``day`` at or before ``now``: when a forecast was (or is) due."""
    start = pd.Timestamp(day, tz="UTC")
    hours = pd.date_range(start, start + pd.Timedelta(hours=23), freq="h")
    return hours[hours <= pd.Timestamp(now)]


#: A weather input missing for at most this many hours is filled from its last reading (the
#: forecast is issued, flagged); a longer gap, or a missing target, stops that hour's forecast.
FILL_LIMIT_HOURS = 48


@dataclass(frozen=True)
class IssueInputs:
    """Model inputs for each issue hour H: the ``lookback`` hours ending at H (inclusive).

    ``x`` holds the windows (n, lookback, features) with missing weather filled; ``ok``
    whether each can be forecast (finite after filling; a missing target is never filled:
    the model corrects its last value); ``filled`` the features filled in each window (empty
    when it was complete); ``last`` the targets' values at H (persistence); ``missing_since``
    per feature missing in any window, the first hour of its newest gap.
    """

    x: np.ndarray
    ok: np.ndarray
    filled: list[tuple[str, ...]]
    last: np.ndarray
    missing_since: dict[str, str] = field(default_factory=dict)


def issue_inputs(
    observations: pd.DataFrame,
    feature_names: Sequence[str],
    targets: Sequence[str],
    lookback: int,
    issued_at: pd.DatetimeIndex,
    fill_limit_hours: int = FILL_LIMIT_HOURS,
) -> IssueInputs:
    """The inputs of every issue hour, weather gaps filled from the last reading.

    An incomplete window used to mean no forecast at all (a temperature sensor reporting
    Fahrenheit stopped forecasting for days while the pollutant was measured fine): now a
    non-target feature missing for up to ``fill_limit_hours`` takes its last value, and the
    forecast records which inputs were filled.
    """
    frame = observations.sort_values(TIME).drop_duplicates(TIME, keep="last")
    first = issued_at.min() - pd.Timedelta(hours=lookback - 1 + fill_limit_hours)
    grid = pd.date_range(first, issued_at.max(), freq="h")
    frame = frame.set_index(TIME).reindex(grid).rename_axis(TIME).reset_index()
    raw = feature_matrix(frame, feature_names)
    fillable = [j for j, name in enumerate(feature_names) if name not in set(targets)]
    matrix = raw.copy()
    if fillable and fill_limit_hours > 0:
        matrix[:, fillable] = (
            pd.DataFrame(raw[:, fillable]).ffill(limit=fill_limit_hours).to_numpy(np.float32)
        )
    positions = grid.get_indexer(issued_at)
    index = positions[:, None] + np.arange(-lookback + 1, 1)[None, :]
    gaps = ~np.isfinite(raw[index])  # (n, lookback, features)
    x = matrix[index]
    ok = np.isfinite(x).all(axis=(1, 2))
    names = list(feature_names)
    filled = [tuple(names[j] for j in np.flatnonzero(g.any(axis=0))) if k else ()
              for g, k in zip(gaps, ok, strict=True)]  # fmt: skip
    last = frame[list(targets)].to_numpy(dtype=float)[positions]
    return IssueInputs(x, ok, filled, last, _missing_since(raw, gaps, index, grid, names))


def _missing_since(
    raw: np.ndarray, gaps: np.ndarray, index: np.ndarray, grid: pd.DatetimeIndex, names: list[str]
) -> dict[str, str]:
    """Per feature with a gap in any window: the first hour of the gap in the newest window
    that has one (walking back over the whole grid, so "since" can precede the windows)."""
    out: dict[str, str] = {}
    for j, name in enumerate(names):
        hit = np.flatnonzero(gaps[:, :, j].any(axis=1))
        if not len(hit):
            continue
        window = index[hit[-1]]
        row = int(window[np.flatnonzero(gaps[hit[-1], :, j])[-1]])
        while row > 0 and not np.isfinite(raw[row - 1, j]):
            row -= 1
        out[name] = grid[row].isoformat()
    return out


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


def forecast_missing_since(hours: pd.DatetimeIndex, forecast_ok: np.ndarray) -> dict[str, str]:
    """``{WEATHER_FORECAST_INPUT: first hour of the newest run of hours without a usable
    weather forecast}``, or ``{}`` when every hour has one: the cause the issuing verdict
    names, as it names an observed input's gap."""
    missing = np.flatnonzero(~np.asarray(forecast_ok, dtype=bool))
    if not len(missing):
        return {}
    row = int(missing[-1])
    while row > 0 and not forecast_ok[row - 1]:
        row -= 1
    return {WEATHER_FORECAST_INPUT: hours[row].isoformat()}


def inputs_missing_since(
    observations: pd.DataFrame,
    feature_names: Sequence[str],
    targets: Sequence[str],
    lookback: int,
    hours: pd.DatetimeIndex,
    horizons: Sequence[int],
    location: str,
    *,
    future_feature_names: Sequence[str] = (),
    weather_forecasts: pd.DataFrame | None = None,
) -> dict[str, str]:
    """Since when each input of ``hours`` has been missing, without a forward pass: the
    observed inputs as :func:`issue_inputs` finds them and, for a champion reading weather
    forecasts, the forecast block. The verdict's cause over a whole day, whose earlier hours
    an earlier run issued."""
    if len(hours) == 0:
        return {}
    since = dict(issue_inputs(observations, feature_names, targets, lookback, hours).missing_since)
    if future_feature_names:
        _, forecast_ok = issue_forecast_inputs(
            weather_forecasts, location, hours, future_feature_names, max(horizons)
        )
        since.update(forecast_missing_since(hours, forecast_ok))
    return since


def forecast_frame(
    location: str,
    issued_at: pd.DatetimeIndex,
    predictions: np.ndarray,
    last: np.ndarray,
    targets: Sequence[str],
    horizons: Sequence[int],
    model_name: str,
    model_version: str,
    filled: Sequence[tuple[str, ...]] | None = None,
    computed_at: datetime | None = None,
    intervals: Intervals | None = None,
) -> pd.DataFrame:
    """Long rows (one per issue hour x horizon x pollutant) from ``(n, horizons, targets)``.

    ``filled_inputs`` names the inputs filled from their last reading ("" when none);
    ``computed_at`` is when the forecast was made (the clock), beside the hour it is issued
    for: a past day's forecasts computed days later then show as late, not on time.
    ``lower``/``upper`` come from the champion's calibration ``intervals`` (NaN without).
    """
    n, n_h, n_t = predictions.shape
    if intervals is not None:
        low, high = intervals.bounds(predictions, targets, horizons)
    else:
        low = high = np.full(predictions.shape, np.nan)
    issue = np.repeat(issued_at.to_numpy(), n_h * n_t)
    horizon = np.tile(np.repeat(np.asarray(horizons, dtype=np.int64), n_t), n)
    pollutant = np.tile(np.asarray(targets, dtype=object), n * n_h)
    filled_text = np.asarray([",".join(f) for f in (filled or [()] * n)], dtype=object)
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
            "filled_inputs": np.repeat(filled_text, n_h * n_t),
            "computed_at": pd.Timestamp(computed_at) if computed_at else pd.NaT,
            "lower": np.asarray(low, dtype=float).reshape(-1),
            "upper": np.asarray(high, dtype=float).reshape(-1),
        }
    )
    frame["computed_at"] = pd.to_datetime(frame["computed_at"], utc=True)
    frame["target_time"] = frame["issued_at"] + pd.to_timedelta(frame["horizon"], unit="h")
    return frame[list(FORECAST_COLUMNS)]


@dataclass(frozen=True)
class IssueReport:
    """What one issuing pass did besides the forecasts: the hours it could not forecast by
    reason (:data:`SKIP_REASONS`; ISO times), the forecasts issued with filled inputs per
    feature, and since when each missing input (:data:`WEATHER_FORECAST_INPUT` for the
    weather forecast) has been missing."""

    skipped: dict[str, list[str]] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    missing_since: dict[str, str] = field(default_factory=dict)
    filled_hours: int = 0
    """Forecasts issued with at least one input filled."""

    @property
    def skipped_hours(self) -> int:
        """Issue hours not forecast, whatever the reason."""
        return sum(len(h) for h in self.skipped.values())


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
    computed_at: datetime | None = None,
    fill_limit_hours: int = FILL_LIMIT_HOURS,
    intervals: Intervals | None = None,
) -> tuple[pd.DataFrame, IssueReport]:
    """Forecasts for every issue hour whose inputs are complete or fillable; and the report
    (skipped hours by reason, :data:`SKIP_REASONS`).

    With ``future_feature_names`` (a champion reading the weather forecast) ``forward``
    takes ``(x, forecast)`` and each hour reads ``weather_forecasts`` as
    :func:`issue_forecast_inputs` does; otherwise ``forward(x)``. Filling applies to the
    observed weather only: an hour without a usable weather forecast is skipped
    (:data:`NO_WEATHER_FORECAST`), never given an older one's values.
    """
    if len(hours) == 0:
        return empty_forecasts(), IssueReport()
    inputs = issue_inputs(observations, feature_names, targets, lookback, hours, fill_limit_hours)
    ok = inputs.ok
    skipped: dict[str, list[str]] = {}
    if not ok.all():
        skipped[INCOMPLETE_WINDOW] = [h.isoformat() for h in hours[~ok]]
    model_inputs = [inputs.x]
    missing_since = dict(inputs.missing_since)
    if future_feature_names:
        future, forecast_ok = issue_forecast_inputs(
            weather_forecasts, location, hours, future_feature_names, max(horizons)
        )
        if (ok & ~forecast_ok).any():
            skipped[NO_WEATHER_FORECAST] = [h.isoformat() for h in hours[ok & ~forecast_ok]]
        missing_since.update(forecast_missing_since(hours, forecast_ok))
        ok = ok & forecast_ok
        model_inputs.append(future)
    filled = [f for f, k in zip(inputs.filled, ok, strict=True) if k]
    report = IssueReport(
        skipped=skipped,
        filled=dict(sorted(Counter(name for f in filled for name in f).items())),
        missing_since=missing_since,
        filled_hours=sum(1 for f in filled if f),
    )
    if not ok.any():
        return empty_forecasts(), report
    predictions = np.asarray(forward(*(a[ok] for a in model_inputs)))
    frame = forecast_frame(
        location, hours[ok], predictions, inputs.last[ok], targets, horizons, model_name,
        model_version, filled, computed_at, intervals,
    )  # fmt: skip
    return frame, report


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


#: Fewer of the day's due forecasts issued than this share: forecasting has stopped (ERROR).
MIN_ISSUED_SHARE = 0.9


@dataclass(frozen=True)
class IssuingVerdict:
    """The ``forecasts_issued`` check of one (day, location): were the due forecasts issued,
    and from complete inputs?

    ``stopped`` (ERROR) when fewer than :data:`MIN_ISSUED_SHARE` of the due hours have a
    forecast; ``degraded`` (WARN) when some due hour has none or some forecast was issued
    with inputs filled from their last reading; ``ok`` otherwise. The description names the
    missing inputs and since when they are missing.
    """

    status: str
    due: int
    issued: int
    filled: int
    description: str

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def severity(self) -> str:
        return "ERROR" if self.status == "stopped" else "WARN"


def issuing_verdict(
    due: pd.DatetimeIndex, stored: pd.DataFrame, missing_since: dict[str, str]
) -> IssuingVerdict:
    """The verdict from the day's due hours, its stored forecasts and the inputs missing."""
    issued_at = pd.to_datetime(stored["issued_at"], utc=True)
    issued_hours = set(issued_at[issued_at.isin(due)])
    filled_column = (
        stored["filled_inputs"] if "filled_inputs" in stored else pd.Series("", index=stored.index)
    )
    filled_hours = set(issued_at[issued_at.isin(due) & filled_column.fillna("").ne("")])
    issued, filled, n = len(issued_hours), len(filled_hours), len(due)
    causes = ", ".join(f"{f} missing since {since[:16]}" for f, since in missing_since.items())
    cause = f" ({causes})" if causes else ""
    if n and issued < MIN_ISSUED_SHARE * n:
        return IssuingVerdict(
            "stopped", n, issued, filled,
            f"forecasting stopped: {issued} of {n} due forecasts issued{cause}",
        )  # fmt: skip
    if issued < n or filled:
        parts = []
        if issued < n:
            parts.append(f"{n - issued} of {n} due forecasts not issued")
        if filled:
            parts.append(f"{filled} of {issued} issued with inputs filled from the last reading")
        return IssuingVerdict(
            "degraded", n, issued, filled, f"forecasting degraded: {'; '.join(parts)}{cause}"
        )
    return IssuingVerdict("ok", n, issued, 0, f"{issued} of {n} due forecasts issued")
