"""The forecasting network: a stacked LSTM that predicts the change from the last observation.

Why "persistence + delta": hourly pollution is strongly autocorrelated, so a network
predicting absolute levels spends its capacity re-learning "about the same as now" and loses
to persistence at short horizons; predicting the *change* from the last observed value
leaves the net only the correction to learn.

The model is **self-contained** (see :mod:`airquality_assets.ml.package`): it takes
``(batch, lookback, n_features)`` float32 in raw units and returns ``(batch, n_horizons,
n_targets)`` in ug/m3. Everything in between lives inside the graph, built only from stock
Keras layers so that ``keras.saving.load_model`` (Bento, ``mlflow.keras.load_model``, drift
jobs) needs no import of this module and no ``custom_objects``::

    raw x ──> Normalization(feature_mean, feature_std²)  ──> LSTM(tanh) ─> Dropout ─> ... ─>
          │                                                 Dense(h*t, linear) ─> Reshape(h, t)
          │                                                   = "delta_std" (standardised delta)
          │                                                 ─> Normalization(0, delta_std², invert)
          │                                                   = "delta" (ug/m3)
          └─> Cropping1D(last step) ─> Dense(one-hot, frozen) ─> RepeatVector(h) = "last_value"
                                                         last_value + delta ─> ReLU = "forecast"

The final ReLU clips negative concentrations to 0 (``clip_negative=True``, the default):
a forecast below zero is physically impossible, and the clip is exact for every
non-negative forecast, so it never changes a sensible prediction.

Training optimises MSE on ``delta_std`` (the *training view* of the same layers, see
:func:`training_view`), i.e. the error divided by ``delta_std``: the standard deviation of the
training windows' change from the last value, **per horizon and pollutant** (see
:func:`delta_scale`). Three reasons: pollutants differ by orders of magnitude (CO in the
thousands, NO in units), so a loss in (ug/m3)² would be dominated by one pollutant; the change
over 24 h is about four times larger than over 1 h, so with one scale per pollutant the loss
is dominated by the long horizons and the 1 h forecast is barely better than persistence;
and early-stopping / LR-plateau thresholds then mean the same thing for every dataset. The
served model is compiled with plain MSE/MAE in ug/m3 so ``model.evaluate`` reports real
units.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from airquality_assets.ml.forward import jit_forward  # noqa: F401  (its home; re-exported)

#: Layer names that form part of the contract with tests, tracking and serving.
INPUT_NAME = "observations"
FUTURE_INPUT_NAME = "forecast_weather"
DELTA_STD_LAYER = "delta_std"
DELTA_LAYER = "delta"
LAST_VALUE_LAYER = "last_value"
HEAD_LAYER = "delta_head"
OUTPUT_LAYER = "forecast"


@dataclass(frozen=True, kw_only=True)
class LSTMParams:
    """One grid-search candidate. Frozen and hashable so it can key caches and Dagster steps."""

    units: int
    layers: int = 2
    dropout: float
    learning_rate: float
    batch_size: int
    epochs: int
    patience: int = 5

    def __post_init__(self) -> None:
        # Fail at configuration time, not 20 minutes into a grid search.
        if self.units < 1 or self.layers < 1:
            raise ValueError(f"units and layers must be >= 1, got {self.units}, {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.learning_rate > 0.0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 1 or self.epochs < 1 or self.patience < 0:
            raise ValueError(
                "batch_size and epochs must be >= 1 and patience >= 0, got "
                f"{self.batch_size}, {self.epochs}, {self.patience}"
            )

    @property
    def name(self) -> str:
        """Stable identifier, e.g. ``u128_l2_do0p2_lr0p001_b32_e50_p5``.

        Only ``[A-Za-z0-9_]`` so it is valid as a Dagster op/step name, an MLflow run name and
        a file name; it depends on the values only, so re-running a grid gives the same names.
        """

        def fmt(value: float) -> str:
            return repr(float(value)).replace("-", "m").replace(".", "p").replace("+", "")

        return (
            f"u{self.units}_l{self.layers}_do{fmt(self.dropout)}_lr{fmt(self.learning_rate)}"
            f"_b{self.batch_size}_e{self.epochs}_p{self.patience}"
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain field dict (round-trips through :meth:`from_dict`; logged as MLflow params)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LSTMParams:
        """Inverse of :meth:`as_dict`; ignores unknown keys such as a stored ``name``."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _as_1d(values: Sequence[float] | np.ndarray, length: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (length,):
        raise ValueError(f"{what} must have {length} entries, got shape {array.shape}")
    return array


