"""The model package: the one hand-over format between training, MLflow, BentoML and drift.

A package is a directory holding ``model.keras`` (a self-contained Keras 3 model: input
``(batch, lookback, n_features)`` float32 in raw units in ``feature_names`` order, and when
``future_feature_names`` is set a second input ``(batch, max horizon, n_future)``: the
weather forecast of the target hours; output
``(batch, n_horizons, n_targets)`` in ug/m3, any scaling done by layers inside the model)
and ``metadata.json`` (:class:`ModelMetadata`). Keras is imported only inside the functions
that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
#: The model's name in the MLflow registry and in the BentoML store, unless
#: ``AIRQUALITY_MODEL_NAME`` says otherwise (read by ``Settings`` and ``ServiceConfig``).
DEFAULT_MODEL_NAME = "airquality-lstm"


@dataclass
class ModelMetadata:
    """What serving and drift detection need to use a model without its training run."""

    feature_names: list[str]
    target_pollutants: list[str]
    lookback: int
    horizons: list[int]
    training_window: dict[str, str]  # {"start": iso, "end": iso}
    model_name: str = DEFAULT_MODEL_NAME
    model_version: str = "unregistered"
    test_metrics: dict[str, Any] = field(default_factory=dict)
    # per feature: {"quantiles": [...], "mean": m, "std": s, "sample": [...]} of training rows
    reference_profile: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: The forecast weather the model reads for its target hours (its second input,
    #: ``(batch, max horizon, len)``, raw units); empty for a model of observations only.
    future_feature_names: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        return cls(**json.loads(text))


def write_metadata(metadata: ModelMetadata, directory: str | os.PathLike[str]) -> Path:
    """Write ``metadata.json`` atomically."""
    # Imported here: the bento carries this module for reading packages, not storage's
    # dependencies (pandas, pyarrow).
    from airquality_assets.storage import atomic_write_bytes

    return atomic_write_bytes(Path(directory) / METADATA_FILE, metadata.to_json().encode())


def read_metadata(directory: str | os.PathLike[str]) -> ModelMetadata:
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {METADATA_FILE} in model package {directory}")
    return ModelMetadata.from_json(path.read_text(encoding="utf-8"))


def save_package(model: Any, metadata: ModelMetadata, directory: str | os.PathLike[str]) -> Path:
    """Save a Keras model (or an LSTM + LightGBM ensemble) and its metadata as a package
    directory."""
    from airquality_assets.ml.ensemble import EnsembleModel, save_ensemble

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, EnsembleModel):
        save_ensemble(model, directory)
    else:
        model.save(directory / MODEL_FILE)
    write_metadata(metadata, directory)
    return directory


def load_package(directory: str | os.PathLike[str]) -> tuple[Any, ModelMetadata]:
    """Load ``(keras_model, metadata)`` from a package directory; an ensemble package
    (``ensemble.json`` beside ``model.keras``) loads as its ``EnsembleModel``."""
    import keras

    from airquality_assets.ml.ensemble import is_ensemble_package, load_ensemble

    directory = Path(directory)
    if is_ensemble_package(directory):
        return load_ensemble(directory), read_metadata(directory)
    model = keras.saving.load_model(directory / MODEL_FILE)
    return model, read_metadata(directory)
