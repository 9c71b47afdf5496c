"""A scale shift of the target since some day: the hours the gate must not decide on.

A recalibrated monitor (pm2_5 reading 1.5x) keeps most hours inside the seasonal range, so
neither the range nor the stuck check of :mod:`airquality_assets.monitoring.flags` sees it,
and a promotion was once decided on windows holding its faulty actuals. What such a fault
does change is the ratio of what the sensor reports to an out-of-sample forecast: from its
onset on, actuals sit above (or below) the champion's forecasts day after day, while on
clean data the daily ratio wanders around its usual level (under on smog build-ups, over
on clear-outs, never for days on end by a factor).

The detector, per location, on the gate's windows (the champion never trained on them):

* per window, ``log((actual + 1) / (forecast + 1))`` of the target averaged over horizons;
  per day (of the window's end) their mean;
* the onset is the day ``k`` maximising the shift of the mean of days ``k..newest`` over
  the mean of the days before, with at least ``min_before_days`` before and at most
  ``max_tail_days`` after;
* flagged when ``|shift| >= min_log_shift`` (a factor of 1.15 by default), every day from
  ``k`` on lies on the shifted side of the earlier mean (a lasting fault, not one bad day), and the
  shift is ``z`` (3) standard errors of the earlier days' day-to-day spread away.

Only a shift lasting to the newest day counts: the gate's window ends now, and that is
where a recalibration still in force sits. Flagged rows: every hour of the location from
the onset day on. Pure numpy.

Weak on real data (docs/results.md, "The simulation"): against a stand-in forecaster on the
bundled pm2_5 it found a 1.5x shift of the last 4 days in 1-5 of 92 gate windows and false
shifts in 2-9 of 92 clean ones; daily pm2_5 swings against any forecast by more than 1.5x.
A false find costs clean windows and the degraded rule, never a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86400
SCALE_SHIFT = "scale shift"


@dataclass(frozen=True)
class ShiftThresholds:
    min_log_shift: float = float(np.log(1.15))
    z: float = 3.0
    min_before_days: int = 14
    max_tail_days: int = 14


@dataclass(frozen=True)
class Shift:
    """A detected shift: its onset (epoch seconds, start of a UTC day) and size."""

    onset: int
    log_shift: float
    z: float
    days: int

    @property
    def factor(self) -> float:
        return float(np.exp(self.log_shift))


def daily_log_ratio(
    times: np.ndarray, actual: np.ndarray, forecast: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(days, means)``: per UTC day (epoch of its start) the mean over that day's windows of
    ``log((actual + 1) / (forecast + 1))`` averaged over horizons (``actual`` and ``forecast``
    are ``(windows, horizons)``; forecasts below zero count as zero)."""
    a = np.asarray(actual, dtype=float)
    f = np.clip(np.asarray(forecast, dtype=float), 0.0, None)
    ratio = np.nanmean(np.log1p(np.clip(a, 0.0, None)) - np.log1p(f), axis=1)
    day = (np.asarray(times, dtype=np.int64) // DAY) * DAY
    ok = np.isfinite(ratio)
    days, inverse = np.unique(day[ok], return_inverse=True)
    means = np.bincount(inverse, weights=ratio[ok]) / np.bincount(inverse)
    return days, means


def detect(
    times: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    thresholds: ShiftThresholds | None = None,
) -> Shift | None:
    """The shift lasting to the newest day, if any (see the module docstring)."""
    t = thresholds or ShiftThresholds()
    days, means = daily_log_ratio(times, actual, forecast)
    n = len(means)
    best: Shift | None = None
    for k in range(max(t.min_before_days, n - t.max_tail_days), n):
        before, tail = means[:k], means[k:]
        spread = float(np.std(before, ddof=1)) if len(before) > 1 else 0.0
        shift = float(tail.mean() - before.mean())
        if abs(shift) < t.min_log_shift or spread <= 0:
            continue
        side = np.sign(shift) * (tail - before.mean())
        if side.min() <= 0:
            continue
        z = abs(shift) / (spread / np.sqrt(len(tail)))
        if z < t.z:
            continue
        if best is None or z > best.z:
            best = Shift(int(days[k]), shift, float(z), len(tail))
    return best


def row_flags(
    times: np.ndarray,
    location_codes: np.ndarray,
    window_ends: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    target: str,
    thresholds: ShiftThresholds | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Shift]]:
    """``({reason: mask over rows}, {location code: shift})`` for tensors' rows
    (``times``/``location_codes`` per row), given the windows ending at rows ``window_ends``
    with ``actual``/``forecast`` of ``target`` as ``(windows, horizons)``."""
    mask = np.zeros(len(times), dtype=bool)
    found: dict[str, Shift] = {}
    codes = location_codes[window_ends]
    for code in np.unique(codes):
        mine = codes == code
        shift = detect(times[window_ends][mine], actual[mine], forecast[mine], thresholds)
        if shift is None:
            continue
        found[str(int(code))] = shift
        mask |= (location_codes == code) & (times >= shift.onset)
    return ({f"{target} {SCALE_SHIFT}": mask} if mask.any() else {}), found


def tensor_shift_flags(
    tensors, y: np.ndarray, forecast: np.ndarray, thresholds: ShiftThresholds | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """:func:`row_flags` for every target of the gate ``tensors`` (a
    :class:`~airquality_assets.transforms.windowing.SequenceTensors`) from the actuals ``y``
    and the champion's ``forecast`` of its test windows, ``(windows, horizons, targets)``;
    with one readable line of what was found ("" for nothing)."""
    ends = tensors.ends["test"]
    flags: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for j, name in enumerate(tensors.target_names):
        found, shifts = row_flags(
            tensors.times, tensors.location_codes, ends, y[:, :, j], forecast[:, :, j], name,
            thresholds,
        )  # fmt: skip
        flags.update(found)
        for code, s in shifts.items():
            onset = np.datetime64(s.onset, "s").astype("datetime64[D]")
            notes.append(
                f"{tensors.locations[int(code)]}: {name} x{s.factor:.2f} of the champion's "
                f"forecasts since {onset} ({s.days} d, z {s.z:.1f})"
            )
    return flags, "; ".join(notes)