def _safe_std(std: np.ndarray) -> np.ndarray:
    """Replace zero / non-finite standard deviations by 1.

    A constant feature in the training split (e.g. precipitation in a dry month) would
    otherwise be divided by Keras' epsilon and blow up any non-constant serving input.
    """
    std = np.asarray(std, dtype=np.float64).copy()
    bad = ~np.isfinite(std) | (std <= 0.0)
    std[bad] = 1.0
    return std


def _delta_grid(
    delta_std: Sequence[float] | np.ndarray, n_horizons: int, n_targets: int
) -> np.ndarray:
    """``delta_std`` as a floored ``(n_horizons, n_targets)`` array.

    Accepts one scale per target (``(n_targets,)``, repeated for every horizon) or one per
    horizon and target (``(n_horizons, n_targets)``, what :func:`delta_scale` returns).
    """
    array = np.asarray(delta_std, dtype=np.float64)
    if array.shape in {(n_targets,), (1, n_targets)}:
        array = np.broadcast_to(array.reshape(1, n_targets), (n_horizons, n_targets))
    if array.shape != (n_horizons, n_targets):
        raise ValueError(
            f"delta_std must have shape ({n_targets},) or ({n_horizons}, {n_targets}), "
            f"got {array.shape}"
        )
    return _safe_std(array)


def delta_scale(
    X_train: np.ndarray, y_train: np.ndarray, target_feature_index: Sequence[int]
) -> np.ndarray:
    """Std of ``y - last observed value`` per horizon and target, over the *training* windows.

    This is the unit the network's head works in. Fit it on training windows only: it is
    frozen into the served model as a constant.
    """
    index = [int(i) for i in target_feature_index]
    if len(X_train) == 0:
        raise ValueError("delta_scale needs at least one training window")
    last = np.asarray(X_train[:, -1, index], dtype=np.float64)[:, None, :]
    deltas = np.asarray(y_train, dtype=np.float64) - last
    with np.errstate(invalid="ignore"):
        return _safe_std(np.nanstd(deltas, axis=0))


