"""Score stored forecasts against what was observed, per horizon, over rolling windows.

A stored forecast row is ``(location, pollutant, issued_at, target_time, horizon, forecast,
last_observed, model_name, model_version, filled_inputs, computed_at)``: ``last_observed``
is the value at issue time, so persistence is scored on exactly the same (issue, target)
pairs as the model; ``filled_inputs`` names inputs taken from their last reading and
``computed_at`` is when it was computed; ``lower``/``upper`` bound the champion's
prediction interval (:mod:`airquality_assets.ml.intervals`; rows stored before these
columns existed, or by a model without a calibration, read them as missing).

A window is judged by the target hour: the "7 d" score of horizon h covers the targets of the
last 7 days. With one forecast issued per hour there are ``window_hours`` possible pairs per
horizon (N); fewer scored pairs than ``min_fraction`` x N gives "not enough data (n of N)"
instead of a number, so a short history never reads as a good or bad model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from airquality_assets import markdown
from airquality_assets.columns import LOCATION, TIME

FORECAST_COLUMNS: tuple[str, ...] = (
    LOCATION,
    "pollutant",
    "issued_at",
    "target_time",
    "horizon",
    "forecast",
    "last_observed",
    "model_name",
    "model_version",
    "filled_inputs",
    "computed_at",
    "lower",
    "upper",
)

#: Rolling windows scored, by name and length in hours.
WINDOWS: Mapping[str, int] = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}


def empty_forecasts() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in FORECAST_COLUMNS})
    for c in ("issued_at", "target_time", "computed_at"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    frame["horizon"] = frame["horizon"].astype("int64")
    for c in ("forecast", "last_observed", "lower", "upper"):
        frame[c] = frame[c].astype(float)
    return frame


def pair_with_actuals(forecasts: pd.DataFrame, observations: pd.DataFrame) -> pd.DataFrame:
    """Forecast rows with ``actual``: the observed value at (location, target hour)."""
    pollutants = sorted(set(forecasts["pollutant"]))
    missing = [p for p in pollutants if p not in observations.columns]
    if missing:
        raise ValueError(f"observations have no column for forecast pollutant(s) {missing}")
    actual = observations[[LOCATION, TIME, *pollutants]].melt(
        id_vars=[LOCATION, TIME], var_name="pollutant", value_name="actual"
    )
    actual = actual.rename(columns={TIME: "target_time"})
    return forecasts.merge(actual, on=[LOCATION, "pollutant", "target_time"], how="left")


def score(
    forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    now: datetime,
    windows: Mapping[str, int] = WINDOWS,
    min_fraction: float = 0.5,
) -> pd.DataFrame:
    """One row per (location, pollutant, horizon, window): n of N pairs, RMSE and MAE of the
    forecasts and of persistence, and ``status`` "ok" or "not enough data (n of N)".

    Only targets at or before ``now`` count (the future has no actuals yet).
    """
    now_ts = pd.Timestamp(now)
    rows: list[dict] = []
    paired = pair_with_actuals(forecasts, observations) if not forecasts.empty else forecasts
    groups = paired.groupby([LOCATION, "pollutant", "horizon"]) if not paired.empty else []
    for (location, pollutant, horizon), sel in groups:
        for name, hours in windows.items():
            start = now_ts - pd.Timedelta(hours=hours)
            w = sel[(sel["target_time"] > start) & (sel["target_time"] <= now_ts)]
            w = w[np.isfinite(w["actual"].astype(float)) & np.isfinite(w["forecast"])]
            w = w[np.isfinite(w["last_observed"].astype(float))]
            n, expected = len(w), hours
            row = {
                LOCATION: location,
                "pollutant": pollutant,
                "horizon": int(horizon),
                "window": name,
                "n": n,
                "expected": expected,
            }
            if n < max(1, int(np.ceil(min_fraction * expected))):
                row.update(
                    rmse=np.nan, mae=np.nan, persistence_rmse=np.nan, persistence_mae=np.nan,
                    status=f"not enough data ({n} of {expected})",
                )  # fmt: skip
            else:
                err = w["forecast"].to_numpy() - w["actual"].to_numpy(dtype=float)
                perr = w["last_observed"].to_numpy(dtype=float) - w["actual"].to_numpy(dtype=float)
                row.update(
                    rmse=float(np.sqrt(np.mean(err**2))),
                    mae=float(np.mean(np.abs(err))),
                    persistence_rmse=float(np.sqrt(np.mean(perr**2))),
                    persistence_mae=float(np.mean(np.abs(perr))),
                    status="ok",
                )
            rows.append(row)
    columns = [LOCATION, "pollutant", "horizon", "window", "n", "expected", "rmse", "mae",
               "persistence_rmse", "persistence_mae", "status"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def score_table_markdown(
    scores: pd.DataFrame, horizons: Sequence[int] = (1, 6, 12, 24), window: str | None = None
) -> str:
    """RMSE | MAE | persistence RMSE per shown horizon and window, as a Markdown table."""
    shown = scores[scores["horizon"].isin(list(horizons))]
    if window:
        shown = shown[shown["window"] == window]
    header = ["location", "pollutant", "window", "horizon", "n of N", "RMSE", "MAE",
              "persistence RMSE", "ratio"]  # fmt: skip
    return markdown.table(header, map(_score_row, shown.itertuples(index=False)))


def _score_row(r) -> list[object]:
    if r.status != "ok":
        figures = [r.status, "", "", ""]
    else:
        figures = [
            f"{r.rmse:.1f}",
            f"{r.mae:.1f}",
            f"{r.persistence_rmse:.1f}",
            f"{r.rmse / r.persistence_rmse:.3f}" if r.persistence_rmse else "",
        ]
    return [r.location, r.pollutant, r.window, r.horizon, f"{r.n} of {r.expected}", *figures]


def degradation(
    scores: pd.DataFrame,
    test_rmse: Mapping[int, float],
    factor: float,
    window: str = "7d",
    min_horizons: int = 1,
) -> tuple[bool, dict[int, float]]:
    """Whether the rolling RMSE exceeds ``factor`` x the champion's test RMSE at matched
    horizons (in at least ``min_horizons``); returns the ratios of the scored horizons."""
    rows = scores[(scores["window"] == window) & (scores["status"] == "ok")]
    ratios: dict[int, float] = {}
    for r in rows.itertuples(index=False):
        ref = test_rmse.get(int(r.horizon))
        if ref and ref > 0:
            ratios[int(r.horizon)] = float(r.rmse) / ref
    exceeded = sum(1 for v in ratios.values() if v > factor)
    return exceeded >= min_horizons and bool(ratios), ratios
