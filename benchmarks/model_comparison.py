"""Benchmark: how far apart are the baselines, and can the test window tell?

The headline comparison of the forecast models on the bundled Beijing data, on the fixed
split (train 2010-2012, validation 2013, test 2014 up to the replay clock; what
``AIRQUALITY_SPLIT=fixed`` gives the model half), without Dagster or MLflow:

* persistence, the blocking bar every model must beat;
* Ridge on the flattened window, and LightGBM direct per horizon
  (:mod:`airquality_assets.ml.baselines`), each **with** the weather forecast of the target
  hours (the replay stand-ins: observations plus the default seeded error model, issued every
  6 h, the newest issue at or before each window's end) and **without** it, on the same
  windows.

Printed: RMSE per horizon (ug/m3) and its ratio to persistence, then the Diebold-Mariano
p-values (squared error, HAC, two-sided) of each model against persistence per horizon and
on the mean, and of each pair on the mean, with the fit times and the machine's load. The
LSTM is not trained here (minutes to hours); its line on the same split is the model half's
own evaluation table with ``AIRQUALITY_SPLIT=fixed``.

Run: ``python benchmarks/model_comparison.py [--split recent --test-days 90]
[--error-scale 0]`` (``--error-scale 0``: forecasts equal the observations, the
perfect-forecast bound). About a minute of one core for the models, plus loading.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
from drift_detection import load_observations

from airquality_assets.clock import REPLAY_DEFAULT_NOW
from airquality_assets.columns import TIME
from airquality_assets.ml.baselines import fit_lightgbm, fit_ridge, persistence_forecast
from airquality_assets.ml.comparison import compare
from airquality_assets.ml.evaluation import forecast_metrics
from airquality_assets.ml.significance import format_p, verdict
from airquality_assets.sources.forecast_errors import ForecastErrorModel
from airquality_assets.transforms.forecast_inputs import with_stand_ins
from airquality_assets.transforms.windowing import (
    SequenceTensors,
    SplitSpec,
    build_sequence_tensors,
    capped_test_days,
    relative_split,
    windows,
)

TARGETS = ["pm2_5"]
SHOWN = (1, 3, 6, 12, 24)
ISSUE_EVERY_HOURS = 6


def tensors_for(args: argparse.Namespace) -> SequenceTensors:
    """What ``sequence_tensors`` builds at the replay clock, forecasts included."""
    frame = load_observations(date(2010, 1, 1), date(2015, 1, 1))
    observed = frame[frame[TIME] <= pd.Timestamp(REPLAY_DEFAULT_NOW)]
    first, newest = observed[TIME].min(), observed[TIME].max()
    if args.split == "fixed":
        split = SplitSpec()
    else:
        split = relative_split(newest, capped_test_days(first, newest, args.test_days), 60)
    model = ForecastErrorModel(scale=args.error_scale)
    forecasts, _ = with_stand_ins(pd.DataFrame(), observed, ISSUE_EVERY_HOURS, model)
    return build_sequence_tensors(
        observed, None, TARGETS, 24, range(1, 25), split, forecasts=forecasts
    )


def fit_all(tensors: SequenceTensors) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every model's test forecasts and its fit time (seconds of wall time)."""
    ends = tensors.ends["test"]
    blind = dataclasses.replace(tensors, future=None, future_names=[])
    forecasts = {"persistence": persistence_forecast(tensors, ends)}
    seconds: dict[str, float] = {"persistence": 0.0}
    for label, view in (("", blind), (" + forecast", tensors)):
        for name, fit in (("Ridge", fit_ridge), ("LightGBM", fit_lightgbm)):
            started = time.perf_counter()
            model = fit(view)
            forecasts[name + label] = model.predict(view, ends)
            seconds[name + label] = time.perf_counter() - started
            print(f"  {name + label}: fitted and predicted in {seconds[name + label]:.1f} s",
                  flush=True)  # fmt: skip
    return forecasts, seconds


