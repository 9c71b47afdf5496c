"""Model features derived from an hourly observation frame: shared by training and serving.

Training (``sequence_tensors``, via :func:`feature_matrix` on a frame) and the Bento service
(via :func:`feature_array` on validated arrays) both derive features with
:func:`derived_features`, so a model sees at serving time exactly what it saw in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def input_columns(feature_names: Sequence[str]) -> list[str]:
    """The frame columns ``feature_names`` are computed from, in order: derived features
    name their sources (wind vector: speed and direction), calendar features none. What a
    completeness check must judge to judge what the model reads."""
    out: list[str] = []
    for name in feature_names:
        if name in CALENDAR_FEATURES:
            continue
        for column in ("windspeed", "winddir") if name in WIND_FEATURES else (name,):
            if column not in out:
                out.append(column)
    return out


def default_feature_names(targets: Sequence[str]) -> list[str]:
    """Targets' own past values first, then weather, then calendar encodings."""
    return [*targets, *DEFAULT_WEATHER_FEATURES, *CALENDAR_FEATURES]


def derived_features(times: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Calendar (sin/cos) and wind-vector columns from UTC ``datetime64`` times and raw columns.

    numpy only: the service calls this per request, where building a pandas frame would cost
    more than the model. Wind direction is circular, so it enters the model as a (u, v)
    vector scaled by speed; a calm hour (speed 0, direction unknown) is then simply (0, 0).
    """
    hours_since_epoch = np.asarray(times).astype("datetime64[h]").astype(np.int64)
    hour = (hours_since_epoch % 24).astype(np.float64)
    dow = ((hours_since_epoch // 24 + 3) % 7).astype(np.float64)  # 1970-01-01: a Thursday
    derived = {
        "hour_sin": np.sin(2 * np.pi * hour / 24.0),
        "hour_cos": np.cos(2 * np.pi * hour / 24.0),
        "dow_sin": np.sin(2 * np.pi * dow / 7.0),
        "dow_cos": np.cos(2 * np.pi * dow / 7.0),
    }
    if "windspeed" in columns and "winddir" in columns:
        speed = np.asarray(columns["windspeed"], dtype=np.float64)
        direction = np.deg2rad(np.asarray(columns["winddir"], dtype=np.float64))
        calm = speed == 0
        derived["wind_u"] = np.where(calm, 0.0, speed * np.sin(direction))
        derived["wind_v"] = np.where(calm, 0.0, speed * np.cos(direction))
    return derived


def _utc_datetime64(values: pd.Series) -> np.ndarray:
    times = pd.DatetimeIndex(values)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    return times.to_numpy(dtype="datetime64[ns]")


def add_derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with the :func:`derived_features` columns added."""
    out = frame.copy()
    columns = {c: out[c].to_numpy(dtype=np.float64) for c in ("windspeed", "winddir") if c in out}
    for name, values in derived_features(_utc_datetime64(out[TIME]), columns).items():
        out[name] = values
    return out


def feature_array(
    times: np.ndarray, columns: Mapping[str, np.ndarray], feature_names: Sequence[str]
) -> np.ndarray:
    """(hours, features) float32 matrix from arrays: the service's path to the same features.

    Raises :class:`MissingFeatureError` naming every feature neither given nor derivable.
    """
    derived = derived_features(times, columns)
    missing = [n for n in feature_names if n not in derived and n not in columns]
    if missing:
        raise MissingFeatureError(f"missing feature column(s) {missing}; have {sorted(columns)}")
    stacked = [derived[n] if n in derived else columns[n] for n in feature_names]
    return np.stack(stacked, axis=1).astype(np.float32)


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
