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

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray) -> Scaler:
        """Fit on the given (training) rows, ignoring NaN; float64 accumulation."""
        f_mean, f_std = _mean_std(features)
        t_mean, t_std = _mean_std(targets)
        return cls(f_mean, f_std, t_mean, t_std, fitted_rows=len(features))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, e.g. for model metadata or MLflow params."""
        return {
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "target_mean": self.target_mean.tolist(),
            "target_std": self.target_std.tolist(),
            "fitted_rows": self.fitted_rows,
        }


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
) -> SequenceTensors:
    """Build the hourly matrix, valid window ends per split and training-only scalers.

    ``frame`` is ``hourly_observations``: one row per location-hour on a regular grid, missing
    hours as NaN rows. ``feature_names=None`` means :func:`default_feature_names`. Raises
    :class:`MissingFeatureError` for absent columns, :class:`InsufficientDataError` when no
    window fits, :class:`EmptySplitError` when one split gets nothing.
    """
    targets = list(targets)
    horizon_list = sorted({int(h) for h in horizons})
    if not targets:
        raise ValueError("at least one target pollutant is required")
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")
    if not horizon_list or horizon_list[0] < 1:
        raise ValueError(f"horizons must be non-empty and >= 1, got {horizon_list}")
    names = list(default_feature_names(targets) if feature_names is None else feature_names)
    split = split or SplitSpec()
    dropped_features: list[str] = []
    if feature_names is None:  # the defaults adapt to what the station reports
        available = derivable_columns(frame)
        dropped_features = [n for n in names if n not in available and n not in targets]
        names = [n for n in names if n not in dropped_features]

    for column in (LOCATION, TIME):
        if column not in frame.columns:
            raise MissingFeatureError(f"frame has no {column!r} column")
    missing_targets = [name for name in targets if name not in frame.columns]
    if missing_targets:
        raise MissingFeatureError(
            f"missing target column(s) {missing_targets}; the frame has {sorted(frame.columns)}"
        )

    times = _epoch_seconds(frame[TIME])
    codes, uniques = pd.factorize(frame[LOCATION], sort=False)
    codes = codes.astype(np.int32)
    order = np.lexsort((times, codes))
    if not np.array_equal(order, np.arange(len(order))):  # contract says sorted; be safe
        frame = frame.iloc[order]
        times, codes = times[order], codes[order]

    # C order: pandas hands back column-major arrays, but windows are cut along rows.
    features = np.ascontiguousarray(feature_matrix(frame, names))  # MissingFeatureError
    reported = np.isfinite(features[_training_period(split, times)]).any(axis=0)
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
        dropped_features += empty
        names = [names[i] for i in keep]
    target_matrix = np.ascontiguousarray(frame[targets].to_numpy(dtype=np.float32))
    max_h = horizon_list[-1]

    # A segment is a run of rows of one location at consecutive hours.
    n = len(frame)
    breaks = np.ones(n, dtype=bool)
    breaks[1:] = (codes[1:] != codes[:-1]) | (np.diff(times) != HOUR)
    segment = np.cumsum(breaks)
    feature_ok = np.isfinite(features).all(axis=1)
    target_ok = np.isfinite(target_matrix).all(axis=1)

    valid = np.zeros(n, dtype=bool)
    if n >= lookback + max_h:
        t = np.arange(lookback - 1, n - max_h)
        bad_before = np.concatenate(([0], np.cumsum(~feature_ok)))
        ok = segment[t - lookback + 1] == segment[t + max_h]
        ok &= bad_before[t + 1] == bad_before[t - lookback + 1]
        for h in horizon_list:  # loop over horizons (<= dozens), vectorised over windows
            ok &= target_ok[t + h]
        valid[t] = ok
    valid_ends = np.flatnonzero(valid)
    if valid_ends.size == 0:
        longest = _longest_run(feature_ok & target_ok, breaks)
        raise InsufficientDataError(
            f"no valid window: one needs {lookback + max_h} consecutive complete hours at one "
            f"location (lookback {lookback} + max horizon {max_h}, every feature and target "
            f"present, no gap), but the longest complete run has {longest} hour(s) "
            f"in {n} row(s)"
        )

    train_cut, val_cut, mode = _cuts(split, times, valid_ends)
    first, stop = int(times.min()), int(times.max()) + HOUR
    bounds = {
        "train": (first, train_cut),
        "validation": (train_cut, val_cut),
        "test": (val_cut, max(stop, val_cut)),
    }

    end_times = times[valid_ends]
    target_reach = end_times + max_h * HOUR  # contiguity makes this the last target's time
    ends: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    purged: dict[str, int] = {}
    for name, (lo, hi) in bounds.items():
        in_split = (end_times >= lo) & (end_times < hi)
        keep = in_split if name == "test" else in_split & (target_reach < hi)
        ends[name] = valid_ends[keep].astype(np.int64)
        purged[name] = int(in_split.sum() - keep.sum())
        candidates = int(((times >= lo) & (times < hi)).sum())
        dropped[name] = candidates - int(in_split.sum())

    for name in SPLITS:
        if ends[name].size == 0:
            lo, hi = bounds[name]
            raise EmptySplitError(
                f"split {name!r} ({_iso(lo)} .. {_iso(hi - HOUR)}, {mode} split) has no valid "
                f"window: {dropped[name]} window end(s) dropped for gaps/missing values/"
                f"boundaries, {purged[name]} purged because their targets cross into the next "
                f"split; windows per split: { {k: int(v.size) for k, v in ends.items()} }"
            )

    train_rows = times < train_cut
    scaler = Scaler.fit(features[train_rows], target_matrix[train_rows])

    return SequenceTensors(
        features=features,
        targets=target_matrix,
        feature_names=names,
        target_names=targets,
        times=times,
        location_codes=codes,
        locations=[str(u) for u in uniques],
        lookback=int(lookback),
        horizons=horizon_list,
        ends=ends,
        scaler=scaler,
        dropped=dropped,
        purged=purged,
        split_mode=mode,
        split_bounds=bounds,
        dropped_features=dropped_features,
    )


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
        }
    stored = sum(
        a.nbytes for a in (tensors.features, tensors.targets, tensors.times, tensors.location_codes)
    ) + sum(e.nbytes for e in tensors.ends.values())
    return {
        "hours": len(tensors.features),
        "features_shape": list(tensors.features.shape),
        "feature_names": list(tensors.feature_names),
        "target_names": list(tensors.target_names),
        "locations": list(tensors.locations),
        "lookback": lookback,
        "horizons": list(tensors.horizons),
        "split_mode": tensors.split_mode,
        "splits": splits,
        "stored_bytes": int(stored),
        "materialised_window_bytes": int(materialised),
        "materialised_to_stored_ratio": round(materialised / stored, 2) if stored else None,
    }
