"""Clean the merged hourly grid: impossible values, isolated spikes, short gaps.

Pure functions (no Dagster), vectorised with numpy over a (hours x columns) matrix per
location, with no Python loop over hours (benchmarks/cleaning.py measures it).

The rules, in the order applied (documented once, here):

1. **Physical bounds** (:data:`PHYSICAL_BOUNDS`): a value outside what nature allows (a
   negative concentration, humidity above 100 %, a wind direction of 400 degrees, sea-level
   pressure outside 850-1100 hPa) is an instrument or transmission error -> NaN, counted in
   ``outliers_bounds``.
2. **Isolated spikes** (:class:`OutlierRule`, pollutants only by default): a Hampel filter on
   a centred window of ``2 * half_window_hours + 1`` hours. An hour is a spike only if *all*
   of these hold:

   * it differs from the window median by more than ``k`` robust standard deviations,
     ``sigma = max(1.4826 * MAD, relative_floor * |median|, absolute_floor)``;
   * it differs from *both* neighbouring hours by more than ``k * sigma``, in the same
     direction (a one-hour peak or dip), and both neighbours are known;
   * both neighbours are themselves ordinary (within ``k * sigma`` of the median): a peak
     whose neighbours are also raised is a short real event (fireworks, a passing plume),
     not an isolated reading;
   * the window has at least ``min_valid`` known values.

   Why not a mean/std z-score: it is dragged by the very episodes it should respect
   (Beijing PM2.5 legitimately reaches ~1000 ug/m3 in winter smog that builds over hours to
   days). Median and MAD ignore a lone spike, a real episode widens the MAD and raises the
   median, and the neighbour condition means a sustained plateau, a ramp or a step can never
   be flagged, only a single hour that jumps away *and* back. ``k = 6`` (textbook Hampel uses
   3) plus the floors keep the rule conservative: with a 25 % relative floor a spike must
   exceed the local median by at least 1.5 times the median itself (e.g. 40 -> above
   100 ug/m3). What it removes on the bundled data is in docs/results.md. Weather columns are
   left to the bounds rule: they come from station/model blends where single-hour jumps (a
   shower, a front) are real, and wind direction is circular, which a median cannot handle.
   Spikes become NaN, counted in ``outliers_spike``.
3. **Gaps**: a run of consecutive missing hours (after 1 and 2) of length <=
   ``interpolation_limit_hours`` with known values on *both* sides is linearly interpolated
   per column. Longer runs and runs touching the start or end of a location's series are
   left *entirely* missing (pandas' ``interpolate(limit=...)`` would fill the first hours of
   a long gap, inventing data exactly where the series is least known), counted in
   ``unfilled_gaps`` / ``longest_gap_hours``. Wind direction is interpolated on its sine and
   cosine (350 -> 10 degrees passes through 0, not 180); ``aqi``, ``is_rain`` and
   ``is_snow`` are rounded half-up after interpolation so they stay integers / 0-1 flags.

Audit columns (``audit_columns=True``, the default): ``<col>_interpolated`` (bool) for every
value column marks filled hours, and ``<col>_spike`` (float) for every spike-checked column
holds the raw value the spike rule removed (NaN elsewhere), so the cleaning is auditable.

A cleaned value depends only on raw values at most :func:`influence_hours` away, which is
why a month cleaned together with its neighbouring months equals a full recompute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.bounds import PHYSICAL_BOUNDS
from airquality_assets.columns import AQI, POLLUTANTS
from airquality_assets.transforms.merging import (
    HOUR_NS,
    OBSERVATION_COLUMNS,
    VALUE_COLUMNS,
    build_frame,
    location_codes,
    time_ns,
)

#: Interpolated, then rounded half-up: integer index / 0-1 flags.
ROUNDED_COLUMNS: tuple[str, ...] = (AQI, "is_rain", "is_snow")
#: Interpolated on the unit circle.
CIRCULAR_COLUMNS: tuple[str, ...] = ("winddir",)

INTERPOLATED_SUFFIX = "_interpolated"
SPIKE_SUFFIX = "_spike"
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class OutlierRule:
    """Hampel spike rule (see the module docstring for why each part is there)."""

    columns: tuple[str, ...] = POLLUTANTS
    half_window_hours: int = 12
    k: float = 6.0
    min_valid: int = 13
    relative_floor: float = 0.25
    absolute_floor: float = 1.0

    def __post_init__(self) -> None:
        if self.half_window_hours < 1:
            raise ValueError("half_window_hours must be >= 1")
        if not 1 <= self.min_valid <= 2 * self.half_window_hours + 1:
            raise ValueError("min_valid must be between 1 and the window length")
        unknown = set(self.columns) - set(VALUE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown outlier columns {sorted(unknown)}")


DEFAULT_OUTLIER_RULE = OutlierRule()


@dataclass
class CleaningStats:
    """What cleaning did, per value column; ``as_metadata`` gives JSON-ready totals + detail.

    ``rows`` is the number of grid hours described (all locations), ``observed_rows`` those
    where at least one raw value was present; ``missing_before`` counts NaN on the raw grid,
    ``missing_after`` after cleaning. ``unfilled_gaps`` are runs left missing (too long or at
    an edge of the series), ``longest_gap_hours`` the longest run per column after outlier
    removal (0 when none). A column with no raw value at all in a location's series is
    named in ``empty_columns`` (column -> locations) and has no gap statistics there: it is
    not one gap as long as the series. ``by_month`` (with ``clean_observations(...,
    by_month=True)``) holds the same statistics per ``"YYYY-MM|location"``, gaps cut at the
    month boundaries.
    """

    rows: int = 0
    observed_rows: int = 0
    grid_hours: dict[str, int] = field(default_factory=dict)
    missing_before: dict[str, int] = field(default_factory=dict)
    missing_after: dict[str, int] = field(default_factory=dict)
    interpolated: dict[str, int] = field(default_factory=dict)
    outliers_bounds: dict[str, int] = field(default_factory=dict)
    outliers_spike: dict[str, int] = field(default_factory=dict)
    unfilled_gaps: dict[str, int] = field(default_factory=dict)
    longest_gap_hours: dict[str, int] = field(default_factory=dict)
    empty_columns: dict[str, list[str]] = field(default_factory=dict)
    by_month: dict[str, CleaningStats] = field(default_factory=dict)

    @property
    def interpolated_total(self) -> int:
        return sum(self.interpolated.values())

    @property
    def outliers_total(self) -> int:
        return sum(self.outliers_bounds.values()) + sum(self.outliers_spike.values())

    @property
    def unfilled_gaps_total(self) -> int:
        return sum(self.unfilled_gaps.values())

    @property
    def longest_gap(self) -> tuple[str, int] | None:
        """(column, hours) of the longest gap in any column that has values; None if none."""
        column, hours = max(self.longest_gap_hours.items(), key=lambda kv: kv[1], default=("", 0))
        return (column, hours) if hours else None

    def summary(self) -> str:
        """One line for a log: totals, the longest gap named by its column, empty columns."""
        longest = self.longest_gap
        gap = f" (longest {longest[1]} h, {longest[0]})" if longest else ""
        text = (
            f"{self.interpolated_total} values interpolated, {self.outliers_total} outliers "
            f"removed, {self.unfilled_gaps_total} gaps left missing{gap}"
        )
        if self.empty_columns:
            text += f"; no value at all (not counted as gaps): {', '.join(self.empty_columns)}"
        return text

    def as_metadata(self) -> dict[str, Any]:
        """Plain ints and dicts (zero entries dropped) for Dagster metadata / logs."""

        def nonzero(d: Mapping[str, int]) -> dict[str, int]:
            return {k: int(v) for k, v in d.items() if v}

        return {
            "rows": self.rows,
            "observed_rows": self.observed_rows,
            "grid_hours": dict(self.grid_hours),
            "interpolated": self.interpolated_total,
            "outliers": self.outliers_total,
            "unfilled_gaps": self.unfilled_gaps_total,
            "unfilled_gaps_by_column": nonzero(self.unfilled_gaps),
            "longest_gap_hours": nonzero(self.longest_gap_hours),
            "empty_columns": {c: list(locs) for c, locs in self.empty_columns.items()},
            "missing_before": nonzero(self.missing_before),
            "missing_after": nonzero(self.missing_after),
            "outliers_bounds": nonzero(self.outliers_bounds),
            "outliers_spike": nonzero(self.outliers_spike),
        }


def _bounds_arrays(columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([(PHYSICAL_BOUNDS.get(c, (None, None))[0]) for c in columns], dtype=object)
    hi = np.array([(PHYSICAL_BOUNDS.get(c, (None, None))[1]) for c in columns], dtype=object)
    lo = np.where(lo == None, -np.inf, lo).astype(np.float64)  # noqa: E711 (object array)
    hi = np.where(hi == None, np.inf, hi).astype(np.float64)  # noqa: E711
    return lo, hi


def _row_nanmedian(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of each row ignoring NaN, and the count of known values (rows, window)."""
    s = np.sort(a, axis=1)  # NaN sort last
    count = np.count_nonzero(~np.isnan(a), axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, a.shape[1] - 1)
    med = 0.5 * (
        np.take_along_axis(s, lo[:, None], axis=1)[:, 0]
        + np.take_along_axis(s, hi[:, None], axis=1)[:, 0]
    )
    return np.where(count > 0, med, np.nan), count


