"""Hours the drift check would flag as faulty data: what the promotion gate leaves out.

A comparison of two models on hours when a sensor was frozen or reported the wrong unit
measures which model copes better with the fault, not which forecasts air quality better
(a recalibrated pm2_5 monitor once decided a promotion: the challenger won only on the
windows touching the faulty days). This module replays the daily drift check of
:mod:`airquality_assets.monitoring.drift` over a stretch of hours and marks, per hour, the
data it would have called faulty:

* **stuck**: every hour of a run of one repeated reading at least ``stuck_error_hours``
  long (24 h), on the features whose readings vary hour to hour (pm2_5, temperature);
* **out of range**: when half the hours of an evaluation's week lie outside the seasonal
  reference's central 99 %, every hour of that 7-day window. Not on the newest day's 80 %
  alone, which alerts early (``drift_report``) but which a real cold, dry winter day
  reaches too: it left 215-414 clean gate windows out. A unit change starts somewhere
  inside the week and lasts, and where it began cannot be told from the hours; it is
  flagged once it fills half a week. The cost is up to six clean days left out with it.
  A recalibration stays inside the range: :mod:`airquality_assets.monitoring.level_shift`
  finds it against the champion's forecasts.

Evaluations are daily, at every midnight of the stretch and at its newest hour, each over
the 7 days before it against the same weeks of the reference period (the champion's own
training data), exactly as ``drift_report`` does. Pure numpy/pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from airquality_assets.columns import TIME
from airquality_assets.monitoring.drift import (
    DEFAULT_FEATURES,
    DriftThresholds,
    seasonal_reference,
)
from airquality_assets.transforms.windowing import SequenceTensors

WINDOW_HOURS = 24 * 7
HOUR = 3600
STUCK, OUT_OF_RANGE = "stuck", "out of range"


@dataclass
class HourFlags:
    """Per row of the frame given to :func:`flag_hours`: why its data is faulty, if it is.

    ``by_reason`` maps ``"<feature> stuck"`` / ``"<feature> out of range"`` to a boolean
    mask over the rows; :attr:`any` is their union.
    """

    rows: int
    by_reason: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def any(self) -> np.ndarray:
        out = np.zeros(self.rows, dtype=bool)
        for mask in self.by_reason.values():
            out |= mask
        return out

    def add(self, reason: str, mask: np.ndarray) -> None:
        if not mask.any():
            return
        if reason in self.by_reason:
            self.by_reason[reason] |= mask
        else:
            self.by_reason[reason] = mask.copy()

    def counts(self) -> dict[str, int]:
        return {reason: int(mask.sum()) for reason, mask in sorted(self.by_reason.items())}


def _runs_at_least(values: np.ndarray, length: int) -> np.ndarray:
    """Mask of the positions inside a run of one repeated finite value of ``length`` or more."""
    n = len(values)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    same = np.isfinite(values[1:]) & (values[1:] == values[:-1])
    edges = np.diff(np.r_[0, same.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start, stop in zip(starts, stops, strict=True):
        if stop - start + 1 >= length:  # k equal steps are k + 1 equal values
            out[start : stop + 1] = True
    return out


def evaluation_ends(start: datetime, newest: datetime) -> list[pd.Timestamp]:
    """Every midnight after ``start`` up to ``newest``, and ``newest`` itself: the daily
    drift evaluations whose windows reach into [start, newest]."""
    first = pd.Timestamp(start).normalize() + pd.Timedelta(days=1)
    ends = list(pd.date_range(first, pd.Timestamp(newest), freq="D"))
    if not ends or ends[-1] != pd.Timestamp(newest):
        ends.append(pd.Timestamp(newest))
    return ends


def flag_hours(
    frame: pd.DataFrame,
    start: datetime,
    reference_end: datetime,
    reference_start: datetime | None = None,
    features: Sequence[str] = DEFAULT_FEATURES,
    thresholds: DriftThresholds | None = None,
) -> HourFlags:
    """Flags for the rows of ``frame`` (one location, ``TIME`` plus feature columns, raw
    units, time-sorted) from the drift evaluations of [``start``, the newest row].

    The reference is the frame's own rows in [``reference_start``, ``reference_end``) from
    the same weeks of the year, as the champion's drift reference. Rows before ``start`` are
    flagged too when a window reaching back over them finds a fault.
    """
    t = thresholds or DriftThresholds()
    flags = HourFlags(len(frame))
    if frame.empty:
        return flags
    times = pd.DatetimeIndex(frame[TIME])
    epoch = times.asi8 // 10**9
    features = [f for f in features if f in frame.columns]
    values = {f: frame[f].to_numpy(dtype=float) for f in features}
    needed = int(np.ceil(t.min_window_fraction * WINDOW_HOURS))
    for end in evaluation_ends(start, times.max()):
        stop = int(end.timestamp())
        window = (epoch > stop - WINDOW_HOURS * HOUR) & (epoch <= stop)
        if not window.any():
            continue
        window_start = end - pd.Timedelta(hours=WINDOW_HOURS)
        reference = seasonal_reference(frame, window_start, end, reference_start, reference_end)
        if len(reference) < t.min_reference_rows:
            continue
        positions = np.flatnonzero(window)
        for feature in features:
            _flag_feature(flags, feature, values[feature], positions, reference, needed, t)
    return flags


def _flag_feature(
    flags: HourFlags,
    feature: str,
    series: np.ndarray,
    positions: np.ndarray,
    reference: pd.DataFrame,
    needed: int,
    t: DriftThresholds,
) -> None:
    """One feature in one evaluation window (``positions`` of the frame's rows)."""
    current = series[positions]
    finite = np.isfinite(current)
    ref = reference[feature].to_numpy(dtype=float)
    ref = ref[np.isfinite(ref)]
    if finite.sum() < needed or len(ref) < t.min_reference_rows:
        return
    if feature in t.stuck_features:
        stuck = _runs_at_least(current, t.stuck_error_hours)
        mask = np.zeros(len(series), dtype=bool)
        mask[positions[stuck]] = True
        flags.add(f"{feature} {STUCK}", mask)
    lo, hi = np.quantile(ref, [t.range_quantile, 1 - t.range_quantile])
    outside = finite & ((current < lo) | (current > hi))
    share = outside.sum() / finite.sum()
    # The week's share only, not the newest day's: that one alerts early (drift_report), but
    # a real cold, dry winter day (dew point -40 degC, humidity 3 % on 2014-02-03) reaches
    # it too, and flagging its whole week left 215-414 clean gate windows out.
    if share >= t.out_of_range_error:
        # The whole window: where a subtle fault began cannot be told from its hours (a
        # x1.5 recalibration leaves most of them inside the range).
        mask = np.zeros(len(series), dtype=bool)
        mask[positions] = True
        flags.add(f"{feature} {OUT_OF_RANGE}", mask)


def tensor_flags(
    tensors: SequenceTensors,
    reference_end: str | datetime,
    features: Sequence[str] = DEFAULT_FEATURES,
    thresholds: DriftThresholds | None = None,
) -> dict[str, np.ndarray]:
    """:func:`flag_hours` over the rows of ``tensors.features``, per location, from the
    first input hour of its test windows on; reason -> mask over every row (what
    :func:`airquality_assets.ml.promotion.clean_windows` takes).

    The reference is each location's rows before ``reference_end`` (the champion's own
    training and validation data).
    """
    ends = tensors.ends["test"]
    out: dict[str, np.ndarray] = {}
    if len(ends) == 0:
        return out
    names = [f for f in features if f in tensors.feature_names]
    columns = [tensors.feature_names.index(f) for f in names]
    first = int(tensors.times[ends].min()) - (tensors.lookback - 1) * HOUR
    start = pd.Timestamp(first, unit="s", tz="UTC")
    for code in np.unique(tensors.location_codes[ends]):
        rows = np.flatnonzero(tensors.location_codes == code)
        rows = rows[np.argsort(tensors.times[rows], kind="stable")]
        frame = pd.DataFrame(tensors.features[rows][:, columns].astype(float), columns=names)
        frame.insert(0, TIME, pd.to_datetime(tensors.times[rows], unit="s", utc=True))
        flags = flag_hours(frame, start, pd.Timestamp(reference_end), None, names, thresholds)
        for reason, mask in flags.by_reason.items():
            full = out.setdefault(reason, np.zeros(len(tensors.times), dtype=bool))
            full[rows[mask]] = True
    return out


def recent_flags(
    frame: pd.DataFrame,
    now: datetime,
    reference_start: datetime | None,
    reference_end: datetime,
    features: Sequence[str] = DEFAULT_FEATURES,
    thresholds: DriftThresholds | None = None,
) -> dict[str, int]:
    """Hours of the last 7 days (to ``now``) flagged by the daily evaluations of those days:
    the drift check passes only once these have left its window, so "resolved" means the
    week is clean, not that today's evaluation happened to miss the fault."""
    end = pd.Timestamp(now)
    start = end - pd.Timedelta(hours=WINDOW_HOURS)
    seen = frame[pd.DatetimeIndex(frame[TIME]) <= end]
    flags = flag_hours(seen, start, reference_end, reference_start, features, thresholds)
    inside = np.asarray(pd.DatetimeIndex(seen[TIME]) > start)
    counts = {reason: int((mask & inside).sum()) for reason, mask in flags.by_reason.items()}
    return {reason: n for reason, n in sorted(counts.items()) if n}
