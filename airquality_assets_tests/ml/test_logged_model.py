"""The ensemble logged on an MLflow run loads back as the forward that serves: through the
logged model's URI and through a registered version's; an LSTM-only run stays an LSTM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airquality_assets.ml.ensemble import EnsembleModel
from airquality_assets.ml.forward import jit_forward
from airquality_assets.ml.logged_model import load_logged_model, log_ensemble
from airquality_assets.ml.package import load_package
from airquality_assets.ml.tracking import default_artifact_location, default_tracking_uri
from airquality_assets_tests.serving.conftest import FORECAST_HOURS, build_ensemble_package


@pytest.fixture
def tracking(tmp_path: Path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(default_tracking_uri(tmp_path))
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("e", f"{default_artifact_location(tmp_path)}/e")
    yield client, experiment
    mlflow.set_tracking_uri(previous)


def test_a_logged_ensemble_loads_as_the_served_forward(tracking, tmp_path: Path) -> None:
    import mlflow
    import mlflow.keras

    client, experiment = tracking
    ensemble, _ = load_package(build_ensemble_package(tmp_path / "pkg"))
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 50, (4, 24, len(ensemble.feature_names))).astype(np.float32)
    future = rng.uniform(0, 30, (4, FORECAST_HOURS, len(ensemble.future_names)))
    arrays = [x, future.astype(np.float32)]
    expected = jit_forward(ensemble)(*arrays)

    uris = {}
    for label in ("ensemble", "lstm only"):
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.keras.log_model(ensemble.members[0], name="model")
        if label == "ensemble":
            log_ensemble(client, run.info.run_id, ensemble)
        uris[label] = info.model_uri
    client.create_registered_model("aq")
    version = client.create_model_version("aq", uris["ensemble"], run_id=None)

    for uri in (uris["ensemble"], f"models:/aq/{version.version}"):
        loaded = load_logged_model(uri)
        assert isinstance(loaded, EnsembleModel), uri
        np.testing.assert_allclose(jit_forward(loaded)(*arrays), expected, rtol=1e-6, atol=1e-5)
    plain = load_logged_model(uris["lstm only"])
    assert not isinstance(plain, EnsembleModel)
    np.testing.assert_allclose(
        jit_forward(plain)(*arrays), jit_forward(ensemble.members[0])(*arrays), atol=1e-5
    )
