"""Model features derived from an hourly observation frame: shared by training and serving.

Training (``sequence_tensors``) and the Bento service both call :func:`feature_matrix`, so
the columns a model sees at serving time are computed exactly as during training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from airquality_assets.columns import TIME

CALENDAR_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
WIND_FEATURES: tuple[str, ...] = ("wind_u", "wind_v")
DEFAULT_WEATHER_FEATURES: tuple[str, ...] = (
    "temp",
    "dew",
    "humidity",
    "pressure",
    "windspeed",
    "wind_u",
    "wind_v",
    "is_rain",
    "is_snow",
)


class MissingFeatureError(KeyError):
    """Raised when a frame lacks a column a model needs; names every missing column."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class EmptyFeatureError(ValueError):
    """An explicitly requested feature has no value at all in the training period."""


def derivable_columns(frame: pd.DataFrame) -> set[str]:
    """Columns :func:`feature_matrix` can produce from ``frame`` (its own plus derived ones)."""
    names = set(map(str, frame.columns))
    if TIME in names:
        names.update(CALENDAR_FEATURES)
    if {"windspeed", "winddir"} <= names:
        names.update(WIND_FEATURES)
    return names


def default_feature_names(targets: Sequence[str]) -> list[str]:
    """Targets' own past values first, then weather, then calendar encodings."""
    return [*targets, *DEFAULT_WEATHER_FEATURES, *CALENDAR_FEATURES]


def add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with calendar (sin/cos) and wind-vector columns added.

    Wind direction is circular, so it enters the model as a (u, v) vector scaled by speed;
    a calm hour (speed 0, direction unknown) is then simply (0, 0).
    """
    out = frame.copy()
    times = pd.DatetimeIndex(out[TIME])
    hour = times.hour.to_numpy(dtype=np.float64)
    dow = times.dayofweek.to_numpy(dtype=np.float64)
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)
    out["dow_sin"] = np.sin(2 * np.pi * dow / 7.0)
    out["dow_cos"] = np.cos(2 * np.pi * dow / 7.0)
    if "windspeed" in out and "winddir" in out:
        speed = out["windspeed"].to_numpy(dtype=np.float64)
        direction = np.deg2rad(out["winddir"].to_numpy(dtype=np.float64))
        calm = speed == 0
        out["wind_u"] = np.where(calm, 0.0, speed * np.sin(direction))
        out["wind_v"] = np.where(calm, 0.0, speed * np.cos(direction))
    return out


def feature_matrix(frame: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """(hours, features) float32 matrix in ``feature_names`` order; NaN stays NaN.

    Raises :class:`MissingFeatureError` naming every column that is absent, rather than
    failing on the first one, so a user fixes their input in one go.
    """
    derived = add_derived_features(frame)
    missing = [name for name in feature_names if name not in derived.columns]
    if missing:
        raise MissingFeatureError(
            f"missing feature column(s) {missing}; the frame has {sorted(frame.columns)}"
        )
    return derived[list(feature_names)].to_numpy(dtype=np.float32)
