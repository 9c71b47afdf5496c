"""A station without dew point, humidity, pressure or a precipitation type trains with the
default feature set (the columns it never reports are left out, not invented)."""

from __future__ import annotations

import numpy as np
import pytest

from airquality_assets.ml.model import LSTMParams, train_lstm
from airquality_assets.transforms.windowing import SplitSpec, build_sequence_tensors, windows
from airquality_assets_tests.transforms.test_windowing import make_frame

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_station_without_dew_humidity_pressure_trains_with_the_defaults() -> None:
    frame = make_frame(24 * 60).drop(columns=["pressure"])
    frame[["dew", "humidity", "is_rain", "is_snow"]] = np.nan
    tensors = build_sequence_tensors(
        frame,
        None,
        ["pm2_5"],
        lookback=12,
        horizons=range(1, 4),
        split=SplitSpec(train_end=None, validation_end=None),
    )
    assert set(tensors.dropped_features) == {"pressure", "dew", "humidity", "is_rain", "is_snow"}
    x_train, y_train = windows(tensors, "train")
    x_val, y_val = windows(tensors, "validation")
    model, history, _ = train_lstm(
        LSTMParams(units=8, layers=1, dropout=0.0, learning_rate=1e-2, batch_size=64, epochs=2),
        x_train,
        y_train,
        x_val,
        y_val,
        target_feature_index=[tensors.feature_names.index("pm2_5")],
        feature_mean=tensors.scaler.feature_mean,
        feature_std=tensors.scaler.feature_std,
        seed=1,
    )
    assert np.isfinite(history["val_loss"]).all()
    forecast = np.asarray(model.predict(x_val[:4], verbose=0))
    assert forecast.shape == (4, 3, 1) and np.isfinite(forecast).all()