def _spikes(x: np.ndarray, rule: OutlierRule) -> np.ndarray:
    """Boolean (hours, columns) mask of isolated spikes in ``x`` (NaN = unknown).

    Cheap prefilter first (a strict one-hour peak/dip whose jumps exceed ``k * absolute_floor``,
    the smallest possible threshold), then exact windowed median/MAD only for those
    candidates, so the cost is a few vector ops plus a sort of a handful of windows.
    """
    n, c = x.shape
    flags = np.zeros((n, c), dtype=bool)
    if n < 3:
        return flags
    d_prev = np.full((n, c), np.nan)
    d_next = np.full((n, c), np.nan)
    d_prev[1:] = x[1:] - x[:-1]
    d_next[:-1] = x[:-1] - x[1:]
    floor = rule.k * rule.absolute_floor
    with np.errstate(invalid="ignore"):
        cand = (
            (d_prev * d_next > 0) & (np.abs(d_prev) > floor) & (np.abs(d_next) > floor)
        )  # NaN compares False: both neighbours must be known
    r, col = np.nonzero(cand)
    if r.size == 0:
        return flags
    w = rule.half_window_hours
    padded = np.full((n + 2 * w, c), np.nan)
    padded[w : w + n] = x
    windows = padded[r[:, None] + np.arange(2 * w + 1)[None, :], col[:, None]]
    med, count = _row_nanmedian(windows)
    mad, _ = _row_nanmedian(np.abs(windows - med[:, None]))
    sigma = np.maximum.reduce(
        [
            _MAD_TO_SIGMA * mad,
            rule.relative_floor * np.abs(med),
            np.full_like(med, rule.absolute_floor),
        ]
    )
    thr = rule.k * sigma
    value = x[r, col]
    before, after = value - d_prev[r, col], value - d_next[r, col]
    hit = (
        (count >= rule.min_valid)
        & (np.abs(value - med) > thr)
        & (np.abs(d_prev[r, col]) > thr)
        & (np.abs(d_next[r, col]) > thr)
        & (np.abs(before - med) <= thr)
        & (np.abs(after - med) <= thr)
    )
    flags[r[hit], col[hit]] = True
    return flags


