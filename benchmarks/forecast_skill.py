"""Benchmark: is the LSTM that reads the weather forecast worth more than the baselines?

The forecast-skill question on the fixed split (train 2010-2012, validation 2013, test 2014,
8,317 test windows), on the same tensors as :mod:`model_comparison` (the replay stand-in
forecasts: observations plus the default seeded error model, issued every 6 h, the newest
issue at or before each window's end):

* the project's LSTM with the forecast decoder (:func:`airquality_assets.ml.model.train_lstm`,
  the code the model half runs), trained ``--seeds`` times with different seeds, and the
  mean of those networks (a seed ensemble);
* the mean of that ensemble and LightGBM + forecast (the strongest baseline), as a measured
  candidate only;
* **the served forward**: the first seed's LSTM, that LSTM corrected by boosters fitted to
  its residuals, and LightGBM's per-horizon boosters (learning rate 0.1, also reported alone
  as a stronger LightGBM baseline) on the same arrays, blended with per-horizon weights
  fitted on the validation windows
  (:func:`airquality_assets.ml.ensemble.fit_ensemble`, what ``model_evaluation`` ships),
  called through ``jit_forward`` as the service calls it; and the same with every seed as
  members (measured, not served);
* against persistence, Ridge and LightGBM with and without the forecast, per horizon, with
  Diebold-Mariano p-values (squared error, HAC, two-sided);
* and the issue's bar: mean RMSE at most 47 and at most 0.90 / 0.70 / 0.60 of persistence
  at 1 / 6 / 24 h, the LSTM ahead of LightGBM and Ridge with the same inputs at every
  horizon.

The LSTM's settings are arguments (default: the best measured on this split, units 64, one
layer, batch 256): the ``full`` grid (units 128, batch 16/32, up to 50 epochs, 8 candidates)
takes hours per candidate on 2 cores and was not run here.

Run: ``python benchmarks/forecast_skill.py [--seeds 3] [--units 64 --layers 1 ...]``.
About 3-6 minutes of 2 cores per seed, plus a minute for the baselines.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import numpy as np
from model_comparison import against_persistence, fit_all, rmse_table, tensors_for

from airquality_assets.ml.comparison import compare
from airquality_assets.ml.ensemble import fit_ensemble, with_members
from airquality_assets.ml.evaluation import forecast_metrics
from airquality_assets.ml.forward import jit_forward
from airquality_assets.ml.model import LSTMParams, train_lstm
from airquality_assets.ml.significance import format_p, verdict
from airquality_assets.ml.training_steps import predict
from airquality_assets.transforms.windowing import SequenceTensors, network_inputs, windows

BAR_MEAN = 47.0
BAR_RATIOS = {1: 0.90, 6: 0.70, 24: 0.60}
BOOSTERS = "LightGBM + forecast, the ensemble's boosters (learning rate 0.1)"
SAME_INPUTS = ("LightGBM + forecast", BOOSTERS, "Ridge + forecast")
SERVED = "LSTM + LightGBM ensemble, per-horizon weights (served)"


def train_seeds(
    tensors: SequenceTensors, params: LSTMParams, seeds: int
) -> tuple[list[np.ndarray], list[float], list]:
    """Each seed's test forecasts ``(n, horizons, targets)``, fit seconds and model."""
    (x_tr, y_tr), (x_va, y_va) = (network_inputs(tensors, s) for s in ("train", "validation"))
    x_te, _ = network_inputs(tensors, "test")
    scaler = tensors.scaler
    targets = [tensors.feature_names.index(t) for t in tensors.target_names]
    forecasts, seconds, models = [], [], []
    for seed in range(seeds):
        model, history, fit = train_lstm(
            params, x_tr[0], y_tr, x_va[0], y_va, target_feature_index=targets,
            feature_mean=scaler.feature_mean, feature_std=scaler.feature_std,
            future_train=x_tr[1], future_val=x_va[1], future_mean=scaler.future_mean,
            future_std=scaler.future_std, seed=42 + seed,
        )  # fmt: skip
        forecasts.append(np.asarray(predict(jit_forward(model), x_te), dtype=float))
        seconds.append(fit)
        models.append(model)
        print(f"  LSTM seed {42 + seed}: {len(history['loss'])} epochs in {fit:.0f} s, load "
              f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    return forecasts, seconds, models


def served_ensembles(tensors: SequenceTensors, models: list) -> dict[str, np.ndarray]:
    """The served forward (:func:`airquality_assets.ml.ensemble.fit_ensemble`: the tuned
    LSTM and LightGBM's per-horizon boosters on the same arrays, weights fitted on the
    validation windows) and, measured only, the same with every seed as members; test
    forecasts through ``jit_forward``, exactly as the service calls it."""
    (x_tr, y_tr), (x_va, y_va) = (network_inputs(tensors, s) for s in ("train", "validation"))
    x_te, _ = network_inputs(tensors, "test")
    started = time.perf_counter()
    served = fit_ensemble(
        models[:1], x_tr, y_tr, x_va, y_va, tensors.feature_names, tensors.future_names,
        tensors.target_names, tensors.horizons,
    )  # fmt: skip
    print(f"  ensemble boosters and weights in {time.perf_counter() - started:.0f} s; "
          f"validation RMSE {served.extra['validation_rmse']}", flush=True)  # fmt: skip
    for component in served.components:
        print(f"    {component} share per horizon "
              f"{np.round(served.share(component)[:, 0], 2).tolist()}")  # fmt: skip
    out = {SERVED: np.asarray(predict(jit_forward(served), x_te), dtype=float)}
    parts = served.parts(*x_te).astype(float)
    # Its members alone: the boosters learn slower than the baseline's (a stronger LightGBM).
    out[BOOSTERS] = parts[..., served.components.index("lightgbm")]
    residual = served.components.index("lstm_residual")
    out["LSTM + residual boosters (a member)"] = parts[..., residual]
    if len(models) > 1:
        seeds = with_members(served, models, x_va, y_va)
        out[f"{len(models)}-seed LSTM + LightGBM, weighted (not served)"] = np.asarray(
            predict(jit_forward(seeds), x_te), dtype=float
        )
    return out


def dm_table(y, forecasts, times, tensors: SequenceTensors, name: str) -> str:
    """Per horizon: the served ensemble's RMSE and DM p against LightGBM and Ridge given the
    same inputs (two-sided; the sign says who is better)."""
    result = compare(
        y, forecasts[name], {b: forecasts[b] for b in SAME_INPUTS}, times,
        tensors.target_names, tensors.horizons,
    )  # fmt: skip
    by = result.by_horizon

    def rmse(model: str):
        frame = forecast_metrics(y, forecasts[model], tensors.target_names, tensors.horizons)
        return frame.set_index("horizon")["rmse"]

    served, baselines = rmse(name), {b: rmse(b) for b in SAME_INPUTS}
    lines = ["| h | served | " + " | ".join(f"{b} | p" for b in SAME_INPUTS) + " |",
             "|---:|---:|" + "---:|---:|" * len(SAME_INPUTS)]  # fmt: skip
    for h in tensors.horizons:
        cells = [f"{h}", f"{served[h]:.2f}"]
        for b in SAME_INPUTS:
            row = by[(by["baseline"] == b) & (by["horizon"] == h)].iloc[0]
            cells += [f"{baselines[b][h]:.2f}", f"{format_p(row['p_value'])} ({verdict(row)})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versus_same_inputs(y, candidates, forecasts, times, tensors: SequenceTensors) -> str:
    """Each LSTM candidate against the baselines given the same inputs, every horizon."""
    lines = [
        "| candidate vs | better (p < 0.05) | not different | worse | horizons not better |",
        "|---|---:|---:|---:|---|",
    ]
    for name in candidates:
        result = compare(
            y, forecasts[name], {b: forecasts[b] for b in SAME_INPUTS}, times,
            tensors.target_names, tensors.horizons,
        )  # fmt: skip
        for baseline, rows in result.by_horizon.groupby("baseline", sort=False):
            verdicts = [verdict(row) for _, row in rows.iterrows()]
            missing = [int(h) for h, v in zip(rows["horizon"], verdicts, strict=True)
                       if v != "better"]  # fmt: skip
            lines.append(
                f"| {name} vs {baseline} | {verdicts.count('better')} | "
                f"{verdicts.count('not different')} | {verdicts.count('worse')} | "
                f"{_ranges(missing) or 'none'} |"
            )
        mean = result.on_mean.set_index("baseline")
        lines.append(
            f"| {name}, mean over horizons | " + "; ".join(
                f"vs {b}: p {format_p(mean.loc[b, 'p_value'])} ({verdict(mean.loc[b])})"
                for b in SAME_INPUTS) + " | | | |"
        )  # fmt: skip
    return "\n".join(lines)


def bar_table(y, candidates, forecasts, tensors: SequenceTensors) -> str:
    """The issue's bar, met or missed, per candidate."""

    def rmse(name: str):
        frame = forecast_metrics(y, forecasts[name], tensors.target_names, tensors.horizons)
        return frame.set_index("horizon")["rmse"]

    reference = rmse("persistence")
    lines = [
        "| candidate | mean (bar 47) | 1 h ratio (0.90) | 6 h ratio (0.70) | 24 h ratio (0.60) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in candidates:
        series = rmse(name)
        cells = [f"{series.mean():.2f} {'met' if series.mean() <= BAR_MEAN else 'MISSED'}"]
        for h, bar in BAR_RATIOS.items():
            ratio = series[h] / reference[h]
            cells.append(f"{ratio:.3f} {'met' if ratio <= bar else 'MISSED'}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ranges(hours: list[int]) -> str:
    out, start = [], None
    for i, h in enumerate(hours):
        start = h if start is None else start
        if i + 1 == len(hours) or hours[i + 1] != h + 1:
            out.append(f"{start}" if start == h else f"{start}-{h}")
            start = None
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--error-scale", type=float, default=1.0)
    args = parser.parse_args()
    args.split, args.test_days = "fixed", 90
    params = LSTMParams(
        units=args.units, layers=args.layers, dropout=args.dropout,
        learning_rate=args.learning_rate, batch_size=args.batch_size, epochs=args.epochs,
        patience=args.patience,
    )  # fmt: skip

    started = time.perf_counter()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; LSTM {params}", flush=True)  # fmt: skip
    tensors = tensors_for(args)
    ends = tensors.ends["test"]
    print(f"{len(ends)} test / {len(tensors.ends['train'])} training windows, forecast error "
          f"scale {args.error_scale:g}", flush=True)  # fmt: skip
    _, y = windows(tensors, "test")
    forecasts, _ = fit_all(tensors)
    seeds, _, models = train_seeds(tensors, params, args.seeds)
    forecasts["LSTM + forecast"] = seeds[0]
    candidates = ["LSTM + forecast"]
    if len(seeds) > 1:
        name = f"LSTM + forecast, {len(seeds)}-seed mean"
        forecasts[name] = np.mean(seeds, axis=0)
        candidates.append(name)
    forecasts["LSTM ensemble + LightGBM + forecast (not served)"] = (
        forecasts[candidates[-1]] + forecasts["LightGBM + forecast"]
    ) / 2
    candidates.append("LSTM ensemble + LightGBM + forecast (not served)")
    ensembles = served_ensembles(tensors, models)
    forecasts.update(ensembles)
    candidates.extend(name for name in ensembles if name != BOOSTERS)
    times = tensors.times[ends]

    print("\npm2_5 RMSE (ug/m3) on the test windows\n")
    print(rmse_table(y, forecasts, tensors))
    print("\nDiebold-Mariano p vs persistence (two-sided; ✓ better, ✗ worse at 5 %)\n")
    print(against_persistence(y, forecasts, times, tensors))
    print("\nAgainst the baselines given the same inputs, per horizon 1-24 (DM at 5 %)\n")
    print(versus_same_inputs(y, candidates, forecasts, times, tensors))
    print("\nThe served ensemble per horizon vs the same inputs (DM, two-sided)\n")
    print(dm_table(y, forecasts, times, tensors, SERVED))
    print("\nThe bar\n")
    print(bar_table(y, candidates, forecasts, tensors))
    print(f"\n{time.perf_counter() - started:.0f} s wall; load average at the end "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