def build_lstm(
    params: LSTMParams,
    *,
    lookback: int,
    n_features: int,
    n_horizons: int,
    n_targets: int,
    target_feature_index: Sequence[int],
    feature_mean: Sequence[float] | np.ndarray,
    feature_std: Sequence[float] | np.ndarray,
    delta_std: Sequence[float] | np.ndarray,
    clip_negative: bool = True,
    future_mean: Sequence[float] | np.ndarray | None = None,
    future_std: Sequence[float] | np.ndarray | None = None,
) -> Any:
    """Build the self-contained forecaster and compile it (Adam, MSE, MAE in ug/m3).

    With ``future_mean``/``future_std`` (one per forecast feature) the model takes a second
    input, ``forecast_weather`` ``(batch, n_horizons, n_future)`` in raw units: the weather
    forecast issued at the window's end for the target hours ``1..n_horizons`` (see
    :func:`_forecast_decoder`).

    ``target_feature_index[j]`` is the column of target pollutant ``j`` inside the features;
    its last observed value is the persistence forecast the network corrects.
    ``feature_mean``/``feature_std`` (per feature) and ``delta_std`` (per target, or per
    horizon and target as from :func:`delta_scale`) must be fitted on the training split only;
    they are frozen into the graph as constants.
    """
    import keras

    index = [int(i) for i in target_feature_index]
    if len(index) != n_targets:
        raise ValueError(f"target_feature_index has {len(index)} entries, n_targets={n_targets}")
    if any(not 0 <= i < n_features for i in index):
        raise ValueError(f"target_feature_index {index} out of range for {n_features} features")
    mean = _as_1d(feature_mean, n_features, "feature_mean")
    f_std = _safe_std(_as_1d(feature_std, n_features, "feature_std"))
    d_std = _delta_grid(delta_std, n_horizons, n_targets)

    inputs = keras.Input(shape=(lookback, n_features), dtype="float32", name=INPUT_NAME)
    future = None
    if future_mean is not None:
        n_future = len(np.asarray(future_mean).reshape(-1))
        u_mean = _as_1d(future_mean, n_future, "future_mean")
        u_std = _safe_std(
            _as_1d(future_std if future_std is not None else [], n_future, "future_std")
        )
        future = keras.Input(shape=(n_horizons, n_future), dtype="float32", name=FUTURE_INPUT_NAME)

    # Persistence branch: raw last observation of each target column. A frozen one-hot Dense
    # is an exact gather (x*1 + others*0) built from a stock layer, so it serialises anywhere.
    last_step = keras.layers.Cropping1D(cropping=(lookback - 1, 0), name="last_step")(inputs)
    last_step = keras.layers.Reshape((n_features,), name="last_step_flat")(last_step)
    selector = np.zeros((n_features, n_targets), dtype=np.float32)
    selector[index, np.arange(n_targets)] = 1.0
    last_target = keras.layers.Dense(
        n_targets,
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(selector),
        name="select_targets",
    )(last_step)
    last_value = keras.layers.RepeatVector(n_horizons, name=LAST_VALUE_LAYER)(last_target)

    # Learned branch: standardised inputs -> stacked LSTM -> standardised delta per horizon.
    x = keras.layers.Normalization(
        axis=-1, mean=mean.tolist(), variance=(f_std**2).tolist(), name="standardise"
    )(inputs)
    for layer in range(params.layers):
        last = layer == params.layers - 1
        x = keras.layers.LSTM(
            params.units,
            activation="tanh",
            return_sequences=not last,
            name=f"lstm_{layer + 1}",
        )(x)
        if params.dropout > 0:
            x = keras.layers.Dropout(params.dropout, name=f"dropout_{layer + 1}")(x)
    if future is None:
        x = keras.layers.Dense(n_horizons * n_targets, activation="linear", name=HEAD_LAYER)(x)
        delta_scaled = keras.layers.Reshape((n_horizons, n_targets), name=DELTA_STD_LAYER)(x)
    else:
        delta_scaled = _forecast_decoder(
            keras, params, x, future, u_mean, u_std, n_horizons, n_targets
        )
    # invert=True computes mean + x * sqrt(variance): back to ug/m3.
    delta = keras.layers.Normalization(
        axis=(-2, -1),
        mean=np.zeros_like(d_std).tolist(),
        variance=(d_std**2).tolist(),
        invert=True,
        name=DELTA_LAYER,
    )(delta_scaled)

    outputs = keras.layers.Add(name="persistence_plus_delta")([last_value, delta])
    if clip_negative:
        outputs = keras.layers.ReLU(name=OUTPUT_LAYER)(outputs)
    else:
        outputs = keras.layers.Identity(name=OUTPUT_LAYER)(outputs)

    model_inputs = inputs if future is None else [inputs, future]
    model = keras.Model(model_inputs, outputs, name="airquality_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=params.learning_rate),
        loss="mse",
        metrics=["mae"],
    )
    # Build the optimizer now: train_lstm trains through the training view with this same
    # optimizer instance, and a saved-but-never-trained model would otherwise warn on load
    # ("Skipping variable loading for optimizer") because its saved optimizer is empty.
    model.optimizer.build(model.trainable_variables)
    return model


