"""Drift of a recent window of observations against a seasonal training reference.

Air quality and weather are strongly seasonal: a reference mixing all seasons flags every
winter week. The reference is therefore *like with like*: the hours of the champion's
training period whose day of year lies within ``margin_days`` of the recent window's days
(every training year contributes its own weeks).

Statistics per feature (scipy for the two-sample tests, PSI in a few lines on top):

* **out of range**: the share of the window's hours outside the reference's central 99 %
  (0.5 %..99.5 % quantiles): the drift score that decides WARN / ERROR. A unit change or a
  broken sensor puts most hours outside; a normal week rarely more than a few percent.
  The newest day alone counts too: 80 % of its hours out of range is an ERROR at once.
* **stuck hours**: the longest run of one repeated value, which a distribution test misses
  when a sensor freezes inside the normal range (ERROR at 24 h on pm2_5 and temperature).
* **PSI** on the reference's deciles, **KS** statistic and p-value, and the **Wasserstein**
  distance in reference standard deviations, for reading. They do not decide: one week of
  hourly weather is a narrow, autocorrelated slice of its season, so they alarm on normal
  weeks (docs/results.md, "Drift detection benchmark", has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from airquality_assets import markdown
from airquality_assets.columns import TIME

#: Features watched by default: the target and the weather the model sees.
DEFAULT_FEATURES: tuple[str, ...] = ("pm2_5", "temp", "dew", "humidity", "pressure", "windspeed")

OK, WARN, ERROR, NOT_ENOUGH_DATA = "ok", "warn", "error", "not_enough_data"
STATUS_CODE = {OK: 0, WARN: 1, ERROR: 2, NOT_ENOUGH_DATA: -1}


@dataclass(frozen=True)
class DriftThresholds:
    """When a window's drift is worth a warning or an error (measured, see docs/results.md)."""

    out_of_range_warn: float = 0.25
    out_of_range_error: float = 0.5
    range_quantile: float = 0.005
    """The reference range is its [q, 1 - q] quantiles."""
    recent_hours: int = 24
    recent_out_of_range_error: float = 0.8
    """Most of the newest ``recent_hours`` out of range is an error at once (a unit change
    shows in a day, long before it fills half of the window)."""
    stuck_error_hours: int = 24
    """A continuous reading repeated this many hours in a row is an error (frozen sensor)."""
    stuck_features: tuple[str, ...] = ("pm2_5", "temp")
    """Features whose readings vary hour to hour (integer pressure/dew repeat naturally)."""
    min_window_fraction: float = 0.5
    """Fewer observed hours than this share of the window: not enough data."""
    min_reference_rows: int = 336


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index on the reference's quantile bins.

    ``sum((c - r) * ln(c / r))`` over bins, with empty bins floored at ``eps`` so that a value
    range the reference never saw still counts (instead of dividing by zero).
    """
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("psi needs non-empty reference and current samples")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1
    )
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    r = np.maximum(ref_share / len(reference), eps)
    c = np.maximum(cur_share / len(current), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def longest_run(values: np.ndarray) -> int:
    """Length of the longest run of one repeated finite value (0 for no finite values)."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        return 0
    same = np.isfinite(values[1:]) & (values[1:] == values[:-1])
    # Lengths of the runs of True in ``same``: a run of k equal steps is k + 1 equal values.
    edges = np.diff(np.r_[0, same.astype(np.int8), 0])
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int(lengths.max() + 1) if len(lengths) else 1


