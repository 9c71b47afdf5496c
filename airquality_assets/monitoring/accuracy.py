"""Is the champion's forecasting still good? The verdict of the ``accuracy_within_limits`` check.

Degraded accuracy used to be a number in ``forecast_accuracy``'s metadata (a 7-day RMSE of
150-161 against 44 before went unreported for six days), and "not enough data" read as
nothing to say while forecasting had stopped. The verdict, on the last 7 days:

* **degraded** (ERROR): the 7-day RMSE above ``factor`` x the champion's own test RMSE at a
  matched horizon (for a version the gate judged, its RMSE on the gate's clean windows:
  ``ChampionRecord.test_rmse_by_horizon``; the lowest of it and that of every other version
  whose forecasts are scored in the week: :mod:`airquality_assets.monitoring.reference`, so
  a promotion does not "resolve" the old champion's degraded week): the retraining sensor's
  accuracy trigger, the same condition;
* **worse than persistence** (WARN): the champion's squared error over the issues of the
  week significantly above persistence's on the same (issue, target) pairs
  (Diebold-Mariano, one-sided p < ``alpha``; 0.01, as the check runs every day and a
  5 % test would cry wolf every few weeks on normal data);
* **cannot judge** (WARN): too few scored pairs although the loop has been forecasting for
  longer than the window: forecasts stopped or actuals are missing, a blind spot to
  report, not a pass;
* **warming up**: too few pairs because forecasting started less than a window ago. It
  passes but is *inconclusive*: it never resolves an open alert episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION
from airquality_assets.ml.significance import DMResult, diebold_mariano, format_p
from airquality_assets.monitoring.scoring import WINDOWS, degradation, pair_with_actuals

OK, DEGRADED, WORSE, CANNOT_JUDGE, WARMING_UP = (
    "ok",
    "degraded",
    "worse than persistence",
    "cannot judge",
    "warming up",
)
ALPHA = 0.01


@dataclass(frozen=True)
class AccuracyVerdict:
    status: str
    passed: bool
    severity: str  # "ERROR" or "WARN" (meaningful when not passed)
    description: str
    ratios: dict[int, float] = field(default_factory=dict)
    versus_persistence: DMResult | None = None
    inconclusive: bool = False
    """Passed for lack of evidence: must not resolve an open alert episode."""


def versus_persistence(
    forecasts: pd.DataFrame, observations: pd.DataFrame, now: datetime, hours: int
) -> DMResult | None:
    """The champion (a) against persistence (b): per issue (location, hour) whose every
    target lies in the last ``hours``, the squared error averaged over its horizons and
    pollutants; None without a complete issue."""
    if forecasts.empty:
        return None
    end = pd.Timestamp(now)
    paired = pair_with_actuals(forecasts, observations)
    paired = paired[(paired["target_time"] > end - pd.Timedelta(hours=hours))]
    paired = paired[paired["target_time"] <= end]
    actual = paired["actual"].astype(float)
    paired = paired.assign(
        model=(paired["forecast"] - actual) ** 2,
        persistence=(paired["last_observed"].astype(float) - actual) ** 2,
    )
    paired = paired.dropna(subset=["model", "persistence"])
    expected = forecasts["horizon"].nunique() * forecasts["pollutant"].nunique()
    grouped = paired.groupby([LOCATION, "issued_at"])
    per_issue = grouped[["model", "persistence"]].mean()[grouped.size() == expected]
    if per_issue.empty:
        return None
    times = pd.DatetimeIndex(per_issue.index.get_level_values("issued_at")).asi8 // 10**9
    return diebold_mariano(
        per_issue["model"].to_numpy(),
        per_issue["persistence"].to_numpy(),
        times,
        int(forecasts["horizon"].max()),
    )


def accuracy_verdict(
    scores: pd.DataFrame,
    forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    now: datetime,
    test_rmse: Mapping[int, float],
    factor: float,
    window: str = "7d",
    alpha: float = ALPHA,
) -> AccuracyVerdict:
    """The check's verdict from :func:`~airquality_assets.monitoring.scoring.score`'s table,
    the stored forecasts (the last month) and the observations up to ``now``."""
    hours = WINDOWS[window]
    rows = scores[(scores["window"] == window) & (scores["status"] == "ok")]
    if rows.empty:
        first = pd.to_datetime(forecasts["issued_at"], utc=True).min() if len(forecasts) else None
        running = first is not None and first <= pd.Timestamp(now) - pd.Timedelta(hours=hours)
        week = scores[scores["window"] == window]
        shown = "; ".join(sorted(set(week["status"]))) or "no forecast stored"
        if running:
            return AccuracyVerdict(
                CANNOT_JUDGE, False, "WARN",
                f"cannot judge the {window} accuracy ({shown}) although forecasts have been "
                f"issued since {first:%Y-%m-%d %H:%M}: forecasts stopped or actuals missing",
            )  # fmt: skip
        return AccuracyVerdict(WARMING_UP, True, "WARN", f"warming up: {shown}", inconclusive=True)
    exceeded, ratios = degradation(scores, test_rmse, factor=factor, window=window)
    dm = versus_persistence(forecasts, observations, now, hours)
    problems: list[str] = []
    if exceeded:
        horizon, worst = max(ratios.items(), key=lambda kv: kv[1])
        problems.append(
            f"degraded: {window} RMSE {rows['rmse'].mean():.1f} ug/m3, {worst:.2f}x the "
            f"champion's test RMSE at h{horizon} (limit {factor:g}x)"
        )
    worse = dm is not None and np.isfinite(dm.p_a_worse) and dm.p_a_worse < alpha
    if worse:
        problems.append(
            f"worse than persistence: {window} RMSE {rows['rmse'].mean():.1f} vs "
            f"{rows['persistence_rmse'].mean():.1f} ug/m3 (p {format_p(dm.p_a_worse)})"  # type: ignore[union-attr]
        )
    if not problems:
        versus = f"; vs persistence p(worse) {format_p(dm.p_a_worse)}" if dm else ""
        return AccuracyVerdict(
            OK, True, "WARN",
            f"{window} RMSE {rows['rmse'].mean():.1f} ug/m3 (persistence "
            f"{rows['persistence_rmse'].mean():.1f}); at most "
            f"{max(ratios.values(), default=float('nan')):.2f}x the test RMSE{versus}",
            ratios, dm,
        )  # fmt: skip
    return AccuracyVerdict(
        DEGRADED if exceeded else WORSE, False, "ERROR" if exceeded else "WARN",
        "; ".join(problems), ratios, dm,
    )  # fmt: skip


def interval_coverage(
    forecasts: pd.DataFrame, observations: pd.DataFrame, now: datetime, hours: int
) -> pd.DataFrame:
    """Per (pollutant, horizon): how many scored targets of the last ``hours`` fell inside
    their stored prediction interval (``n``, ``covered``, ``coverage``). Forecasts without
    an interval (an older champion) are left out rather than counted as misses."""
    columns = ["pollutant", "horizon", "n", "covered", "coverage"]
    if forecasts.empty or "lower" not in forecasts.columns:
        return pd.DataFrame(columns=columns)
    end = pd.Timestamp(now)
    paired = pair_with_actuals(forecasts, observations)
    paired = paired[(paired["target_time"] > end - pd.Timedelta(hours=hours))]
    paired = paired[paired["target_time"] <= end]
    paired = paired.dropna(subset=["actual", "lower", "upper"])
    if paired.empty:
        return pd.DataFrame(columns=columns)
    actual = paired["actual"].astype(float)
    paired = paired.assign(
        inside=(actual >= paired["lower"].astype(float)) & (actual <= paired["upper"].astype(float))
    )
    grouped = paired.groupby(["pollutant", "horizon"])["inside"]
    out = pd.DataFrame({"n": grouped.size(), "covered": grouped.sum()}).reset_index()
    out["coverage"] = out["covered"] / out["n"]
    return out[columns].sort_values(["pollutant", "horizon"]).reset_index(drop=True)
