"""Prediction intervals by split conformal on the validation residuals of the served forward.

A forecast without a statement of how sure it is reads as certain. At training time the
validation windows (never fitted on) give, per pollutant and horizon, the residuals
``actual - forecast`` of the forward the package serves; their empirical quantiles at
``(1 - level) / 2`` and ``(1 + level) / 2`` (with the finite-sample correction of split
conformal) are the offsets added to a point forecast. Asymmetric on purpose: pollution
residuals are skewed (a forecast misses peaks upward more than it overshoots).

It depends only on forecasts and actuals, never on how the point forecast is made (an
LSTM, an ensemble): whatever forward is served, its validation residuals are the input.
The offsets live in the package metadata (``extra["intervals"]``), so the service and the
operating loop use exactly the calibration the model shipped with. Lower bounds are clipped
at 0 ug/m3 (a concentration is never negative).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The nominal coverage of the interval unless ``AIRQUALITY_INTERVAL_LEVEL`` says otherwise.
DEFAULT_LEVEL = 0.8
#: The key under ``ModelMetadata.extra``.
METADATA_KEY = "intervals"


@dataclass(frozen=True)
class Intervals:
    """Per (pollutant, horizon) offsets ``lower <= 0 <= upper`` (usually) to add to a point
    forecast for a ``level`` interval; ``n`` validation residuals per cell."""

    level: float
    pollutants: list[str]
    horizons: list[int]
    lower: list[list[float]]  # [pollutant][horizon index]
    upper: list[list[float]]
    n: int
    method: str = "split conformal, per horizon, validation residuals"

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "pollutants": list(self.pollutants),
            "horizons": [int(h) for h in self.horizons],
            "lower": [[round(v, 4) for v in row] for row in self.lower],
            "upper": [[round(v, 4) for v in row] for row in self.upper],
            "n": int(self.n),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intervals:
        return cls(
            level=float(data["level"]),
            pollutants=[str(p) for p in data["pollutants"]],
            horizons=[int(h) for h in data["horizons"]],
            lower=[[float(v) for v in row] for row in data["lower"]],
            upper=[[float(v) for v in row] for row in data["upper"]],
            n=int(data["n"]),
            method=str(data.get("method", cls.method)),
        )

    def bounds(
        self, forecast: np.ndarray, pollutants: Sequence[str], horizons: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` for a forecast ``(n, horizons, pollutants)`` in the order given
        (NaN where this calibration has no such pollutant or horizon)."""
        forecast = np.asarray(forecast, dtype=np.float64)
        low = np.full(forecast.shape[1:], np.nan)
        high = np.full(forecast.shape[1:], np.nan)
        for j, pollutant in enumerate(pollutants):
            if pollutant not in self.pollutants:
                continue
            p = self.pollutants.index(pollutant)
            for i, h in enumerate(horizons):
                if int(h) in self.horizons:
                    k = self.horizons.index(int(h))
                    low[i, j], high[i, j] = self.lower[p][k], self.upper[p][k]
        return np.maximum(forecast + low, 0.0), np.maximum(forecast + high, 0.0)


def conformal_quantile(residuals: np.ndarray, q: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) q)``-th smallest of n residuals
    (the upper one); the lower tail mirrored (``floor((n + 1) q)``-th). NaN without data."""
    r = np.sort(residuals[np.isfinite(residuals)])
    n = len(r)
    if n == 0:
        return math.nan
    k = min(math.ceil((n + 1) * q), n) if q >= 0.5 else max(math.floor((n + 1) * q), 1)
    return float(r[k - 1])


def conformal_intervals(
    actual: np.ndarray,
    forecast: np.ndarray,
    pollutants: Sequence[str],
    horizons: Sequence[int],
    level: float = DEFAULT_LEVEL,
) -> Intervals:
    """The calibration from validation ``actual`` and ``forecast`` ``(n, horizons,
    pollutants)`` in ug/m3 (windows with a missing actual are left out per cell)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    residuals = np.asarray(actual, dtype=np.float64) - np.asarray(forecast, dtype=np.float64)
    alpha = 1.0 - level
    lower = [
        [conformal_quantile(residuals[:, i, j], alpha / 2) for i in range(len(horizons))]
        for j in range(len(pollutants))
    ]
    upper = [
        [conformal_quantile(residuals[:, i, j], 1 - alpha / 2) for i in range(len(horizons))]
        for j in range(len(pollutants))
    ]
    return Intervals(
        level, list(pollutants), [int(h) for h in horizons], lower, upper, len(residuals)
    )


def intervals_of(extra: Mapping[str, Any]) -> Intervals | None:
    """The calibration stored in a package's ``extra`` metadata, or None (a package trained
    before intervals existed: its forecasts carry none, never a made-up one)."""
    data = extra.get(METADATA_KEY)
    return Intervals.from_dict(data) if data else None


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Share of finite actuals inside ``[lower, upper]`` along the first axis (per
    horizon/pollutant cell); NaN where nothing can be judged."""
    actual, lower, upper = (np.asarray(a, dtype=np.float64) for a in (actual, lower, upper))
    known = np.isfinite(actual) & np.isfinite(lower) & np.isfinite(upper)
    inside = known & (actual >= lower) & (actual <= upper)
    counts = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, inside.sum(axis=0) / np.maximum(counts, 1), np.nan)