def _circular_day_distance(days: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each day of year in ``days``, the distance in days to the nearest of ``targets``."""
    diff = np.abs(days[:, None] - targets[None, :])
    return np.minimum(diff, 366 - diff).min(axis=1)


def seasonal_reference(
    history: pd.DataFrame,
    window_start: datetime,
    window_end: datetime,
    train_start: datetime | None,
    train_end: datetime,
    margin_days: int = 14,
) -> pd.DataFrame:
    """Rows of the training period (``train_start`` <= time < ``train_end``) whose day of year
    is within ``margin_days`` of a day of the window [``window_start``, ``window_end``)."""
    times = pd.DatetimeIndex(history[TIME])
    in_train = times < pd.Timestamp(train_end)
    if train_start is not None:
        in_train &= times >= pd.Timestamp(train_start)
    window_days = pd.date_range(
        pd.Timestamp(window_start).normalize(), pd.Timestamp(window_end), freq="D", inclusive="left"
    ).dayofyear.to_numpy()
    if len(window_days) == 0:
        raise ValueError(f"empty drift window {window_start}..{window_end}")
    near = _circular_day_distance(times.dayofyear.to_numpy(), np.unique(window_days))
    return history.loc[in_train & (near <= margin_days)]


@dataclass
class FeatureDrift:
    feature: str
    out_of_range: float
    recent_out_of_range: float
    psi: float
    ks_statistic: float
    ks_pvalue: float
    wasserstein_sd: float
    stuck_hours: int
    current_mean: float
    reference_mean: float
    status: str
    decided_by: str = ""
    """The rule behind ``status`` (e.g. ``stuck 48 h >= 24 h``); empty when ok."""


@dataclass
class DriftResult:
    status: str
    score: float
    """The largest feature out-of-range share, 0..1 (NaN when there is not enough data)."""
    window_hours: int
    observed_hours: int
    reference_rows: int
    features: list[FeatureDrift] = field(default_factory=list)
    reason: str = ""

    def table_markdown(self) -> str:
        """Two narrow tables: what decides the status (with the rule that fired), then the
        statistics shown for reading only, labelled so: a PSI of 1.5 beside "ok" is then no
        contradiction (one week of weather is a narrow slice of its season)."""
        if not self.features:
            return f"_{self.reason}_"
        decides = markdown.table(
            [
                "feature",
                "status",
                "decided by",
                "out of range",
                "last 24 h",
                "stuck h",
                "mean (ref)",
            ],
            (
                [
                    f.feature,
                    f.status,
                    f.decided_by or "-",
                    f"{f.out_of_range:.0%}",
                    f"{f.recent_out_of_range:.0%}",
                    f.stuck_hours,
                    f"{f.current_mean:.1f} ({f.reference_mean:.1f})",
                ]
                for f in self.features
            ),
        )
        reading = markdown.table(
            ["feature", "PSI", "KS", "KS p", "Wasserstein (sd)"],
            (
                [
                    f.feature,
                    f"{f.psi:.2f}",
                    f"{f.ks_statistic:.2f}",
                    f"{f.ks_pvalue:.1g}",
                    f"{f.wasserstein_sd:.2f}",
                ]
                for f in self.features
            ),
        )
        return f"{decides}\n\n**For reading only** (these do not decide the status):\n\n{reading}"


def out_of_range_share(reference: np.ndarray, current: np.ndarray, q: float) -> float:
    """Share of finite ``current`` values outside the reference's [q, 1 - q] quantiles."""
    lo, hi = np.quantile(reference, [q, 1 - q])
    return float(np.mean((current < lo) | (current > hi)))


def _feature_status(
    share: float, recent: float, stuck: int, feature: str, t: DriftThresholds
) -> str:
    return _decision(share, recent, stuck, feature, t)[0]


def _decision(
    share: float, recent: float, stuck: int, feature: str, t: DriftThresholds
) -> tuple[str, str]:
    """The feature's status and the rules that set it (empty when ok)."""
    fired = []
    if share >= t.out_of_range_error:
        fired.append(f"out of range {share:.0%} >= {t.out_of_range_error:.0%}")
    if recent >= t.recent_out_of_range_error:
        fired.append(
            f"last {t.recent_hours} h out of range {recent:.0%} >= "
            f"{t.recent_out_of_range_error:.0%}"
        )
    if feature in t.stuck_features and stuck >= t.stuck_error_hours:
        fired.append(f"stuck {stuck} h >= {t.stuck_error_hours} h")
    if fired:
        return ERROR, "; ".join(fired)
    if share >= t.out_of_range_warn:
        return WARN, f"out of range {share:.0%} >= {t.out_of_range_warn:.0%}"
    return OK, ""


def compare(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    window_hours: int,
    features: Sequence[str] = DEFAULT_FEATURES,
    thresholds: DriftThresholds | None = None,
) -> DriftResult:
    """Per-feature drift of ``current`` (the recent window) against ``reference``.

    A window with too few observed hours, or a reference too small, gives a
    ``not_enough_data`` result naming n of N: never a crash and never a false alarm.
    """
    t = thresholds or DriftThresholds()
    features = [f for f in features if f in current.columns and f in reference.columns]
    if not features:
        raise ValueError("none of the drift features are columns of both frames")
    observed = int(current[list(features)].notna().any(axis=1).sum())
    needed = int(np.ceil(t.min_window_fraction * window_hours))
    if observed < needed:
        return DriftResult(
            NOT_ENOUGH_DATA, float("nan"), window_hours, observed, len(reference),
            reason=f"not enough data: {observed} of {window_hours} hours observed "
            f"(need {needed})",
        )  # fmt: skip
    if len(reference) < t.min_reference_rows:
        return DriftResult(
            NOT_ENOUGH_DATA, float("nan"), window_hours, observed, len(reference),
            reason=f"not enough reference: {len(reference)} of {t.min_reference_rows} "
            "seasonal training hours",
        )  # fmt: skip
    rows: list[FeatureDrift] = []
    for feature in features:
        cur = current[feature].to_numpy(dtype=float)
        ref = reference[feature].to_numpy(dtype=float)
        cur_f, ref_f = cur[np.isfinite(cur)], ref[np.isfinite(ref)]
        if len(cur_f) < needed or len(ref_f) < t.min_reference_rows:
            continue
        p = psi(ref_f, cur_f)
        ks = stats.ks_2samp(ref_f, cur_f)
        sd = float(np.std(ref_f)) or 1.0
        stuck = longest_run(cur)
        share = out_of_range_share(ref_f, cur_f, t.range_quantile)
        tail = cur[-t.recent_hours :]
        tail = tail[np.isfinite(tail)]
        recent = out_of_range_share(ref_f, tail, t.range_quantile) if len(tail) else 0.0
        rows.append(
            FeatureDrift(
                feature=feature,
                out_of_range=share,
                recent_out_of_range=recent,
                psi=p,
                ks_statistic=float(ks.statistic),
                ks_pvalue=float(ks.pvalue),
                wasserstein_sd=float(stats.wasserstein_distance(ref_f, cur_f)) / sd,
                stuck_hours=stuck,
                current_mean=float(cur_f.mean()),
                reference_mean=float(ref_f.mean()),
                status=_feature_status(share, recent, stuck, feature, t),
                decided_by=_decision(share, recent, stuck, feature, t)[1],
            )
        )
    if not rows:
        return DriftResult(
            NOT_ENOUGH_DATA, float("nan"), window_hours, observed, len(reference),
            reason="not enough data: no feature has enough observed hours",
        )  # fmt: skip
    order = {NOT_ENOUGH_DATA: -1, OK: 0, WARN: 1, ERROR: 2}
    worst = max(rows, key=lambda f: (order[f.status], f.out_of_range))
    status = worst.status
    flagged = [f.feature for f in rows if f.status == status and status != OK]
    reason = (
        f"{status}: " + ", ".join(
            f"{f.feature} {f.out_of_range:.0%} out of range ({f.recent_out_of_range:.0%} of the "
            f"last {t.recent_hours} h)"
            + (f", stuck {f.stuck_hours} h" if f.stuck_hours >= t.stuck_error_hours else "")
            for f in rows if f.feature in flagged
        )
        if flagged
        else f"ok: at most {worst.out_of_range:.0%} out of range ({worst.feature})"
    )  # fmt: skip
    return DriftResult(
        status=status,
        score=max(f.out_of_range for f in rows),
        window_hours=window_hours,
        observed_hours=observed,
        reference_rows=len(reference),
        features=rows,
        reason=reason,
    )
