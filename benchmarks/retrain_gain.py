"""Benchmark: does a retrain at a later clock beat an older champion on data neither saw?

The promotion gate compares a retrained model with the champion on the challenger's test
window cut to what comes after the champion's own training and validation data, leaving out
windows that touch hours the drift check flags (:mod:`airquality_assets.monitoring.flags`)
or a target scale shift against the champion (:mod:`airquality_assets.monitoring.level_shift`).
It used to move the alias on any lower mean RMSE; it now wants a significant difference
(:mod:`airquality_assets.ml.promotion`: Diebold-Mariano, one-sided p < 0.05). This replays
it on the bundled Beijing data without MLflow or Dagster: one champion trained at
``--champion-clock``, then one retrain per ``--retrain-at`` clock, each the demo grid
trained on the moving split (test = last 30 days, validation = the 60 before, training =
everything earlier) with the lowest validation loss kept, exactly the model half's choice.
Both are scored on the gate's clean windows with the test's p-values and both rules' verdict
(no retrain here was asked for by the accuracy trigger, so the champion counts as not
degraded); persistence is printed beside them as the baseline every model must beat.

Run: ``python benchmarks/retrain_gain.py [--champion-clock 2013-12-31T00:00]
[--retrain-at 2014-03-25T23:00 ...]`` (about a minute per model on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, date, datetime

os.environ.setdefault("KERAS_BACKEND", "jax")

import pandas as pd
from drift_detection import load_observations

from airquality_assets.columns import TIME
from airquality_assets.ml.baselines import persistence_forecast
from airquality_assets.ml.evaluation import forecast_metrics
from airquality_assets.ml.grid import grid_for_profile
from airquality_assets.ml.model import jit_forward, train_lstm
from airquality_assets.ml.promotion import judge_forecasts
from airquality_assets.ml.significance import format_p
from airquality_assets.ml.training_steps import gate_tensors, predict
from airquality_assets.monitoring.flags import tensor_flags
from airquality_assets.monitoring.level_shift import tensor_shift_flags
from airquality_assets.transforms.windowing import (
    SequenceTensors,
    build_sequence_tensors,
    relative_split,
    windows,
)

TARGETS = ["pm2_5"]
DEFAULT_RETRAINS = (
    "2014-03-21T23:00", "2014-03-25T23:00", "2014-03-30T23:00", "2014-04-05T23:00",
    "2014-04-10T23:00", "2014-04-15T23:00", "2014-04-20T23:00", "2014-04-29T23:00",
)  # fmt: skip


def tensors_at(frame: pd.DataFrame, clock: datetime) -> SequenceTensors:
    """What ``sequence_tensors`` builds at ``clock`` with its default config."""
    seen = frame[frame[TIME] <= pd.Timestamp(clock)]
    split = relative_split(seen[TIME].max(), test_days=30, validation_days=60)
    return build_sequence_tensors(seen, None, TARGETS, 24, range(1, 25), split)


def train_best(tensors: SequenceTensors, profile: str):
    """The grid's candidate with the lowest validation loss, as a jitted forward."""
    x_train, y_train = windows(tensors, "train")
    x_val, y_val = windows(tensors, "validation")
    index = [int(i) for i in tensors.target_columns]
    best = None
    for params in grid_for_profile(profile):
        model, history, _ = train_lstm(
            params, x_train, y_train, x_val, y_val,
            target_feature_index=index,
            feature_mean=tensors.scaler.feature_mean,
            feature_std=tensors.scaler.feature_std,
        )  # fmt: skip
        loss = min(history["val_loss"])
        if best is None or loss < best[0]:
            best = (loss, params.name, jit_forward(model))
    assert best is not None
    return best[1], best[2]


def persistence_rmse(tensors: SequenceTensors) -> float:
    _, y = windows(tensors, "test")
    forecast = persistence_forecast(tensors, tensors.ends["test"])
    metrics = forecast_metrics(y, forecast, tensors.target_names, tensors.horizons)
    return float(metrics["rmse"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--champion-clock", default="2013-12-31T00:00")
    parser.add_argument("--retrain-at", nargs="+", default=list(DEFAULT_RETRAINS))
    parser.add_argument("--profile", default="demo")
    args = parser.parse_args()

    def clock(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    started = time.perf_counter()
    frame = load_observations(date(2010, 1, 1), date(2015, 1, 1))
    champion_tensors = tensors_at(frame, clock(args.champion_clock))
    champion_name, champion = train_best(champion_tensors, args.profile)
    seen_until = champion_tensors.split_range("test")[0]
    print(f"champion at {args.champion_clock}: {champion_name}, trained and validated on data "
          f"before {seen_until} ({time.perf_counter() - started:.0f} s)\n")  # fmt: skip
    print("| retrain clock | gate window | clean of gate windows | challenger RMSE "
          "| champion RMSE | challenger / champion | p (better) | p (worse) "
          "| persistence RMSE | lower RMSE wins | gate |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    lower = passed = 0
    for at in args.retrain_at:
        gate = gate_tensors(tensors_at(frame, clock(at)), seen_until)
        _, challenger = train_best(gate, args.profile)
        x, y = windows(gate, "test")
        # as the gate: the drift check's flags and a target scale shift against the champion
        evidence, verdict, _ = judge_forecasts(
            gate, y, predict(challenger, x), predict(champion, x), tensor_flags(gate, seen_until),
            shift_flags_for=tensor_shift_flags,
        )  # fmt: skip
        new, old = evidence.challenger_rmse, evidence.champion_rmse
        lower += new < old
        passed += verdict.promote
        start, end = gate.split_range("test")
        print(f"| {at} | {start[:10]}..{end[:10]} | {evidence.used} of {evidence.windows} | "
              f"{new:.2f} | {old:.2f} | {new / old:.3f} | {format_p(evidence.p_better)} | "
              f"{format_p(evidence.p_worse)} | {persistence_rmse(gate):.2f} | "
              f"{'yes' if new < old else 'no'} | {'promoted' if verdict.promote else 'stays'} |",
              flush=True)  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{lower} of {len(args.retrain_at)} retrains have a lower RMSE than the champion; "
          f"{passed} pass the gate's test ({minutes:.1f} min)")  # fmt: skip


if __name__ == "__main__":
    main()
