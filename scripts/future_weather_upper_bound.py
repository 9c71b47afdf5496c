"""How much would forecast weather for the target hours help? An upper bound, measured.

The served model sees only the past 24 hours (the serving contract), and on the bundled data
it misses the issue's RMSE-ratio targets (docs/results.md, "Full profile"). This
script trains two nets with the winning `full` settings on the same split, from the frames a
five-year demo run wrote (``bash scripts/demo.sh --start 2010-01-01``):

* ``past only``: the product's own :func:`train_lstm` model;
* ``+ target-hour weather``: the same LSTM plus a dense branch fed with the *observed*
  weather of the 24 target hours, standing in for a perfect weather forecast.

Real forecasts have errors, so the second row is an upper bound, not a promise. Nothing here
is part of the product: building it means changing the serving request, ingestion and
``sequence_tensors`` (see docs/decisions.md). About 5 minutes on 2 cores::

    .venv/bin/python scripts/future_weather_upper_bound.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from airquality_assets.ml.baselines import baseline_forecasts
from airquality_assets.ml.evaluation import forecast_metrics
from airquality_assets.ml.model import (
    LSTMParams,
    delta_scale,
    jit_forward,
    scaled_delta_targets,
    train_lstm,
)
from airquality_assets.ml.training_steps import predict
from airquality_assets.settings import Settings
from airquality_assets.storage import read_frames
from airquality_assets.transforms.windowing import SequenceTensors, build_sequence_tensors, windows

WEATHER = ("temp", "dew", "humidity", "pressure", "wind_u", "wind_v")
WINNER = LSTMParams(
    units=128, layers=2, dropout=0.2, learning_rate=1e-3, batch_size=32, epochs=50, patience=3
)
SHOWN = (1, 6, 12, 24)


def target_hour_weather(tensors: SequenceTensors, split: str) -> np.ndarray:
    """Standardised observed weather of the ``max_horizon`` hours after each window end."""
    columns = [tensors.feature_names.index(name) for name in WEATHER]
    rows = tensors.ends[split][:, None] + np.arange(1, tensors.max_horizon + 1)[None, :]
    mean = tensors.scaler.feature_mean[columns]
    std = tensors.scaler.feature_std[columns]
    future = (tensors.features[rows][:, :, columns] - mean) / std
    return np.nan_to_num(future).reshape(len(rows), -1).astype(np.float32)


def train_with_future_weather(
    tensors: SequenceTensors,
    params: LSTMParams,
    cut: dict[str, tuple[np.ndarray, np.ndarray]],
    index: list[int],
) -> np.ndarray:
    """Test forecasts (ug/m3) of the LSTM + target-hour-weather net, trained like the product.

    ``cut`` holds the ``(X, y)`` windows per split, already cut once by :func:`main`.
    """
    import keras

    (x_tr, y_tr), (x_va, y_va), (x_te, _) = (cut[s] for s in ("train", "validation", "test"))
    f_tr, f_va, f_te = (target_hour_weather(tensors, s) for s in ("train", "validation", "test"))
    scale = delta_scale(x_tr, y_tr, index)

    keras.utils.set_random_seed(42)
    past = keras.Input(shape=x_tr.shape[1:])
    future = keras.Input(shape=f_tr.shape[1:])
    h = keras.layers.Normalization(
        mean=tensors.scaler.feature_mean.tolist(),
        variance=(tensors.scaler.feature_std**2).tolist(),
    )(past)
    for layer in range(params.layers):
        h = keras.layers.LSTM(params.units, return_sequences=layer < params.layers - 1)(h)
        h = keras.layers.Dropout(params.dropout)(h)
    h = keras.layers.Concatenate()([h, keras.layers.Dense(64, activation="tanh")(future)])
    out = keras.layers.Reshape(y_tr.shape[1:])(keras.layers.Dense(int(np.prod(y_tr.shape[1:])))(h))
    model = keras.Model([past, future], out)
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="mse")
    model.fit(
        [x_tr, f_tr],
        scaled_delta_targets(x_tr, y_tr, index, scale),
        validation_data=([x_va, f_va], scaled_delta_targets(x_va, y_va, index, scale)),
        epochs=params.epochs,
        batch_size=params.batch_size,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=params.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_lr=1e-6),
        ],
        verbose=0,
    )
    scaled = model.predict([x_te, f_te], batch_size=4096, verbose=0)
    return np.maximum(scaled * scale + x_te[:, -1, index][:, None, :], 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--location", default="beijing")
    parser.add_argument("--epochs", type=int, default=WINNER.epochs)
    args = parser.parse_args(argv)

    frames = Settings.from_env().data_dir / "frames" / "hourly_observations" / args.location
    paths = sorted(frames.glob("*.parquet"))
    if not paths:
        raise SystemExit(f"no frames in {frames}: run `bash scripts/demo.sh --start 2010-01-01`")
    frame = read_frames(paths).sort_values(["location", "time"]).reset_index(drop=True)
    tensors = build_sequence_tensors(frame, None, ["pm2_5"])
    print({split: len(ends) for split, ends in tensors.ends.items()}, flush=True)
    params = LSTMParams.from_dict({**WINNER.as_dict(), "epochs": args.epochs})

    cut = {split: windows(tensors, split) for split in ("train", "validation", "test")}
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = cut["train"], cut["validation"], cut["test"]
    index = [c for c in tensors.target_columns if c is not None]
    forecasts = dict(baseline_forecasts(tensors, tensors.ends["test"]))
    started = time.perf_counter()
    model, _, _ = train_lstm(
        params,
        x_tr,
        y_tr,
        x_va,
        y_va,
        target_feature_index=index,
        feature_mean=tensors.scaler.feature_mean,
        feature_std=tensors.scaler.feature_std,
    )
    forecasts["past only"] = predict(jit_forward(model), x_te)
    print(f"past only: trained in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    forecasts["+ target-hour weather"] = train_with_future_weather(tensors, params, cut, index)
    print(f"+ target-hour weather: trained in {time.perf_counter() - started:.0f} s", flush=True)

    rmse = {
        name: forecast_metrics(y_te, f, tensors.target_names, tensors.horizons).set_index(
            "horizon"
        )["rmse"]
        for name, f in forecasts.items()
    }
    persistence = rmse["persistence"]
    hours = " | ".join(f"{h} h" for h in SHOWN)
    print(f"\npm2_5 test RMSE (ug/m3) | {hours} | mean | ratio vs persistence at 1/6/24 h")
    for name in ("persistence", "ridge", "past only", "+ target-hour weather"):
        r = rmse[name]
        ratios = " / ".join(f"{r[h] / persistence[h]:.3f}" for h in (1, 6, 24))
        print(
            f"{name:24s} | {' | '.join(f'{r[h]:.1f}' for h in SHOWN)} | {r.mean():.1f} | {ratios}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