def _forecast_decoder(
    keras: Any,
    params: LSTMParams,
    encoded: Any,
    future: Any,
    future_mean: np.ndarray,
    future_std: np.ndarray,
    n_horizons: int,
    n_targets: int,
) -> Any:
    """The target hours' standardised deltas from the encoded past and each hour's forecast.

    Each target hour reads the encoder's summary of the past beside its own forecast; a
    bidirectional LSTM runs over the target hours (so hour 12 sees the weather of hours 11
    and 13: a front arriving) and a per-hour dense head turns each step into that hour's
    delta. Measured on the fixed split against the alternatives the issue names (a dense
    branch beside the LSTM, a seq2seq decoder started from the encoder state): see
    docs/decisions.md.
    """
    weather = keras.layers.Normalization(
        axis=-1,
        mean=future_mean.tolist(),
        variance=(future_std**2).tolist(),
        name="standardise_forecast",
    )(future)
    context = keras.layers.RepeatVector(n_horizons, name="past_per_target_hour")(encoded)
    steps = keras.layers.Concatenate(name="decoder_inputs")([weather, context])
    half = max(1, params.units // 2)
    steps = keras.layers.Bidirectional(
        keras.layers.LSTM(half, activation="tanh", return_sequences=True), name="decoder"
    )(steps)
    if params.dropout > 0:
        steps = keras.layers.Dropout(params.dropout, name="decoder_dropout")(steps)
    steps = keras.layers.Concatenate(name="decoder_and_forecast")([steps, weather])
    steps = keras.layers.Dense(params.units, activation="relu", name="per_hour_hidden")(steps)
    steps = keras.layers.Dense(n_targets, activation="linear", name=HEAD_LAYER)(steps)
    return keras.layers.Identity(name=DELTA_STD_LAYER)(steps)


def training_view(model: Any) -> Any:
    """The sub-model ``raw input -> standardised delta`` sharing ``model``'s layers/weights.

    Fitting it trains the served model in place; its loss is MSE in target-std units.
    """
    import keras

    return keras.Model(model.inputs, model.get_layer(DELTA_STD_LAYER).output, name="train_view")


def scaled_delta_targets(
    X: np.ndarray,
    y: np.ndarray,
    target_feature_index: Sequence[int],
    delta_std: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """``(y - last observed target) / delta_std``: what :func:`training_view` predicts."""
    index = [int(i) for i in target_feature_index]
    y = np.asarray(y, dtype=np.float64)
    d_std = _delta_grid(delta_std, y.shape[1], len(index))
    last = np.asarray(X[:, -1, index], dtype=np.float64)[:, None, :]
    return ((y - last) / d_std).astype(np.float32)


def train_lstm(
    params: LSTMParams,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    target_feature_index: Sequence[int],
    feature_mean: Sequence[float] | np.ndarray,
    feature_std: Sequence[float] | np.ndarray,
    delta_std: Sequence[float] | np.ndarray | None = None,
    seed: int = 42,
    verbose: int = 0,
    extra_callbacks: Sequence[Any] | None = None,
    clip_negative: bool = True,
    future_train: np.ndarray | None = None,
    future_val: np.ndarray | None = None,
    future_mean: Sequence[float] | np.ndarray | None = None,
    future_std: Sequence[float] | np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]], float]:
    """Build and fit one candidate; return ``(served_model, history, fit_seconds)``.

    ``history`` holds per-epoch ``loss``/``val_loss`` (MSE) and ``mae``/``val_mae`` in
    *delta_std units* (see module docstring) plus ``learning_rate``. ``delta_std=None`` (the
    default) fits it per horizon on the training windows with :func:`delta_scale`. The
    returned model carries the weights of the best validation epoch (EarlyStopping with
    ``restore_best_weights``). ``keras.utils.set_random_seed(seed)`` makes initialisation,
    shuffling and dropout reproducible for a given seed on the same machine.

    ``future_train``/``future_val`` (the windows' forecast blocks, raw units) with
    ``future_mean``/``future_std`` (fitted on the training windows) build and fit the
    two-input model of :func:`build_lstm`.
    """
    import keras

    X_train = np.asarray(X_train, dtype=np.float32)
    X_val = np.asarray(X_val, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.float32)
    y_val = np.asarray(y_val, dtype=np.float32)
    if X_train.ndim != 3 or y_train.ndim != 3:
        raise ValueError(f"X and y must be 3-D, got {X_train.shape} and {y_train.shape}")
    if len(X_train) != len(y_train) or len(X_val) != len(y_val):
        raise ValueError("X and y must have the same number of windows")
    if len(X_train) == 0 or len(X_val) == 0:
        raise ValueError("train and validation sets must not be empty")
    _, lookback, n_features = X_train.shape
    _, n_horizons, n_targets = y_train.shape
    if delta_std is None:
        delta_std = delta_scale(X_train, y_train, target_feature_index)
    with_future = future_train is not None
    if with_future and (future_val is None or future_mean is None):
        raise ValueError("future_train needs future_val and future_mean/future_std")
    if with_future and (len(future_train) != len(X_train) or len(future_val) != len(X_val)):
        raise ValueError("the forecast blocks must have one entry per window")

    keras.utils.set_random_seed(seed)
    model = build_lstm(
        params,
        lookback=lookback,
        n_features=n_features,
        n_horizons=n_horizons,
        n_targets=n_targets,
        target_feature_index=target_feature_index,
        feature_mean=feature_mean,
        feature_std=feature_std,
        delta_std=delta_std,
        clip_negative=clip_negative,
        future_mean=future_mean if with_future else None,
        future_std=future_std if with_future else None,
    )
    view = training_view(model)
    # Same optimizer instance as the served model: its state (moments, step) is saved with
    # the package, so a loaded model can be fine-tuned where training stopped.
    view.compile(optimizer=model.optimizer, loss="mse", metrics=["mae"])
    target_train = scaled_delta_targets(X_train, y_train, target_feature_index, delta_std)
    target_val = scaled_delta_targets(X_val, y_val, target_feature_index, delta_std)

    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params.patience, restore_best_weights=True
        ),
        # Halve the LR before early stopping gives up: a lower LR was what made the
        # delta model beat persistence in planning.
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=0.5,
            patience=max(1, params.patience // 2),
            min_lr=min(1e-6, params.learning_rate),
        ),
        *(extra_callbacks or []),
    ]
    start = time.perf_counter()
    inputs_train: Any = X_train
    inputs_val: Any = X_val
    if with_future:
        inputs_train = [X_train, np.asarray(future_train, dtype=np.float32)]
        inputs_val = [X_val, np.asarray(future_val, dtype=np.float32)]
    history = view.fit(
        inputs_train,
        target_train,
        validation_data=(inputs_val, target_val),
        epochs=params.epochs,
        batch_size=params.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    fit_seconds = time.perf_counter() - start
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    return model, curves, fit_seconds


def epoch_progress(log: Callable[[str], None], prefix: str, total_epochs: int) -> Any:
    """A Keras callback sending one line per finished epoch to ``log`` (e.g. Dagster's log).

    A full-profile candidate trains for minutes per epoch; without this the Dagster UI shows
    nothing between "training candidate" and its result.
    """
    import keras

    started: dict[str, float] = {}

    def on_epoch_begin(_epoch: int, _logs: dict[str, Any] | None = None) -> None:
        started["t"] = time.perf_counter()

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        values = ", ".join(
            f"{key} {float(logs[key]):.4g}"
            for key in ("loss", "val_loss", "learning_rate")
            if key in logs
        )
        seconds = time.perf_counter() - started.get("t", time.perf_counter())
        log(f"{prefix}: epoch {epoch + 1}/{total_epochs}: {values} ({seconds:.1f} s)")

    return keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end)
