"""Sequence tensors: the hourly feature matrix plus valid window end indices per split.

Why this shape: an LSTM sees windows ``X (n, lookback, features)`` and predicts
``y (n, horizons, targets)``. Materialising every window stores each hour ``lookback`` times
(24x for the default), so we store the hourly matrix once and the *end index* of every valid
window (the last input hour); :func:`windows` / :func:`batch_windows` cut ``X`` and ``y`` on
demand with one fancy-indexing copy of a zero-copy ``sliding_window_view``.

Validity of a window ending at row ``t`` (all vectorised, no loop over windows):

* rows ``t-lookback+1 .. t`` have every feature finite,
* the target values at ``t+h`` are finite for every horizon ``h``,
* rows ``t-lookback+1 .. t+max(horizons)`` are one location and consecutive hours, so a
  window never spans a gap in the grid or a location boundary.

Split (chronological, by the time of the window end):

* ``SplitSpec`` dates are inclusive whole UTC days: train ends ``train_end`` 23:00,
  validation runs to ``validation_end`` 23:00, test is everything later. Default: train up to
  2012-12-31, validation 2013, test 2014 (the Beijing demo data).
* If the data does not span both cut points (e.g. a small slice or live data), the split
  falls back to fractions (default 70/15/15) of the valid windows in time order; ends that
  share a timestamp (several locations) always land in the same split.
* Purge: a window near the end of the training period has targets up to ``max(horizons)``
  hours after its end, i.e. inside the validation period. Such training windows are dropped
  (counted in ``purged``) so no validation-period value is ever a training target; the same
  rule applies to validation windows whose targets reach into the test period, so model
  selection never sees a test-period value either.

Scaling: mean/std per feature and per target are fitted on the finite values of the rows
*in the training period* only (time before the train cut); nothing from validation or test
influences them. A standard deviation below ``STD_FLOOR`` (e.g. a constant ``is_snow`` column)
is replaced by 1.0 so scaling never divides by ~0 and constant columns simply centre at 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from airquality_assets.columns import LOCATION, TIME
from airquality_assets.transforms.features import (
    EmptyFeatureError,
    MissingFeatureError,
    default_feature_names,
    derivable_columns,
    feature_matrix,
)
from airquality_assets.transforms.forecast_inputs import forecast_block, future_feature_names

__all__ = [
    "SPLITS",
    "STD_FLOOR",
    "EmptyFeatureError",
    "EmptySplitError",
    "InsufficientDataError",
    "MissingFeatureError",
    "Scaler",
    "SequenceTensors",
    "SplitSpec",
    "batch_windows",
    "build_sequence_tensors",
    "capped_test_days",
    "network_inputs",
    "relative_split",
    "tensor_summary",
    "windows",
]

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
STD_FLOOR = 1e-6
HOUR = 3600


class InsufficientDataError(ValueError):
    """Not a single valid window: the data has no run of complete hours long enough."""


class EmptySplitError(ValueError):
    """One split (train/validation/test) received no valid window."""


@dataclass(frozen=True)
class SplitSpec:
    """Where the chronological split falls.

    ``train_end`` / ``validation_end`` are inclusive UTC dates (``None`` forces the fraction
    split). The fractions are used when the data does not span both cut points; test gets
    ``1 - train_fraction - validation_fraction``.
    """

    train_end: str | dt.date | pd.Timestamp | None = "2012-12-31"
    validation_end: str | dt.date | pd.Timestamp | None = "2013-12-31"
    train_fraction: float = 0.70
    validation_fraction: float = 0.15

    def __post_init__(self) -> None:
        if (self.train_end is None) != (self.validation_end is None):
            raise ValueError("give both train_end and validation_end, or neither")
        if self.train_fraction <= 0 or self.validation_fraction <= 0:
            raise ValueError("train_fraction and validation_fraction must be positive")
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError("train_fraction + validation_fraction must leave room for test")
        cuts = self.date_cuts()
        if cuts is not None and cuts[0] >= cuts[1]:
            raise ValueError(
                f"train_end {self.train_end} must be before validation_end {self.validation_end}"
            )

    def date_cuts(self) -> tuple[int, int] | None:
        """Epoch seconds of the first validation hour and the first test hour, or None."""
        if self.train_end is None or self.validation_end is None:
            return None
        return _day_after(self.train_end), _day_after(self.validation_end)


def relative_split(
    newest: pd.Timestamp | dt.datetime, test_days: int = 30, validation_days: int = 60
) -> SplitSpec:
    """A split that moves with the data: test = the last ``test_days`` (UTC) days up to
    ``newest``, validation = the ``validation_days`` before them, training = everything
    earlier. A retrain at a later clock therefore trains on newer data."""
    if test_days < 1 or validation_days < 1:
        raise ValueError("test_days and validation_days must be at least 1")
    last_day = pd.Timestamp(newest).normalize()
    validation_end = last_day - pd.Timedelta(days=test_days)
    train_end = validation_end - pd.Timedelta(days=validation_days)
    return SplitSpec(train_end=train_end.date(), validation_end=validation_end.date())


#: The test window's largest share of the data's span when the history is short.
MAX_TEST_SHARE = 0.2


def capped_test_days(
    first: pd.Timestamp | dt.datetime,
    newest: pd.Timestamp | dt.datetime,
    test_days: int,
    max_share: float = MAX_TEST_SHARE,
) -> int:
    """``test_days``, or fewer where the data is short: at most ``max_share`` of the days
    from ``first`` to ``newest`` (at least 1). A test window long enough to rank models
    (90 days) must not take a young deployment's whole training history."""
    span = (pd.Timestamp(newest) - pd.Timestamp(first)) / pd.Timedelta(days=1)
    return max(1, min(int(test_days), int(span * max_share)))


