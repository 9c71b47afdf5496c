"""Metrics agree with scikit-learn; comparisons, tables and plots are usable as metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from airquality_assets.ml.evaluation import (
    METRIC_COLUMNS,
    forecast_metrics,
    losing_horizons,
    markdown_table,
    predicted_vs_actual_plot,
    rmse_by_horizon_plot,
)

TARGETS = ["pm2_5", "no2"]
HORIZONS = [1, 3, 6, 12, 24]


@pytest.fixture
def truth() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.gamma(3.0, 20.0, size=(200, len(HORIZONS), len(TARGETS)))


def noisy(truth: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # error grows with the horizon, as for a real forecast
    growth = np.asarray(HORIZONS, dtype=float)[None, :, None] ** 0.5
    return truth + rng.normal(0, scale, truth.shape) * growth


def test_metrics_match_sklearn_per_cell(truth: np.ndarray) -> None:
    pred = noisy(truth, 5.0)
    metrics = forecast_metrics(truth, pred, TARGETS, HORIZONS)
    assert list(metrics.columns) == list(METRIC_COLUMNS)
    assert len(metrics) == len(TARGETS) * len(HORIZONS)
    for row in metrics.itertuples():
        j, k = HORIZONS.index(row.horizon), TARGETS.index(row.pollutant)
        t, p = truth[:, j, k], pred[:, j, k]
        assert row.n == 200
        assert row.mse == pytest.approx(mean_squared_error(t, p))
        assert row.mae == pytest.approx(mean_absolute_error(t, p))
        assert row.rmse == pytest.approx(np.sqrt(mean_squared_error(t, p)))
        assert row.r2 == pytest.approx(r2_score(t, p))


def test_metrics_skip_nan_pairs_and_check_shapes(truth: np.ndarray) -> None:
    pred = noisy(truth, 5.0)
    pred[:10, 0, 0] = np.nan
    metrics = forecast_metrics(truth, pred, TARGETS, HORIZONS)
    cell = metrics[(metrics.pollutant == "pm2_5") & (metrics.horizon == 1)].iloc[0]
    assert cell.n == 190
    assert cell.mse == pytest.approx(mean_squared_error(truth[10:, 0, 0], pred[10:, 0, 0]))
    constant = np.ones((5, 1, 1))
    assert np.isnan(forecast_metrics(constant, constant, ["x"], [1]).r2.iloc[0])
    with pytest.raises(ValueError, match="horizons"):
        forecast_metrics(truth, pred[:, :2], TARGETS, HORIZONS)


def metrics_by_model(truth: np.ndarray) -> dict[str, pd.DataFrame]:
    return {
        "persistence": forecast_metrics(truth, noisy(truth, 10.0, 1), TARGETS, HORIZONS),
        "lstm": forecast_metrics(truth, noisy(truth, 5.0, 2), TARGETS, HORIZONS),
    }


def test_losing_horizons_names_each_horizon_where_the_model_is_not_better(
    truth: np.ndarray,
) -> None:
    models = metrics_by_model(truth)
    assert losing_horizons(models["lstm"], models["persistence"]) == {"pm2_5": [], "no2": []}
    assert losing_horizons(models["persistence"], models["lstm"]) == {
        "pm2_5": HORIZONS,
        "no2": HORIZONS,
    }
    # Worse at 1 h (persistence's strong suit), NaN (unmeasured) at 6 h, tied at 24 h.
    pred = noisy(truth, 5.0, 2)
    pred[:, 0, 0] = truth[:, 0, 0] + 50.0
    pred[:, 2, 0] = np.nan
    mixed = forecast_metrics(truth, pred, TARGETS, HORIZONS)
    baseline = models["lstm"].copy()
    mixed.loc[(mixed.pollutant == "pm2_5") & (mixed.horizon == 24), "rmse"] = baseline.loc[
        (baseline.pollutant == "pm2_5") & (baseline.horizon == 24), "rmse"
    ].iloc[0]
    baseline["rmse"] *= 1.5
    baseline.loc[(baseline.pollutant == "pm2_5") & (baseline.horizon == 24), "rmse"] /= 1.5
    assert losing_horizons(mixed, baseline) == {"pm2_5": [1, 6, 24], "no2": []}


def test_markdown_table_lists_models_and_horizons(truth: np.ndarray) -> None:
    models = metrics_by_model(truth)
    table = markdown_table(models, horizons=(1, 6, 24, 48))
    lines = table.splitlines()
    assert lines[0] == "| model | pollutant | h1 | h6 | h24 | mean | mean ratio vs persistence |"
    assert len(lines) == 2 + len(models) * len(TARGETS)
    lstm_pm = next(line for line in lines if line.startswith("| lstm | pm2_5 "))
    rmse_h6 = models["lstm"].query("pollutant == 'pm2_5' and horizon == 6").rmse.iloc[0]
    assert f"{rmse_h6:.2f}" in lstm_pm
    assert "| 1.000 |" in next(line for line in lines if line.startswith("| persistence"))
    assert float(lstm_pm.split("|")[-2]) < 0.7  # half the noise: clearly better
    assert "ratio" not in markdown_table({"lstm": models["lstm"]})


def test_plots_are_png_bytes(truth: np.ndarray) -> None:
    png = b"\x89PNG\r\n\x1a\n"
    assert rmse_by_horizon_plot(metrics_by_model(truth)).startswith(png)
    image = predicted_vs_actual_plot(truth, noisy(truth, 5.0), TARGETS, HORIZONS)
    assert image.startswith(png) and len(image) > 10_000