def rmse_table(y: np.ndarray, forecasts: dict[str, np.ndarray], tensors: SequenceTensors) -> str:
    rmse = {}
    for name, forecast in forecasts.items():
        metrics = forecast_metrics(y, forecast, tensors.target_names, tensors.horizons)
        rmse[name] = metrics.set_index("horizon")["rmse"]
    reference = rmse["persistence"]
    lines = [
        "| model | " + " | ".join(f"{h} h" for h in SHOWN) + " | mean 1-24 h | ratio to "
        "persistence 1 / 6 / 24 h / mean |",
        "|---|" + "---:|" * (len(SHOWN) + 2),
    ]
    for name, series in rmse.items():
        ratios = [series[h] / reference[h] for h in (1, 6, 24)] + [series.mean() / reference.mean()]
        lines.append(
            f"| {name} | " + " | ".join(f"{series[h]:.1f}" for h in SHOWN)
            + f" | {series.mean():.1f} | " + " / ".join(f"{r:.3f}" for r in ratios) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def mark(row: pd.Series) -> str:
    return {"better": " ✓", "worse": " ✗"}.get(verdict(row), "")


def against_persistence(y, forecasts, times, tensors: SequenceTensors) -> str:
    lines = [
        "| model vs persistence | " + " | ".join(f"{h} h" for h in SHOWN) + " | mean |",
        "|---|" + "---:|" * (len(SHOWN) + 1),
    ]
    persistence = {"persistence": forecasts["persistence"]}
    for name, forecast in forecasts.items():
        if name == "persistence":
            continue
        result = compare(y, forecast, persistence, times, tensors.target_names, tensors.horizons)
        cells = result.by_horizon.set_index("horizon")
        mean = result.on_mean.iloc[0]
        lines.append(
            f"| {name} | " + " | ".join(f"{format_p(cells.loc[h, 'p_value'])}"
                                        f"{mark(cells.loc[h])}" for h in SHOWN)
            + f" | {format_p(mean['p_value'])}{mark(mean)} |"
        )  # fmt: skip
    return "\n".join(lines)


def pairs_on_mean(y, forecasts, times, tensors: SequenceTensors) -> str:
    """Row model against column model on the mean over horizons: p (✓ row better)."""
    names = [n for n in forecasts if n != "persistence"]
    lines = ["| row vs column, mean | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for a in names:
        others = {b: forecasts[b] for b in names if b != a}
        result = compare(y, forecasts[a], others, times, tensors.target_names, tensors.horizons)
        means = result.on_mean.set_index("baseline")
        cells = ["" if b == a else f"{format_p(means.loc[b, 'p_value'])}{mark(means.loc[b])}"
                 for b in names]  # fmt: skip
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("fixed", "recent"), default="fixed")
    parser.add_argument("--test-days", type=int, default=90, help="the recent split's test days")
    parser.add_argument(
        "--error-scale", type=float, default=1.0, help="forecast error scale (0: perfect)"
    )
    args = parser.parse_args()

    started, cpu = time.perf_counter(), time.process_time()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    tensors = tensors_for(args)
    ends = tensors.ends["test"]
    start, end = tensors.split_range("test")
    print(f"split {args.split} ({tensors.split_mode}): test {start[:10]}..{end[:10]}, "
          f"{len(ends)} test / {len(tensors.ends['train'])} training windows; forecast error "
          f"scale {args.error_scale:g}; no forecast {tensors.no_forecast}", flush=True)  # fmt: skip
    _, y = windows(tensors, "test")
    forecasts, _ = fit_all(tensors)
    times = tensors.times[ends]
    print("\npm2_5 RMSE (ug/m3) on the test windows\n")
    print(rmse_table(y, forecasts, tensors))
    print("\nDiebold-Mariano p (two-sided; ✓ significantly better, ✗ worse at 5 %)\n")
    print(against_persistence(y, forecasts, times, tensors))
    print()
    print(pairs_on_mean(y, forecasts, times, tensors))
    print(f"\n{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU; "
          f"load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
