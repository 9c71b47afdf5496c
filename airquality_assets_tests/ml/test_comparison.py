"""The model against every baseline: the DM wiring, the Markdown table, the check's text."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from airquality_assets.ml.comparison import (
    COMPARISON_COLUMNS,
    Comparison,
    compare,
    shortfalls,
    significance_markdown,
    significance_metrics,
)
from airquality_assets.ml.significance import HOUR, dm_by_horizon, dm_on_mean

HORIZONS = [1, 2, 3, 4, 5, 6]
LABELS = {"lightgbm": "LightGBM", "ridge": "Ridge"}


def synthetic(n: int = 2000, seed: int = 0):
    """Truth; a model close to it at 1-3 h and far at 4-6 h; a baseline in between."""
    rng = np.random.default_rng(seed)
    truth = rng.gamma(2.0, 20.0, (n, len(HORIZONS), 1))
    model_sd = np.array([2.0, 2.0, 2.0, 12.0, 12.0, 12.0])[None, :, None]
    model = truth + model_sd * rng.standard_normal(truth.shape)
    baseline = truth + 6.0 * rng.standard_normal(truth.shape)
    return truth, model, baseline, np.arange(n) * HOUR


def test_compare_puts_each_baselines_rmse_and_dm_test_beside_the_models() -> None:
    truth, model, baseline, times = synthetic()
    noisy = baseline + 1.0  # a second, slightly worse baseline
    result = compare(
        truth, model, {"ridge": baseline, "lightgbm": noisy}, times, ["pm2_5"], HORIZONS
    )
    frame = result.by_horizon
    assert list(frame.columns) == list(COMPARISON_COLUMNS)
    assert result.baselines == ["ridge", "lightgbm"] and len(frame) == 2 * len(HORIZONS)
    ridge = frame[frame["baseline"] == "ridge"].set_index("horizon")
    assert list(ridge["verdict"]) == ["better"] * 3 + ["worse"] * 3
    # The wiring: the same numbers as the tests and metrics computed directly.
    direct = dm_by_horizon(truth, model, baseline, times, ["pm2_5"], HORIZONS).set_index("horizon")
    np.testing.assert_allclose(ridge["p_value"], direct["p_value"])
    np.testing.assert_allclose(ridge["statistic"], direct["statistic"])
    rmse = np.sqrt(((model - truth) ** 2).mean(axis=0))[:, 0]
    rmse_baseline = np.sqrt(((baseline - truth) ** 2).mean(axis=0))[:, 0]
    np.testing.assert_allclose(ridge["rmse"], rmse)
    np.testing.assert_allclose(ridge["ratio"], rmse / rmse_baseline)
    assert (ridge["n"] == len(truth)).all()

    mean = result.on_mean.set_index("baseline").loc["ridge"]
    expected = dm_on_mean(truth, model, baseline, times, ["pm2_5"], HORIZONS)["pm2_5"]
    assert mean["p_value"] == pytest.approx(expected.p_value)
    assert mean["horizon"] == 6 and mean["rmse"] == pytest.approx(rmse.mean())
    assert mean["verdict"] == "worse"  # large errors at 4-6 h outweigh small ones at 1-3 h


def test_windows_a_baseline_cannot_forecast_are_left_out_of_its_test_only() -> None:
    truth, model, baseline, times = synthetic(500)
    baseline[:100] = np.nan
    result = compare(truth, model, {"ridge": baseline, "lightgbm": baseline + 0.0}, times,
                     ["pm2_5"], HORIZONS)  # fmt: skip
    assert (result.by_horizon["n"] == 400).all()
    assert math.isfinite(result.on_mean["p_value"].iloc[0])


def handmade(rows: list[tuple[str, str, int, str]]) -> Comparison:
    """A comparison with the given (baseline, pollutant, horizon, verdict) rows."""
    frame = pd.DataFrame(rows, columns=["baseline", "pollutant", "horizon", "verdict"])
    frame["ratio"], frame["p_value"] = 1.0, 0.5
    frame["p_value"] = np.where(frame["verdict"] == "not different", 0.5, 0.001)
    frame["ratio"] = np.where(frame["verdict"] == "better", 0.9, 1.0)
    frame.loc[frame["verdict"] == "worse", "ratio"] = 1.1
    for column in COMPARISON_COLUMNS:
        if column not in frame:
            frame[column] = 1 if column == "n" else np.nan
    mean = frame.groupby(["baseline", "pollutant"], sort=False, as_index=False).first()
    return Comparison("lstm", frame[list(COMPARISON_COLUMNS)], mean[list(COMPARISON_COLUMNS)])


def verdicts(baseline: str, pollutant: str, pattern: str) -> list[tuple[str, str, int, str]]:
    """``pattern`` per horizon from 1: b = better, n = not different, w = worse."""
    names = {"b": "better", "n": "not different", "w": "worse"}
    return [(baseline, pollutant, h, names[c]) for h, c in enumerate(pattern, start=1)]


def test_shortfalls_group_horizons_into_ranges_per_baseline() -> None:
    comparison = handmade(
        verdicts("persistence", "pm2_5", "bbbbbbbbbb")
        + verdicts("lightgbm", "pm2_5", "nnnnnbbnww")
        + verdicts("ridge", "pm2_5", "bbbbbbbbbn")
    )
    assert shortfalls(comparison, labels=LABELS) == [
        "not significantly better than LightGBM at 1-5, 8-10 h",
        "significantly worse than LightGBM at 9-10 h",
        "not significantly better than Ridge at 10 h",
    ]
    assert shortfalls(comparison, ["persistence", "ridge"], LABELS) == [
        "not significantly better than Ridge at 10 h"
    ]
    assert shortfalls(comparison, ["persistence", "climatology"]) == []  # absent: no claim


def test_shortfalls_name_the_pollutant_when_there_are_several() -> None:
    comparison = handmade(verdicts("ridge", "pm2_5", "bbn") + verdicts("ridge", "no2", "nbb"))
    assert shortfalls(comparison, labels=LABELS) == [
        "pm2_5: not significantly better than Ridge at 3 h",
        "no2: not significantly better than Ridge at 1 h",
    ]


def test_an_untested_horizon_is_not_a_win() -> None:
    comparison = handmade([*verdicts("ridge", "pm2_5", "bb"), ("ridge", "pm2_5", 3, "untested")])
    assert shortfalls(comparison, labels=LABELS) == ["not significantly better than Ridge at 3 h"]


def test_markdown_shows_ratio_and_p_value_at_the_report_horizons_and_the_mean() -> None:
    truth, model, baseline, times = synthetic()
    result = compare(truth, model, {"ridge": baseline}, times, ["pm2_5"], HORIZONS)
    text = significance_markdown(result, horizons=(1, 6, 24), labels=LABELS)
    lines = text.splitlines()
    assert lines[0] == "| baseline | pollutant | h1 | h6 | mean over horizons |"
    row = lines[2].split(" | ")
    cell = result.by_horizon.set_index("horizon").loc[1]
    assert row[0] == "| Ridge" and row[2] == f"{cell['ratio']:.3f} (p <0.001) ✓"
    assert row[3].endswith("✗") and row[4].rstrip(" |").endswith("✗")
    assert "Diebold-Mariano" in text and "h24" not in text  # no such horizon


def test_mlflow_metrics_are_p_values_per_horizon_and_on_the_mean() -> None:
    truth, model, baseline, times = synthetic(300)
    result = compare(truth, model, {"ridge": baseline}, times, ["pm2_5"], HORIZONS)
    triples = significance_metrics(result)
    steps = [s for k, _, s in triples if k == "dm_p_vs_ridge"]
    assert steps == HORIZONS
    (mean,) = [v for k, v, _ in triples if k == "dm_p_mean_vs_ridge"]
    assert mean == pytest.approx(result.on_mean["p_value"].iloc[0])
    assert all(0.0 <= v <= 1.0 for _, v, _ in triples)

    untested = handmade(verdicts("ridge", "pm2_5", "bb"))
    untested.by_horizon.loc[0, "p_value"] = np.nan
    assert [s for k, _, s in significance_metrics(untested) if k == "dm_p_vs_ridge"] == [2]
    records = untested.records()
    assert records[0]["p_value"] is None and {r["scope"] for r in records} == {"horizon", "mean"}