def _day_after(value: str | dt.date | pd.Timestamp) -> int:
    """Midnight UTC after the (inclusive) date ``value``, as epoch seconds."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int((stamp.normalize() + pd.Timedelta(days=1)).timestamp())


def _iso(seconds: int | np.integer) -> str:
    return pd.Timestamp(int(seconds), unit="s", tz="UTC").isoformat()


@dataclass(eq=False)
class Scaler:
    """Per-column mean/std fitted on training rows; applied as ``(x - mean) / std``."""

    feature_mean: np.ndarray  # float32 (n_features,)
    feature_std: np.ndarray  # float32 (n_features,), floored
    target_mean: np.ndarray  # float32 (n_targets,)
    target_std: np.ndarray  # float32 (n_targets,), floored
    fitted_rows: int = 0  # training-period rows the statistics were computed from
    future_mean: np.ndarray | None = None  # float32 (n_future,), over the training windows
    future_std: np.ndarray | None = None

    @classmethod
    def fit(
        cls, features: np.ndarray, targets: np.ndarray, future: np.ndarray | None = None
    ) -> Scaler:
        """Fit on the given (training) rows, ignoring NaN; float64 accumulation. ``future``
        is the forecast block of the training windows, pooled over their horizons."""
        f_mean, f_std = _mean_std(features)
        t_mean, t_std = _mean_std(targets)
        u_mean = u_std = None
        if future is not None:
            u_mean, u_std = _mean_std(future.reshape(-1, future.shape[-1]))
        return cls(f_mean, f_std, t_mean, t_std, len(features), u_mean, u_std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, e.g. for model metadata or MLflow params."""
        out: dict[str, Any] = {
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "target_mean": self.target_mean.tolist(),
            "target_std": self.target_std.tolist(),
            "fitted_rows": self.fitted_rows,
        }
        if self.future_mean is not None and self.future_std is not None:
            out["future_mean"] = self.future_mean.tolist()
            out["future_std"] = self.future_std.tolist()
        return out


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = values.astype(np.float64, copy=False)
    finite = np.isfinite(data)
    count = finite.sum(axis=0)
    safe = np.where(finite, data, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=0) / count
        var = (np.where(finite, data - mean, 0.0) ** 2).sum(axis=0) / count
    std = np.sqrt(var)
    std = np.where(np.isfinite(std) & (std >= STD_FLOOR), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass(eq=False)
class SequenceTensors:
    """Everything training, baselines and evaluation need, without materialised windows.

    Row ``i`` of ``features``/``targets`` is one location-hour; locations are stacked in the
    order of ``locations``. ``ends[split]`` are row indices of the last input hour of every
    valid window, sorted ascending (by location, then time).
    """

    features: np.ndarray  # float32 (hours, n_features), raw units, NaN where missing
    targets: np.ndarray  # float32 (hours, n_targets), raw units
    feature_names: list[str]
    target_names: list[str]
    times: np.ndarray  # int64 epoch seconds (UTC) per row
    location_codes: np.ndarray  # int32 per row, index into ``locations``
    locations: list[str]
    lookback: int
    horizons: list[int]
    ends: dict[str, np.ndarray]  # int64 per split
    scaler: Scaler
    dropped: dict[str, int]  # per split: window ends invalid for gaps/NaN/boundaries
    purged: dict[str, int]  # per split: valid windows removed so targets stay in-split
    split_mode: str  # "dates" or "fractions"
    split_bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # [start, stop) s
    # default weather features left out because the training period has no value of them
    dropped_features: list[str] = field(default_factory=list)
    # float32 (hours, max horizon, n_future): per row, the newest weather forecast issued at
    # or before its hour for the next hours (NaN where none); None: the model reads no forecast
    future: np.ndarray | None = None
    future_names: list[str] = field(default_factory=list)
    no_forecast: dict[str, int] = field(default_factory=dict)  # per split: complete, unforecast
    # Where the forecasts came from (issued / stand-in issue counts, the error model used for
    # stand-ins): recorded with every model trained on these tensors.
    forecast_origin: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define these tensors, by name: what is stored, and what their
        digest covers (one list, so the two cannot drift apart)."""
        arrays: dict[str, np.ndarray] = {
            "features": self.features,
            "targets": self.targets,
            "times": self.times,
            "location_codes": self.location_codes,
            "feature_mean": self.scaler.feature_mean,
            "feature_std": self.scaler.feature_std,
            "target_mean": self.scaler.target_mean,
            "target_std": self.scaler.target_std,
        }
        arrays.update({f"ends_{name}": ends for name, ends in sorted(self.ends.items())})
        if self.future is not None:
            arrays["future"] = self.future
            arrays["future_mean"] = self.scaler.future_mean  # type: ignore[assignment]
            arrays["future_std"] = self.scaler.future_std  # type: ignore[assignment]
        return arrays

    @property
    def target_columns(self) -> list[int | None]:
        """Index of each target within ``features`` (None if the target is not a feature)."""
        return [
            self.feature_names.index(name) if name in self.feature_names else None
            for name in self.target_names
        ]

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)

    def split_range(self, split: str) -> tuple[str, str]:
        """Inclusive ISO range of window end hours allowed in ``split``."""
        start, stop = self.split_bounds[split]
        return _iso(start), _iso(stop - HOUR)


def build_sequence_tensors(
    frame: pd.DataFrame,
    feature_names: Sequence[str] | None,
    targets: Sequence[str],
    lookback: int = 24,
    horizons: Iterable[int] = range(1, 25),
    split: SplitSpec | None = None,
    forecasts: pd.DataFrame | None = None,
    future_names: Sequence[str] | None = None,
) -> SequenceTensors:
    """Build the hourly matrix, valid window ends per split and training-only scalers.

    ``frame`` is ``hourly_observations``: one row per location-hour on a regular grid, missing
    hours as NaN rows. ``feature_names=None`` means :func:`default_feature_names`. With
    ``forecasts`` (the ``weather_forecasts`` frame), every row also carries the newest
    forecast issued at or before its hour (:mod:`~airquality_assets.transforms.forecast_inputs`,
    ``future_names`` or the default forecast features), and a window without one is dropped
    (counted in ``no_forecast``). Raises :class:`MissingFeatureError` for absent columns,
    :class:`InsufficientDataError` when no window fits, :class:`EmptySplitError` when one
    split gets nothing.
    """
    targets = list(targets)
    horizon_list = sorted({int(h) for h in horizons})
    _check_arguments(targets, lookback, horizon_list)
    split = split or SplitSpec()
    missing = [c for c in (LOCATION, TIME, *targets) if c not in frame.columns]
    if missing:
        raise MissingFeatureError(
            f"missing column(s) {missing}; the frame has {sorted(frame.columns)}"
        )

    times = _epoch_seconds(frame[TIME])
    codes, uniques = pd.factorize(frame[LOCATION], sort=False)
    codes = codes.astype(np.int32)
    order = np.lexsort((times, codes))
    if not np.array_equal(order, np.arange(len(order))):  # contract says sorted; be safe
        frame = frame.iloc[order]
        times, codes = times[order], codes[order]
    names, features, dropped_features = _feature_columns(
        frame, feature_names, targets, _training_period(split, times)
    )
    target_matrix = np.ascontiguousarray(frame[targets].to_numpy(dtype=np.float32))
    locations = [str(u) for u in uniques]
    _require_every_station_reports(names, features, codes, locations)

    future, future_list = None, []
    if forecasts is not None:
        future_list = list(future_names or future_feature_names())
        future = forecast_block(forecasts, times, codes, locations, future_list, horizon_list[-1])

    breaks = np.ones(len(frame), dtype=bool)  # a segment: one location at consecutive hours
    breaks[1:] = (codes[1:] != codes[:-1]) | (np.diff(times) != HOUR)
    valid = _complete_windows(features, target_matrix, breaks, lookback, horizon_list)
    if not valid.any():
        complete = np.isfinite(features).all(axis=1) & np.isfinite(target_matrix).all(axis=1)
        raise InsufficientDataError(
            f"no valid window: one needs {lookback + horizon_list[-1]} consecutive complete "
            f"hours at one location (lookback {lookback} + max horizon {horizon_list[-1]}, "
            f"every feature and target present, no gap), but the longest complete run has "
            f"{_longest_run(complete, breaks)} hour(s) in {len(frame)} row(s)"
        )
    forecast_ok = valid if future is None else valid & np.isfinite(future).all(axis=(1, 2))
    if not forecast_ok.any():
        raise InsufficientDataError(
            f"no valid window has a weather forecast: {int(valid.sum())} complete window(s), "
            "none with a forecast issued at or before its end that reaches its last horizon"
        )

    train_cut, val_cut, mode = _cuts(split, times, np.flatnonzero(valid))
    bounds = {
        "train": (int(times.min()), train_cut),
        "validation": (train_cut, val_cut),
        "test": (val_cut, max(int(times.max()) + HOUR, val_cut)),
    }
    ends, dropped, purged, no_forecast = _split_ends(
        times, valid, forecast_ok, bounds, horizon_list[-1]
    )
    for name in SPLITS:
        if ends[name].size == 0:
            lo, hi = bounds[name]
            raise EmptySplitError(
                f"split {name!r} ({_iso(lo)} .. {_iso(hi - HOUR)}, {mode} split) has no valid "
                f"window: {dropped[name]} window end(s) dropped for gaps/missing values/"
                f"boundaries, {no_forecast[name]} without a weather forecast, {purged[name]} "
                "purged because their targets cross into the next split; windows per split: "
                f"{ {k: int(v.size) for k, v in ends.items()} }"
            )

    train_rows = times < train_cut
    scaler = Scaler.fit(
        features[train_rows],
        target_matrix[train_rows],
        None if future is None else future[ends["train"]],
    )
    return SequenceTensors(
        features=features,
        targets=target_matrix,
        feature_names=names,
        target_names=targets,
        times=times,
        location_codes=codes,
        locations=locations,
        lookback=int(lookback),
        horizons=horizon_list,
        ends=ends,
        scaler=scaler,
        dropped=dropped,
        purged=purged,
        split_mode=mode,
        split_bounds=bounds,
        dropped_features=dropped_features,
        future=future,
        future_names=future_list,
        no_forecast=no_forecast,
    )


def _check_arguments(targets: list[str], lookback: int, horizons: list[int]) -> None:
    if not targets:
        raise ValueError("at least one target pollutant is required")
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be non-empty and >= 1, got {horizons}")


def _feature_columns(
    frame: pd.DataFrame,
    feature_names: Sequence[str] | None,
    targets: list[str],
    training_rows: np.ndarray,
) -> tuple[list[str], np.ndarray, list[str]]:
    """The feature names, their C-ordered matrix and the default columns left out.

    The default set adapts to what the station reports: a weather column absent from the
    frame, or with no value in the training period, is left out and named. An explicit list
    naming such a column fails with its name instead.
    """
    names = list(default_feature_names(targets) if feature_names is None else feature_names)
    dropped: list[str] = []
    if feature_names is None:
        available = derivable_columns(frame)
        dropped = [n for n in names if n not in available and n not in targets]
        names = [n for n in names if n not in dropped]
    # C order: pandas hands back column-major arrays, but windows are cut along rows.
    features = np.ascontiguousarray(feature_matrix(frame, names))  # MissingFeatureError
    reported = np.isfinite(features[training_rows]).any(axis=0)
    empty = [n for n, ok in zip(names, reported, strict=True) if not ok and n not in targets]
    if empty and feature_names is not None:
        raise EmptyFeatureError(
            f"feature column(s) {empty} have no value in the training period: the station "
            "does not report them; remove them from the feature list (or leave the list "
            "unset: the default set drops empty weather columns)"
        )
    if empty:
        keep = [i for i, n in enumerate(names) if n not in empty]
        features = np.ascontiguousarray(features[:, keep])
        names = [names[i] for i in keep]
    return names, features, dropped + empty


def _require_every_station_reports(
    names: list[str], features: np.ndarray, codes: np.ndarray, locations: list[str]
) -> None:
    """Refuse inputs the model reads that one station never reports (no value in any of its
    hours, e.g. precipitation a station does not measure, now unknown rather than 0): every
    window there would be dropped, silently; the error names the station and the columns."""
    if len(locations) < 2:  # one station: an empty column was already dropped or refused
        return
    reported = np.zeros((len(locations), len(names)), dtype=bool)
    np.logical_or.at(reported, codes, np.isfinite(features))
    silent = {
        locations[i]: [n for n, ok in zip(names, row, strict=True) if not ok]
        for i, row in enumerate(reported)
        if not row.all()
    }
    if silent:
        listed = "; ".join(f"{loc}: {', '.join(cols)}" for loc, cols in silent.items())
        raise EmptyFeatureError(
            f"input(s) the model reads have no value at all for a whole station ({listed}): "
            "no window there could be used. Leave the station out of this model's locations, "
            "or choose features every station reports"
        )


def _complete_windows(
    features: np.ndarray,
    targets: np.ndarray,
    breaks: np.ndarray,
    lookback: int,
    horizons: list[int],
) -> np.ndarray:
    """Per row: does a window ending here have every input and target, within one segment?"""
    n, max_h = len(features), horizons[-1]
    valid = np.zeros(n, dtype=bool)
    if n < lookback + max_h:
        return valid
    segment = np.cumsum(breaks)
    feature_ok = np.isfinite(features).all(axis=1)
    target_ok = np.isfinite(targets).all(axis=1)
    t = np.arange(lookback - 1, n - max_h)
    bad_before = np.concatenate(([0], np.cumsum(~feature_ok)))
    ok = segment[t - lookback + 1] == segment[t + max_h]
    ok &= bad_before[t + 1] == bad_before[t - lookback + 1]
    for h in horizons:  # loop over horizons (<= dozens), vectorised over windows
        ok &= target_ok[t + h]
    valid[t] = ok
    return valid


def _split_ends(
    times: np.ndarray,
    valid: np.ndarray,
    forecast_ok: np.ndarray,
    bounds: dict[str, tuple[int, int]],
    max_h: int,
) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, int], dict[str, int]]:
    """Window ends per split, and per split how many were dropped, purged, or had no forecast.

    A training or validation window whose targets reach into the next split is purged.
    """
    ends: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    purged: dict[str, int] = {}
    no_forecast: dict[str, int] = {}
    for name, (lo, hi) in bounds.items():
        in_period = (times >= lo) & (times < hi)
        complete = in_period & valid
        reach_ok = np.ones_like(valid) if name == "test" else times + max_h * HOUR < hi
        kept = complete & reach_ok
        ends[name] = np.flatnonzero(kept & forecast_ok).astype(np.int64)
        dropped[name] = int(in_period.sum() - complete.sum())
        purged[name] = int(complete.sum() - kept.sum())
        no_forecast[name] = int((kept & ~forecast_ok).sum())
    return ends, dropped, purged, no_forecast


def _epoch_seconds(column: pd.Series) -> np.ndarray:
    """UTC epoch seconds; naive timestamps are taken to be UTC (the frames' convention)."""
    index = pd.DatetimeIndex(column)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return (index.as_unit("s").asi8).astype(np.int64)


def _longest_run(complete: np.ndarray, breaks: np.ndarray) -> int:
    """Length of the longest run of complete rows that does not cross a segment break."""
    if not complete.any():
        return 0
    previous = np.concatenate(([False], complete[:-1]))
    starts = complete & (breaks | ~previous)
    run_ids = np.cumsum(starts)[complete]
    return int(np.bincount(run_ids).max())


def _training_period(split: SplitSpec, times: np.ndarray) -> np.ndarray:
    """Rows in (an estimate of) the training period, known before any window is cut.

    Date cuts when the data spans them (as :func:`_cuts` decides); otherwise the first
    ``train_fraction`` of the time span.
    """
    if times.size == 0:
        return np.zeros(0, dtype=bool)
    dates = split.date_cuts()
    if dates is not None and times.min() < dates[0] and dates[1] <= times.max():
        return times < dates[0]
    first, last = int(times.min()), int(times.max())
    return times <= first + split.train_fraction * (last - first)


def _cuts(split: SplitSpec, times: np.ndarray, valid_ends: np.ndarray) -> tuple[int, int, str]:
    """Cut points (first validation hour, first test hour) in epoch seconds, and the mode."""
    dates = split.date_cuts()
    if dates is not None and times.min() < dates[0] and dates[1] <= times.max():
        return dates[0], dates[1], "dates"
    end_times = np.sort(times[valid_ends])
    m = end_times.size
    train_cut = int(end_times[min(int(m * split.train_fraction), m - 1)])
    val_index = int(m * (split.train_fraction + split.validation_fraction))
    val_cut = int(end_times[min(val_index, m - 1)])
    return train_cut, val_cut, "fractions"


def batch_windows(
    tensors: SequenceTensors, ends: np.ndarray | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``X (n, lookback, features)`` and ``y (n, horizons, targets)`` for given ends.

    ``sliding_window_view`` gives a zero-copy (hours - lookback + 1, lookback, features) view;
    fancy indexing by ``ends - lookback + 1`` makes the single contiguous copy. Ends are not
    re-validated for gaps;
    use ``tensors.ends[...]`` for windows known to be valid.
    """
    ends = np.asarray(ends, dtype=np.int64)
    lookback, n = tensors.lookback, len(tensors.features)
    horizons = np.asarray(tensors.horizons, dtype=np.int64)
    if ends.size and (ends.min() < lookback - 1 or ends.max() + horizons[-1] >= n):
        raise IndexError(
            f"window ends must lie in [{lookback - 1}, {n - 1 - horizons[-1]}] "
            f"(lookback {lookback}, max horizon {horizons[-1]}, {n} rows)"
        )
    n_features = tensors.features.shape[1]
    if ends.size == 0:
        empty_x = np.empty((0, lookback, n_features), dtype=np.float32)
        return empty_x, np.empty((0, horizons.size, tensors.targets.shape[1]), np.float32)
    view = sliding_window_view(tensors.features, (lookback, n_features))[:, 0]
    x = view[ends - lookback + 1]
    y = tensors.targets[ends[:, None] + horizons[None, :]]
    return x, y


def windows(tensors: SequenceTensors, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` float32 for every valid window of ``split`` ("train"/"validation"/"test")."""
    if split not in tensors.ends:
        raise KeyError(f"unknown split {split!r}; expected one of {list(tensors.ends)}")
    return batch_windows(tensors, tensors.ends[split])


def network_inputs(tensors: SequenceTensors, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """``([X] or [X, forecast block], y)`` for every valid window of ``split``: what a
    network reads (the forecast issued at each window's end when the tensors carry one)."""
    x, y = windows(tensors, split)
    if tensors.future is None:
        return [x], y
    return [x, tensors.future[tensors.ends[split]]], y


def tensor_summary(tensors: SequenceTensors) -> dict[str, Any]:
    """JSON-friendly description for asset metadata: shapes, names, ranges, bytes."""
    lookback, n_features = tensors.lookback, tensors.features.shape[1]
    n_h, n_t = len(tensors.horizons), tensors.targets.shape[1]
    splits: dict[str, Any] = {}
    materialised = 0
    for name, ends in tensors.ends.items():
        end_times = tensors.times[ends]
        x_shape, y_shape = [int(ends.size), lookback, n_features], [int(ends.size), n_h, n_t]
        materialised += 4 * (int(np.prod(x_shape)) + int(np.prod(y_shape)))
        splits[name] = {
            "windows": int(ends.size),
            "X_shape": x_shape,
            "y_shape": y_shape,
            "allowed_end_range": list(tensors.split_range(name)) if tensors.split_bounds else None,
            "first_window_end": _iso(end_times.min()) if ends.size else None,
            "last_window_end": _iso(end_times.max()) if ends.size else None,
            "dropped_windows": tensors.dropped.get(name, 0),
            "purged_windows": tensors.purged.get(name, 0),
            "windows_without_forecast": tensors.no_forecast.get(name, 0),
        }
    arrays = [tensors.features, tensors.targets, tensors.times, tensors.location_codes]
    if tensors.future is not None:
        arrays.append(tensors.future)
    stored = sum(a.nbytes for a in arrays) + sum(e.nbytes for e in tensors.ends.values())
    return {
        "hours": len(tensors.features),
        "features_shape": list(tensors.features.shape),
        "feature_names": list(tensors.feature_names),
        "target_names": list(tensors.target_names),
        "locations": list(tensors.locations),
        "lookback": lookback,
        "horizons": list(tensors.horizons),
        "split_mode": tensors.split_mode,
        "future_names": list(tensors.future_names),
        "splits": splits,
        "stored_bytes": int(stored),
        "materialised_window_bytes": int(materialised),
        "materialised_to_stored_ratio": round(materialised / stored, 2) if stored else None,
    }
