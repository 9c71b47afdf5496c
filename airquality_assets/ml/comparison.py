"""The model against every baseline, per horizon: RMSE, the ratio, and how sure we are.

A lower RMSE on a test window is a point estimate; on a month of hourly windows two models
within 1 % of each other cannot be told apart. Each (baseline, pollutant, horizon) therefore
carries a Diebold-Mariano test on squared errors (:mod:`airquality_assets.ml.significance`:
HAC variance, Harvey-Leybourne-Newbold correction), and so does the mean over all horizons.
"Significantly better" means the two-sided p-value is below :data:`ALPHA` and the model has
the lower mean squared error (:func:`~airquality_assets.ml.significance.verdict`).

What is built from it, all pure (no Dagster, no MLflow):

* :func:`compare`: the long tables (per horizon, and on the mean over horizons);
* :func:`significance_markdown`: a few horizons and the mean, RMSE ratio and p-value per
  cell, for the evaluation's metadata and the MLflow run;
* :func:`shortfalls`: the sentences of the WARN check ("not significantly better than
  LightGBM at 1-5 h"), horizons grouped into ranges;
* :func:`significance_metrics`: MLflow metric triples (``dm_p_vs_<baseline>``, step = horizon).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airquality_assets import markdown
from airquality_assets.ml.evaluation import REPORT_HORIZONS, forecast_metrics
from airquality_assets.ml.significance import (
    ALPHA,
    dm_by_horizon,
    dm_on_mean,
    format_p,
    horizon_ranges,
    verdict,
)

__all__ = [
    "COMPARISON_COLUMNS",
    "Comparison",
    "compare",
    "shortfalls",
    "significance_markdown",
    "significance_metrics",
]

COMPARISON_COLUMNS: tuple[str, ...] = (
    "baseline",
    "pollutant",
    "horizon",
    "n",
    "rmse",
    "rmse_baseline",
    "ratio",
    "mean_difference",
    "statistic",
    "p_value",
    "verdict",
    "reason",
)


@dataclass(frozen=True)
class Comparison:
    """``by_horizon``: one row per (baseline, pollutant, horizon); ``on_mean``: one row per
    (baseline, pollutant) for the mean over horizons (``horizon`` is the largest, whose HAC
    lag the test used). ``rmse`` is the model's, ``ratio`` = ``rmse / rmse_baseline``."""

    model: str
    by_horizon: pd.DataFrame
    on_mean: pd.DataFrame

    @property
    def baselines(self) -> list[str]:
        return list(dict.fromkeys(self.by_horizon["baseline"]))

    def records(self) -> list[dict[str, object]]:
        """Both tables as JSON-friendly records (``scope`` = ``horizon`` or ``mean``)."""
        frames = [self.by_horizon.assign(scope="horizon"), self.on_mean.assign(scope="mean")]
        table = pd.concat(frames, ignore_index=True)
        return [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in table.to_dict(orient="records")
        ]


def compare(
    y_true: np.ndarray,
    forecast: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    times: np.ndarray,
    target_names: Sequence[str],
    horizons: Sequence[int],
    model: str = "lstm",
) -> Comparison:
    """``forecast`` against each of ``baselines`` on the same windows.

    Arrays are ``(n, horizons, targets)`` in real units; ``times`` holds each window's end
    (epoch seconds), which orders the loss series for the HAC variance.
    """
    keys = ["pollutant", "horizon"]
    ours = forecast_metrics(y_true, forecast, target_names, horizons)
    ours_mean = ours.groupby("pollutant", sort=False)["rmse"].mean()
    per_horizon: list[pd.DataFrame] = []
    on_mean: list[dict[str, object]] = []
    for name, other in baselines.items():
        theirs = forecast_metrics(y_true, other, target_names, horizons)
        dm = dm_by_horizon(y_true, forecast, other, times, target_names, horizons)
        dm = dm.merge(ours[[*keys, "rmse"]], on=keys, how="left", validate="one_to_one")
        dm = dm.merge(
            theirs[[*keys, "rmse"]].rename(columns={"rmse": "rmse_baseline"}),
            on=keys,
            how="left",
            validate="one_to_one",
        )
        dm["baseline"] = name
        per_horizon.append(dm)
        theirs_mean = theirs.groupby("pollutant", sort=False)["rmse"].mean()
        for pollutant, result in dm_on_mean(
            y_true, forecast, other, times, target_names, horizons
        ).items():
            row = result.as_dict()
            on_mean.append(
                {
                    **row,
                    "baseline": name,
                    "pollutant": pollutant,
                    "rmse": float(ours_mean[pollutant]),
                    "rmse_baseline": float(theirs_mean[pollutant]),
                }
            )
    return Comparison(
        model=model,
        by_horizon=_finish(pd.concat(per_horizon, ignore_index=True) if per_horizon else None),
        on_mean=_finish(pd.DataFrame(on_mean) if on_mean else None),
    )


