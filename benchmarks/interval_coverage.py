"""Benchmark: do the 80 % prediction intervals cover 80 % of the hours of 2014?

On the fixed split (train 2010-2012, validation 2013, test 2014; the tensors of
:mod:`model_comparison`, replay stand-in weather forecasts included), one LSTM is trained
as the model half trains it, the intervals are calibrated on its 2013 validation residuals
(:func:`airquality_assets.ml.intervals.conformal_intervals`, the code training runs) and
their coverage is measured on every 2014 test window, per horizon, against the nominal
level (goal: 78-82 % for 80 %). The mean width per horizon is printed beside it, and the
same for a naive band (the spread of the 2013 actuals around persistence) as a baseline.

Run: ``python benchmarks/interval_coverage.py [--level 0.8]``. About 3-6 minutes of 2
cores (one LSTM fit).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import numpy as np
from model_comparison import tensors_for

from airquality_assets.ml.baselines import persistence_forecast
from airquality_assets.ml.forward import jit_forward
from airquality_assets.ml.intervals import DEFAULT_LEVEL, conformal_intervals, coverage
from airquality_assets.ml.model import LSTMParams, train_lstm
from airquality_assets.ml.training_steps import predict
from airquality_assets.transforms.windowing import network_inputs

GOAL = (0.78, 0.82)
SHOWN = (1, 3, 6, 12, 18, 24)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    args.split, args.test_days, args.error_scale = "fixed", 90, 1.0
    params = LSTMParams(
        units=64,
        layers=1,
        dropout=0.2,
        learning_rate=1e-3,
        batch_size=256,
        epochs=args.epochs,
        patience=3,
    )
    started = time.perf_counter()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; LSTM {params}; level {args.level:g}", flush=True)  # fmt: skip
    tensors = tensors_for(args)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
        network_inputs(tensors, s) for s in ("train", "validation", "test")
    )
    scaler = tensors.scaler
    targets = [tensors.feature_names.index(t) for t in tensors.target_names]
    model, history, fit = train_lstm(
        params, x_tr[0], y_tr, x_va[0], y_va, target_feature_index=targets,
        feature_mean=scaler.feature_mean, feature_std=scaler.feature_std,
        future_train=x_tr[1], future_val=x_va[1], future_mean=scaler.future_mean,
        future_std=scaler.future_std,
    )  # fmt: skip
    forward = jit_forward(model)
    print(f"LSTM: {len(history['loss'])} epochs in {fit:.0f} s; {len(y_va)} validation (2013) "
          f"and {len(y_te)} test (2014) windows", flush=True)  # fmt: skip
    names, horizons = list(tensors.target_names), [int(h) for h in tensors.horizons]
    val_pred = predict(forward, x_va)
    test_pred = predict(forward, x_te)
    calibration = conformal_intervals(y_va, val_pred, names, horizons, args.level)
    low, high = calibration.bounds(test_pred, names, horizons)
    cov = coverage(y_te, low, high)  # (horizons, pollutants)
    width = np.nanmean(high - low, axis=0)

    naive_val = persistence_forecast(tensors, tensors.ends["validation"])
    naive_test = persistence_forecast(tensors, tensors.ends["test"])
    naive = conformal_intervals(y_va, naive_val, names, horizons, args.level)
    n_low, n_high = naive.bounds(naive_test, names, horizons)
    n_cov, n_width = coverage(y_te, n_low, n_high), np.nanmean(n_high - n_low, axis=0)

    for j, pollutant in enumerate(names):
        print(f"\n{pollutant}: nominal {args.level:.0%}, 2014 coverage per horizon")
        print("| horizon | coverage | mean width ug/m3 | persistence band coverage | its width |")
        print("|---:|---:|---:|---:|---:|")
        for i, h in enumerate(horizons):
            if h in SHOWN:
                print(f"| {h} | {cov[i, j]:.1%} | {width[i, j]:.0f} | {n_cov[i, j]:.1%} | "
                      f"{n_width[i, j]:.0f} |")  # fmt: skip
        overall = float(np.nanmean(cov[:, j]))
        verdict = "within" if GOAL[0] <= overall <= GOAL[1] else "OUTSIDE"
        print(
            f"all horizons: {overall:.1%} ({verdict} the {GOAL[0]:.0%}-{GOAL[1]:.0%} goal; "
            f"range {np.nanmin(cov[:, j]):.1%}-{np.nanmax(cov[:, j]):.1%}); mean width "
            f"{np.nanmean(width[:, j]):.0f} ug/m3 vs {np.nanmean(n_width[:, j]):.0f} for the "
            f"persistence band (ratio {np.nanmean(width[:, j]) / np.nanmean(n_width[:, j]):.2f})"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
