"""A logged MLflow model as the forward serves it: the Keras LSTM, or the LSTM with the
LightGBM boosters and weights logged beside it on the same run (``ensemble/``).

Why one loader: training's test scores, the promotion gate, the loop's champion forward and
the export to BentoML must all run the model that is served; each used to call
``mlflow.keras.load_model`` and would have scored the LSTM alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airquality_assets.ml.ensemble import ENSEMBLE_FILE, EnsembleModel, load_ensemble, save_ensemble

#: Where on a run the ensemble's boosters and weights live (its member is the run's model).
ENSEMBLE_ARTIFACT = "ensemble"


def log_ensemble(client: Any, run_id: str, ensemble: EnsembleModel) -> None:
    """Boosters, weights and names on ``run_id`` (its logged Keras model is the member)."""
    if len(ensemble.members) != 1:
        raise ValueError("a logged ensemble has one member: the run's own Keras model")
    with tempfile.TemporaryDirectory(prefix="aq-ensemble-") as tmp:
        save_ensemble(ensemble, tmp, members=False)
        client.log_artifacts(run_id, tmp, ENSEMBLE_ARTIFACT)


def run_of(model_uri: str) -> str | None:
    """The run a model URI was logged by: ``runs:/<run>/...``, ``models:/<name>/<version>``
    or ``models:/<model id>``; None when it cannot be told."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        if model_uri.startswith("runs:/"):
            return model_uri.split("/")[1]
        if model_uri.startswith("models:/"):
            parts = model_uri[len("models:/") :].split("/")
            if len(parts) >= 2:
                version = mlflow.MlflowClient().get_model_version(parts[0], parts[1])
                if version.run_id:
                    return version.run_id
                if version.source and version.source.startswith("models:/"):
                    return run_of(version.source)  # registered from a logged model's URI
                return None
            return mlflow.get_logged_model(parts[0]).source_run_id
    except MlflowException:
        return None
    return None


def load_logged_model(model_uri: str) -> Any:
    """The Keras model at ``model_uri``, wrapped with its run's ensemble when it has one."""
    import mlflow
    import mlflow.keras
    from mlflow.exceptions import MlflowException

    model = mlflow.keras.load_model(model_uri)
    run_id = run_of(model_uri)
    if run_id is None:
        return model
    with tempfile.TemporaryDirectory(prefix="aq-ensemble-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=ENSEMBLE_ARTIFACT, dst_path=tmp
            )
        except (MlflowException, OSError):
            return model  # an LSTM-only version (logged before ensembles, or without one)
        if not (Path(local) / ENSEMBLE_FILE).exists():
            return model
        return load_ensemble(local, members=[model])
