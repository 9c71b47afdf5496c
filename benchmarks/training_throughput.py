"""Training throughput: the project's ``train_lstm`` vs a plain Keras script, same run.

Why: ``train_lstm`` adds in-model scaling, a persistence branch, a training view, early
stopping and LR scheduling around ``model.fit``. This checks that the wrapping costs
(nearly) nothing per epoch, by timing both on identical synthetic tensors (~20k windows x
24 h x 14 features), the same architecture, batch size and optimizer, after one warm-up
epoch that absorbs JAX compilation. The ratio (ours / plain) is what to read: absolute
seconds depend on the machine and on whoever else is using its cores.

Run from the project root::

    .venv/bin/python -m benchmarks.training_throughput            # ~2-3 min on 2 busy cores
    .venv/bin/python -m benchmarks.training_throughput --epochs 4 --windows 30000
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from typing_extensions import override

import airquality_assets  # noqa: F401  (KERAS_BACKEND=jax before keras)
from airquality_assets.ml.model import (
    LSTMParams,
    delta_scale,
    scaled_delta_targets,
    train_lstm,
)


def synthetic_tensors(
    n_windows: int, lookback: int, n_features: int, n_horizons: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Raw-unit windows (pollutant in column 0 around 80 ug/m3) and next-24 h targets."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n_windows, lookback, n_features)).astype(np.float32)
    X[:, :, 0] = 80.0 + 30.0 * X[:, :, 0]
    X[:, :, 1:] = 10.0 + 5.0 * X[:, :, 1:]
    y = X[:, -1:, :1] + rng.normal(0.0, 10.0, (n_windows, n_horizons, 1)).astype(np.float32)
    return X, y


def make_epoch_timer() -> tuple[Any, list[float]]:
    """A Keras callback appending each epoch's wall time (train + validation) to a list."""
    import keras

    durations: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        @override
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._start = time.perf_counter()

        @override
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            durations.append(time.perf_counter() - self._start)

    return EpochTimer(), durations


def plain_keras_fit(
    params: LSTMParams,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    callback: Any,
) -> None:
    """The script one would write by hand: Sequential LSTM stack + Dense head, model.fit."""
    import keras

    keras.utils.set_random_seed(0)
    n_horizons, n_targets = y_train.shape[1:]
    layers: list[Any] = [
        keras.Input(shape=X_train.shape[1:]),
        keras.layers.Normalization(mean=mean.tolist(), variance=(std**2).tolist()),
    ]
    for i in range(params.layers):
        layers.append(keras.layers.LSTM(params.units, return_sequences=i < params.layers - 1))
        layers.append(keras.layers.Dropout(params.dropout))
    layers += [
        keras.layers.Dense(n_horizons * n_targets),
        keras.layers.Reshape((n_horizons, n_targets)),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate), loss="mse", metrics=["mae"]
    )
    model.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        epochs=params.epochs,
        batch_size=params.batch_size,
        shuffle=True,
        callbacks=[callback],
        verbose=0,
    )


def summarise(label: str, durations: list[float], n_train: int) -> float:
    steady = durations[1:] or durations
    per_epoch = statistics.median(steady)
    print(
        f"{label:<22} warm-up {durations[0]:7.2f} s | steady {per_epoch:6.2f} s/epoch "
        f"(median of {len(steady)}) | {n_train / per_epoch:8.0f} windows/s"
    )
    return per_epoch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--lookback", type=int, default=24)
    parser.add_argument("--features", type=int, default=14)
    parser.add_argument("--horizons", type=int, default=24)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="including the warm-up epoch")
    parser.add_argument("--plain-first", action="store_true", help="time the plain script first")
    args = parser.parse_args(argv)

    import jax
    import keras

    X, y = synthetic_tensors(args.windows, args.lookback, args.features, args.horizons)
    n_val = max(1, args.windows // 10)
    X_train, y_train, X_val, y_val = X[:-n_val], y[:-n_val], X[-n_val:], y[-n_val:]
    flat = X_train.reshape(-1, args.features)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    delta_std = delta_scale(X_train, y_train, [0])
    # patience >= epochs: nothing stops early, both runs do the same number of epochs.
    params = LSTMParams(
        units=args.units,
        layers=args.layers,
        dropout=0.2,
        learning_rate=1e-3,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.epochs,
    )
    print(
        f"keras {keras.__version__} / jax {jax.__version__} on {jax.device_count()} "
        f"{jax.default_backend()} device(s); train {X_train.shape} -> {y_train.shape}, "
        f"val {len(X_val)}; {params.name}"
    )

    def run_ours() -> tuple[list[float], float, float]:
        timer, durations = make_epoch_timer()
        start = time.perf_counter()
        _, _, fit_seconds = train_lstm(
            params,
            X_train,
            y_train,
            X_val,
            y_val,
            target_feature_index=[0],
            feature_mean=mean,
            feature_std=std,
            delta_std=delta_std,
            seed=0,
            extra_callbacks=[timer],
        )
        return durations, time.perf_counter() - start, fit_seconds

    def run_plain() -> tuple[list[float], float]:
        timer, durations = make_epoch_timer()
        start = time.perf_counter()
        plain_keras_fit(
            params,
            X_train,
            scaled_delta_targets(X_train, y_train, [0], delta_std),
            X_val,
            scaled_delta_targets(X_val, y_val, [0], delta_std),
            mean,
            std,
            timer,
        )
        return durations, time.perf_counter() - start

    # Order matters on a shared machine (load changes over minutes): --plain-first swaps it.
    if args.plain_first:
        plain, plain_total = run_plain()
        ours, ours_total, fit_seconds = run_ours()
    else:
        ours, ours_total, fit_seconds = run_ours()
        plain, plain_total = run_plain()

    ours_epoch = summarise("train_lstm", ours, len(X_train))
    plain_epoch = summarise("plain keras fit", plain, len(X_train))
    print(
        f"{'total (build+fit)':<22} train_lstm {ours_total:.1f} s (fit {fit_seconds:.1f} s), "
        f"plain {plain_total:.1f} s"
    )
    print(f"ratio train_lstm / plain (steady s/epoch): {ours_epoch / plain_epoch:.3f}")


if __name__ == "__main__":
    main()