def _finish(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["ratio"] = frame["rmse"] / frame["rmse_baseline"]
    frame["verdict"] = [verdict(row) for _, row in frame.iterrows()]
    frame["horizon"] = frame["horizon"].astype(np.int64)
    frame["n"] = frame["n"].astype(np.int64)
    return frame[list(COMPARISON_COLUMNS)].reset_index(drop=True)


def _cell(ratio: float, p: float, result: str) -> str:
    mark = {"better": " ✓", "worse": " ✗"}.get(result, "")
    return f"{ratio:.3f} (p {format_p(p)}){mark}"


def significance_markdown(
    comparison: Comparison,
    horizons: Sequence[int] = REPORT_HORIZONS,
    labels: Mapping[str, str] | None = None,
) -> str:
    """One row per baseline and pollutant: at a few horizons and on the mean, the model's
    RMSE as a ratio of the baseline's and the Diebold-Mariano p-value (two-sided);
    ✓ significantly better, ✗ significantly worse (at :data:`ALPHA`)."""
    labels = labels or {}
    by_horizon = comparison.by_horizon
    if by_horizon.empty:
        return "_no baselines to compare_"
    shown = [h for h in horizons if h in set(by_horizon["horizon"].tolist())]
    header = ["baseline", "pollutant", *[f"h{h}" for h in shown], "mean over horizons"]
    cells = by_horizon.set_index(["baseline", "pollutant", "horizon"])
    means = comparison.on_mean.set_index(["baseline", "pollutant"])
    rows = []
    for (name, pollutant), _ in by_horizon.groupby(["baseline", "pollutant"], sort=False):
        row = [labels.get(name, name), pollutant]
        for h in shown:
            c = cells.loc[(name, pollutant, h)]
            row.append(_cell(c["ratio"], c["p_value"], c["verdict"]))
        m = means.loc[(name, pollutant)]
        row.append(_cell(m["ratio"], m["p_value"], m["verdict"]))
        rows.append(row)
    note = (
        f"\n\nCells: {comparison.model} RMSE / baseline RMSE (Diebold-Mariano p, squared "
        f"error, HAC); ✓ significantly better, ✗ significantly worse at {ALPHA:.0%}."
    )
    return markdown.table(header, rows, right_aligned=range(2, len(header))) + note


def shortfalls(
    comparison: Comparison,
    baselines: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Where the model is not significantly better than each of ``baselines`` (all when
    None), as sentences: ``not significantly better than LightGBM at 1-5 h`` and, when it
    applies, ``significantly worse than LightGBM at 20-24 h``. Prefixed with the pollutant
    when there are several. Empty: significantly better everywhere."""
    labels = labels or {}
    frame = comparison.by_horizon
    names = [b for b in (baselines or comparison.baselines) if b in set(frame["baseline"])]
    several = frame["pollutant"].nunique() > 1
    sentences: list[str] = []
    for pollutant in dict.fromkeys(frame["pollutant"]):
        prefix = f"{pollutant}: " if several else ""
        for name in names:
            rows = frame[(frame["baseline"] == name) & (frame["pollutant"] == pollutant)]
            label = labels.get(name, name)
            short = rows.loc[rows["verdict"] != "better", "horizon"]
            worse = rows.loc[rows["verdict"] == "worse", "horizon"]
            if not short.empty:
                sentences.append(
                    f"{prefix}not significantly better than {label} at {horizon_ranges(short)}"
                )
            if not worse.empty:
                sentences.append(
                    f"{prefix}significantly worse than {label} at {horizon_ranges(worse)}"
                )
    return sentences


def significance_metrics(comparison: Comparison) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for MLflow: ``dm_p_vs_<baseline>[_<pollutant>]`` per horizon
    (step = horizon) and ``dm_p_mean_vs_<baseline>[_<pollutant>]`` (step 0); untestable
    cells are left out (MLflow stores no NaN usefully)."""
    several = comparison.by_horizon["pollutant"].nunique() > 1
    triples: list[tuple[str, float, int]] = []

    def key(stem: str, name: str, pollutant: str) -> str:
        return f"{stem}_{name}_{pollutant}" if several else f"{stem}_{name}"

    for row in comparison.by_horizon.itertuples(index=False):
        if math.isfinite(row.p_value):
            triples.append(
                (key("dm_p_vs", row.baseline, row.pollutant), float(row.p_value), int(row.horizon))
            )
    for row in comparison.on_mean.itertuples(index=False):
        if math.isfinite(row.p_value):
            triples.append(
                (key("dm_p_mean_vs", row.baseline, row.pollutant), float(row.p_value), 0)
            )
    return triples