def _interpolate(
    v: np.ndarray, limit: int, circular: Sequence[int], rounded: Sequence[int]
) -> np.ndarray:
    """Boolean mask of filled cells; fills ``v`` in place (see rule 3 in the module doc).

    Only columns with some but not all values missing are worked on: on real data that is a
    handful of the 28.
    """
    n, m = v.shape
    fill = np.zeros((n, m), dtype=bool)
    if limit <= 0 or n == 0:
        return fill
    known_all = ~np.isnan(v)
    count = known_all.sum(axis=0)
    work = np.flatnonzero((count > 1) & (count < n))
    if work.size == 0:
        return fill
    known = known_all[:, work]
    idx = np.arange(n)[:, None]
    prev = np.maximum.accumulate(np.where(known, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(known, idx, n)[::-1], axis=0)[::-1]
    sub_fill = ~known & (prev >= 0) & (nxt < n) & (nxt - prev - 1 <= limit)
    r, k = np.nonzero(sub_fill)
    if r.size == 0:
        return fill
    c = work[k]
    p, q = prev[r, k], nxt[r, k]
    frac = (r - p) / (q - p)
    v[r, c] = v[p, c] + (v[q, c] - v[p, c]) * frac
    for j in circular:
        sel = c == j
        if sel.any():
            a0, a1 = np.deg2rad(v[p[sel], j]), np.deg2rad(v[q[sel], j])
            f = frac[sel]
            s = np.sin(a0) + (np.sin(a1) - np.sin(a0)) * f
            co = np.cos(a0) + (np.cos(a1) - np.cos(a0)) * f
            v[r[sel], j] = np.mod(np.rad2deg(np.arctan2(s, co)), 360.0)
    for j in rounded:
        sel = c == j
        v[r[sel], j] = np.floor(v[r[sel], j] + 0.5)
    fill[:, work] = sub_fill
    return fill


def _gap_runs(missing: np.ndarray) -> tuple[int, int]:
    """(number of runs, longest run) of True in a 1-D mask."""
    if not missing.any():
        return 0, 0
    edges = np.diff(np.concatenate(([0], missing.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(starts.size), int((ends - starts).max())


def _check_grid(
    t: np.ndarray, codes: np.ndarray, names: Sequence[str]
) -> list[tuple[str, int, int]]:
    """Per-location (name, start, stop) row slices; raise unless each is a regular hourly grid."""
    if len(codes) == 0:
        return []
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [len(codes)]))
    slices = [(names[codes[s]], int(s), int(e)) for s, e in zip(starts, stops, strict=True)]
    if len({name for name, _, _ in slices}) != len(slices):
        raise ValueError("rows of a location are not contiguous; use merge_hourly first")
    steps = np.diff(t)
    steps[change - 1] = HOUR_NS  # location boundaries
    if len(t) > 1 and not np.all(steps == HOUR_NS):
        raise ValueError("time is not a regular hourly grid per location; use merge_hourly first")
    return slices


def _zero_stats(cols: Sequence[str]) -> CleaningStats:
    zeros = dict.fromkeys(cols, 0)
    return CleaningStats(
        missing_before=dict(zeros),
        missing_after=dict(zeros),
        interpolated=dict(zeros),
        outliers_bounds=dict(zeros),
        outliers_spike=dict(zeros),
        unfilled_gaps=dict(zeros),
        longest_gap_hours=dict(zeros),
    )


def _add_stats(
    stats: CleaningStats,
    name: str,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    spike_columns: Sequence[str],
) -> None:
    """Add one stretch of one location's series (rows x columns masks) to ``stats``."""
    raw_missing, bad, flags, pre_fill_missing, filled, after_missing = masks
    cols = VALUE_COLUMNS
    rows = len(raw_missing)
    if rows == 0:
        return
    stats.rows += rows
    stats.observed_rows += int((~raw_missing).any(axis=1).sum())
    stats.grid_hours[name] = stats.grid_hours.get(name, 0) + rows
    mb, ma = raw_missing.sum(axis=0), after_missing.sum(axis=0)
    fi, bo = filled.sum(axis=0), bad.sum(axis=0)
    gappy = pre_fill_missing.any(axis=0)
    empty = raw_missing.all(axis=0)
    for j, c in enumerate(cols):
        stats.missing_before[c] += int(mb[j])
        stats.missing_after[c] += int(ma[j])
        stats.interpolated[c] += int(fi[j])
        stats.outliers_bounds[c] += int(bo[j])
        if empty[j]:  # never reported here: named, not measured as one long gap
            stats.empty_columns.setdefault(c, []).append(name)
        elif gappy[j]:
            # A gap is "unfilled" when its hours stay missing after interpolation.
            runs, _ = _gap_runs(pre_fill_missing[:, j] & after_missing[:, j])
            _, longest = _gap_runs(pre_fill_missing[:, j])
            stats.unfilled_gaps[c] += runs
            stats.longest_gap_hours[c] = max(stats.longest_gap_hours[c], longest)
    for k, c in enumerate(spike_columns):
        stats.outliers_spike[c] += int(flags[:, k].sum())


def _clean_matrix(
    v: np.ndarray,
    slices: Sequence[tuple[str, int, int]],
    limit: int,
    rule: OutlierRule | None,
    months: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, CleaningStats]:
    """Clean ``v`` (all locations) in place; returns (interpolated mask, spike values, stats).

    ``months`` ("YYYY-MM" per row) asks for statistics per (month, location) as well."""
    cols = VALUE_COLUMNS
    col_idx = {c: j for j, c in enumerate(cols)}
    spike_idx = [col_idx[c] for c in rule.columns] if rule else []
    spike_columns = [cols[j] for j in spike_idx]
    circular = [col_idx[c] for c in CIRCULAR_COLUMNS]
    rounded = [col_idx[c] for c in ROUNDED_COLUMNS]
    lo, hi = _bounds_arrays(cols)

    interp = np.zeros(v.shape, dtype=bool)
    spike_vals = np.full((v.shape[0], len(spike_idx)), np.nan)
    stats = _zero_stats(cols)
    for name, start, stop in slices:
        block = v[start:stop]  # a view: edits land in v
        raw_missing = np.isnan(block)
        with np.errstate(invalid="ignore"):
            bad = (block < lo) | (block > hi)
        block[bad] = np.nan
        flags = np.zeros((stop - start, len(spike_idx)), dtype=bool)
        if rule is not None:
            sub = block[:, spike_idx]
            flags = _spikes(sub, rule)
            spike_vals[start:stop][flags] = sub[flags]
            sub[flags] = np.nan
            block[:, spike_idx] = sub
        pre_fill_missing = np.isnan(block)
        filled = _interpolate(block, limit, circular, rounded)
        interp[start:stop] = filled
        after_missing = np.isnan(block)
        masks = (raw_missing, bad, flags, pre_fill_missing, filled, after_missing)
        _add_stats(stats, name, masks, spike_columns)
        if months is None:
            continue
        labels = months[start:stop]
        cuts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(labels)], strict=True):
            key = f"{labels[a]}|{name}"
            month_stats = stats.by_month.setdefault(key, _zero_stats(cols))
            _add_stats(month_stats, name, tuple(m[a:b] for m in masks), spike_columns)  # type: ignore[arg-type]
    return interp, spike_vals, stats


