"""Forecast metrics, baseline comparison and report artefacts for asset metadata / MLflow.

Metrics are long format (one row per pollutant x horizon) so models, horizons and pollutants
can be compared, filtered and logged uniformly. Pairs where truth or prediction is NaN are
skipped per cell (``n`` says how many counted), so a baseline that cannot forecast some
windows does not poison the whole table; compare models on the same windows regardless.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from airquality_assets import markdown

__all__ = [
    "METRIC_COLUMNS",
    "REPORT_HORIZONS",
    "forecast_metrics",
    "losing_horizons",
    "markdown_table",
    "predicted_vs_actual_plot",
    "rmse_by_horizon_plot",
]

METRIC_COLUMNS: tuple[str, ...] = ("pollutant", "horizon", "n", "mse", "mae", "rmse", "r2")
REPORT_HORIZONS: tuple[int, ...] = (1, 3, 6, 12, 24)


def forecast_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    target_names: Sequence[str],
    horizons: Sequence[int],
) -> pd.DataFrame:
    """MSE, MAE, RMSE and R² per (pollutant, horizon) for ``(n, horizons, targets)`` arrays.

    R² is ``1 - SSE / SST`` with SST around the mean of the truth in that cell (NaN when
    the truth is constant), the same definition as ``sklearn.metrics.r2_score``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    expected = (len(horizons), len(target_names))
    if y_true.shape != y_pred.shape or y_true.ndim != 3 or y_true.shape[1:] != expected:
        raise ValueError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must both be "
            f"(n, {expected[0]} horizons, {expected[1]} targets)"
        )
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    n = ok.sum(axis=0)
    err = np.where(ok, y_pred - y_true, 0.0)
    truth = np.where(ok, y_true, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = (err**2).sum(axis=0) / n
        mae = np.abs(err).sum(axis=0) / n
        mean_truth = truth.sum(axis=0) / n
        sst = (np.where(ok, y_true - mean_truth, 0.0) ** 2).sum(axis=0)
        r2 = np.where(sst > 0, 1.0 - (err**2).sum(axis=0) / np.where(sst > 0, sst, 1.0), np.nan)
    h_index, t_index = np.meshgrid(np.arange(len(horizons)), np.arange(len(target_names)))
    h_index, t_index = h_index.ravel(), t_index.ravel()  # pollutant-major order
    return pd.DataFrame(
        {
            "pollutant": np.asarray(target_names, dtype=object)[t_index],
            "horizon": np.asarray(horizons, dtype=np.int64)[h_index],
            "n": n[h_index, t_index].astype(np.int64),
            "mse": mse[h_index, t_index],
            "mae": mae[h_index, t_index],
            "rmse": np.sqrt(mse[h_index, t_index]),
            "r2": r2[h_index, t_index],
        },
        columns=list(METRIC_COLUMNS),
    )


def losing_horizons(model: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, list[int]]:
    """Per pollutant, the horizons where ``model``'s RMSE is not strictly below ``baseline``'s.

    An average can hide a horizon where the model is worse than a naive forecast (typically
    1 h, where persistence is hard to beat); this names them. A NaN RMSE on either side
    counts as losing: an unmeasured horizon is not a win. Empty lists mean "better everywhere".
    """
    keys = ["pollutant", "horizon"]
    merged = model[[*keys, "rmse"]].merge(
        baseline[[*keys, "rmse"]],
        on=keys,
        how="left",
        suffixes=("", "_baseline"),
        validate="one_to_one",
    )
    # "<" is False for NaN on either side, so an unmeasured horizon lands in "lost".
    merged["lost"] = ~(merged["rmse"] < merged["rmse_baseline"])
    return {
        str(pollutant): sorted(int(h) for h in group.loc[group["lost"], "horizon"])
        for pollutant, group in merged.groupby("pollutant", sort=False)
    }


def markdown_table(
    metrics_by_model: Mapping[str, pd.DataFrame],
    horizons: Sequence[int] = REPORT_HORIZONS,
    reference: str = "persistence",
    digits: int = 2,
) -> str:
    """RMSE per model and pollutant at a few horizons plus the mean over all horizons.

    For ``MetadataValue.md``; when the reference model is present a last column gives the
    mean RMSE ratio against it.
    """
    any_frame = next(iter(metrics_by_model.values()), None)
    if any_frame is None:
        return "_no models to compare_"
    available = set(any_frame["horizon"].tolist())
    shown = [h for h in horizons if h in available]
    with_ratio = reference in metrics_by_model
    header = ["model", "pollutant", *[f"h{h}" for h in shown], "mean"]
    if with_ratio:
        header.append(f"mean ratio vs {reference}")
    ref_mean = (
        metrics_by_model[reference].groupby("pollutant")["rmse"].mean() if with_ratio else None
    )
    rows: list[list[str]] = []
    for model, frame in metrics_by_model.items():
        for pollutant, group in frame.groupby("pollutant", sort=False):
            by_h = group.set_index("horizon")["rmse"]
            mean = group["rmse"].mean()
            row = [model, str(pollutant), *[f"{by_h[h]:.{digits}f}" for h in shown]]
            row.append(f"{mean:.{digits}f}")
            if ref_mean is not None:
                row.append(f"{mean / ref_mean.get(pollutant, np.nan):.3f}")
            rows.append(row)
    return markdown.table(header, rows, right_aligned=range(2, len(header)))


def _png(figure: object) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return buffer.getvalue()


def rmse_by_horizon_plot(metrics_by_model: Mapping[str, pd.DataFrame]) -> bytes:
    """PNG: RMSE against horizon, one line per model, one panel per pollutant."""
    import matplotlib

    matplotlib.use("Agg")  # headless: Dagster workers and CI have no display
    import matplotlib.pyplot as plt

    pollutants = list(
        dict.fromkeys(p for frame in metrics_by_model.values() for p in frame["pollutant"])
    )
    figure, axes = plt.subplots(
        1, max(len(pollutants), 1), figsize=(5 * max(len(pollutants), 1), 3.5), squeeze=False
    )
    for axis, pollutant in zip(axes[0], pollutants, strict=False):
        for model, frame in metrics_by_model.items():
            rows = frame[frame["pollutant"] == pollutant].sort_values("horizon")
            axis.plot(rows["horizon"], rows["rmse"], marker=".", label=model)
        axis.set_title(f"{pollutant}: RMSE by horizon")
        axis.set_xlabel("horizon (h)")
        axis.set_ylabel("RMSE (µg/m³)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    return _png(figure)


def predicted_vs_actual_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    target_names: Sequence[str],
    horizons: Sequence[int],
    show_horizons: Sequence[int] = (1, 24),
    max_points: int = 24 * 14,
) -> bytes:
    """PNG: per pollutant, one actual-vs-predicted trace per shown horizon and a scatter.

    Each trace pairs truth and prediction *at the same horizon* (so the curves refer to the
    same target hours) over the first ``max_points`` windows, two weeks of consecutive hours
    by default; the scatter uses every window.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    horizon_list = [int(h) for h in horizons]
    chosen = [h for h in show_horizons if h in horizon_list] or [horizon_list[0]]
    n_cols = len(chosen) + 1
    figure, axes = plt.subplots(
        len(target_names), n_cols, figsize=(5.5 * n_cols, 3.5 * len(target_names)), squeeze=False
    )
    for row, name in enumerate(target_names):
        scatter = axes[row][-1]
        for trace, h in zip(axes[row][:-1], chosen, strict=True):
            j = horizon_list.index(h)
            trace.plot(y_true[:max_points, j, row], color="black", lw=1.2, label="actual")
            trace.plot(y_pred[:max_points, j, row], lw=1, label="predicted")
            trace.set_title(f"{name}, horizon {h} h (first {max_points} windows)")
            trace.set_xlabel("window")
            trace.set_ylabel("µg/m³")
            trace.legend(fontsize="small")
            scatter.scatter(y_true[:, j, row], y_pred[:, j, row], s=3, alpha=0.3, label=f"h={h}")
        finite = np.isfinite(y_true[..., row])
        top = float(np.nanmax(y_true[..., row])) if finite.any() else 1.0
        scatter.plot([0, top], [0, top], color="grey", lw=1, ls="--")
        scatter.set_title(f"{name}: predicted vs actual")
        scatter.set_xlabel("actual (µg/m³)")
        scatter.set_ylabel("predicted (µg/m³)")
        scatter.legend(fontsize="small")
    return _png(figure)