def _sorted_grid_input(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in OBSERVATION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}; build it with merge_hourly")
    return frame


def clean_observations(
    frame: pd.DataFrame,
    interpolation_limit_hours: int = 3,
    outlier_rule: OutlierRule | None = DEFAULT_OUTLIER_RULE,
    *,
    audit_columns: bool = True,
    by_month: bool = False,
) -> tuple[pd.DataFrame, CleaningStats]:
    """Apply bounds, spike and gap rules to a :func:`merge_hourly` grid.

    Returns ``(cleaned, stats)``: ``cleaned`` has :data:`OBSERVATION_COLUMNS` (same dtypes as
    the input grid), followed, with ``audit_columns``, by ``<col>_interpolated`` for every
    value column and ``<col>_spike`` for the rule's columns. ``outlier_rule=None`` disables
    the spike rule (bounds always apply). The input must be sorted by location then time
    with every hour present (what ``merge_hourly`` returns); otherwise ``ValueError``.
    ``by_month`` also fills ``stats.by_month`` (per UTC month and location).
    """
    rule = outlier_rule
    frame = _sorted_grid_input(frame)
    t = time_ns(frame)
    codes, names = location_codes(frame)
    slices = _check_grid(t, codes, names)
    v = (
        np.column_stack(
            [frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in VALUE_COLUMNS]
        )
        if len(frame)
        else np.empty((0, len(VALUE_COLUMNS)))
    )
    # "YYYY-MM" of each row's UTC hour
    months = t.astype("datetime64[ns]").astype("datetime64[M]").astype(str) if by_month else None
    interp, spike_vals, stats = _clean_matrix(v, slices, interpolation_limit_hours, rule, months)
    out = build_frame(codes, names, t, v, VALUE_COLUMNS)
    if audit_columns:
        extra: dict[str, np.ndarray] = {
            c + INTERPOLATED_SUFFIX: interp[:, j] for j, c in enumerate(VALUE_COLUMNS)
        }
        if rule is not None:
            for k, c in enumerate(rule.columns):
                extra[c + SPIKE_SUFFIX] = spike_vals[:, k]
        out = pd.concat([out, pd.DataFrame(extra, index=out.index)], axis=1)
    return out, stats


def influence_hours(
    interpolation_limit_hours: int, outlier_rule: OutlierRule | None = DEFAULT_OUTLIER_RULE
) -> int:
    """How far (hours) a raw value can change a cleaned value: spike window + gap reach + 1."""
    w = outlier_rule.half_window_hours if outlier_rule is not None else 0
    return w + max(interpolation_limit_hours, 0) + 2
