"""End to end on a slice of the bundled real data: data half, then the model half (demo
profile), asserting MLflow runs, a registered version and the champion alias."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.model.checks import bento_serves_champion, champion_is_servable
from airquality_assets.defs.model.tensors import sequence_tensors
from airquality_assets.defs.model.training import champion_model, model_evaluation, tuned_lstm
from airquality_assets.defs.partitions import build_partitions
from airquality_assets.defs.resources import build_resources
from airquality_assets.defs.serving.bento import bento
from airquality_assets.settings import Settings

_PARTITIONS = build_partitions(Settings(data_dir=Path("unused")))
RAW = ingestion_assets(_PARTITIONS)
FRAMES = frame_assets(_PARTITIONS)
DATA = [*RAW, *FRAMES]
MODEL = [sequence_tensors, tuned_lstm, model_evaluation, champion_model, bento]
CHECKS = [champion_is_servable, bento_serves_champion]
MONTHS = {
    "dagster/asset_partition_range_start": "2013-10-01|beijing",
    "dagster/asset_partition_range_end": "2014-03-01|beijing",
}
RUN_CONFIG = {
    "ops": {
        # six months: the default split relative to the newest data (test = the last 36
        # days, a fifth of the span, validation = the 60 before, training = the rest,
        # from October 2013), and smaller batches so a few epochs are enough steps on
        # ~2,000 training windows
        "tuned_lstm": {"ops": {"plan_candidates": {"config": {"batch_size": 64}}}},
    }
}


@pytest.fixture
def trained(settings: Settings):
    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources(settings)
    assert dg.materialize(RAW, resources=resources, tags=MONTHS, instance=instance).success
    assert dg.materialize(FRAMES, resources=resources, tags=MONTHS, instance=instance).success
    first = dg.materialize(
        [*MODEL, *DATA, *CHECKS],
        selection=[a.key for a in MODEL],
        resources=resources,
        instance=instance,
        run_config=RUN_CONFIG,
    )
    yield settings, instance, resources, first


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_model_half_registers_and_promotes_champion(trained) -> None:
    import mlflow

    settings, instance, resources, result = trained
    assert result.success
    evaluation = result.output_for_node("model_evaluation")
    assert evaluation.test_window["windows"] > 0
    assert set(evaluation.mean_rmse) >= {
        "lstm",
        "persistence",
        "seasonal_naive",
        "ridge",
        "lightgbm",
    }
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["beats_persistence"].passed
    losing = evaluation.losing_horizons
    assert set(losing) == {"persistence", "ridge", "lightgbm"}
    every_horizon = checks["beats_baselines_every_horizon"]
    assert every_horizon.severity == dg.AssetCheckSeverity.WARN
    assert every_horizon.metadata["losing_horizons"].value == losing
    # warns, in words, wherever the model is not significantly better than one of them
    assert every_horizon.passed == (not evaluation.shortfalls)
    assert every_horizon.description == ("; ".join(evaluation.shortfalls) or None)
    tested = {(r["baseline"], r["scope"]) for r in evaluation.significance}
    assert ("lightgbm", "horizon") in tested and ("climatology", "mean") in tested
    assert "p " in evaluation.significance_markdown
    decision = result.output_for_node("champion_model")
    assert decision.promoted, decision.reason
    # the champion is the served LSTM + LightGBM ensemble, weights fitted on validation
    from airquality_assets.ml.ensemble import EnsembleModel
    from airquality_assets.ml.logged_model import load_logged_model

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    served = load_logged_model(f"models:/{settings.model_name}/{decision.new_version}")
    assert isinstance(served, EnsembleModel)
    assert served.extra["weights_fitted_on"] == "validation"
    assert ((served.weights >= 0) & (served.weights <= 1)).all()

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    version = client.get_model_version_by_alias(settings.model_name, "champion")
    assert str(version.version) == decision.new_version
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = {r.data.tags["mlflow.parentRunId"] for r in nested}
    assert len(parents) == 1  # one parent run per Dagster run
    (parent,) = parents  # opened by dagster-mlflow, tagged with the Dagster run id
    assert client.get_run(parent).data.tags["dagster_run_id"] == result.run_id
    assert len(nested) >= 2  # one nested run per candidate
    assert all("val_loss" in r.data.metrics for r in nested)

    # MLflow's idiom: per-horizon errors are one metric with step = horizon; epoch curves
    # were logged live (step = epoch); every candidate run, logged model and the version
    # point back to Dagster; logged models are named after their candidate
    best = client.get_run(evaluation.candidate.run_id)
    per_horizon = client.get_metric_history(best.info.run_id, "test_rmse_pm2_5")
    assert [m.step for m in per_horizon] == list(range(1, 25))
    assert not any(
        "_h0" in key or key.startswith("ridge_test_rmse_pm2_5") for key in best.data.metrics
    )
    assert "ridge_test_rmse_mean" in best.data.metrics
    assert "lightgbm_test_rmse_mean" in best.data.metrics
    p_values = client.get_metric_history(best.info.run_id, "dm_p_vs_lightgbm")
    assert [m.step for m in p_values] == list(range(1, 25))
    assert "dm_p_mean_vs_persistence" in best.data.metrics
    assert len(best.data.metrics) < 60, sorted(best.data.metrics)
    tables = {a.path for a in client.list_artifacts(best.info.run_id, "evaluation")}
    assert {"evaluation/by_horizon.json", "evaluation/significance.json"} <= tables
    dagster_run = result.run_id
    for run in nested:
        assert run.data.tags["dagster.run_id"] == dagster_run
        assert run.data.tags["dagster.asset"] == "tuned_lstm"
        assert run.data.tags["dagster.run_url"].endswith(f"/runs/{dagster_run}")
        # logged live: each epoch's point has its own time, not the run's start time
        stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "loss")]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) >= 1
    model_id = evaluation.candidate.model_uri.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert logged.name == evaluation.candidate.name
    assert logged.tags["dagster.run_id"] == dagster_run
    assert settings.model_name in logged.tags["mlflow.modelVersions"]  # not "Not registered"
    assert version.tags["dagster.asset"] == "champion_model"
    assert version.tags["dagster.run_id"] == dagster_run
    # and Dagster links to MLflow
    champion_meta = result.asset_materializations_for_node("champion_model")[0].metadata
    assert champion_meta["mlflow_new_version"].value.endswith(
        f"/#/models/{settings.model_name}/versions/{decision.new_version}"
    )
    assert champion_meta["mlflow_run"].value.endswith(f"/runs/{best.info.run_id}")
    assert checks["champion_is_servable"].passed, checks["champion_is_servable"].description
    assert checks["bento_serves_champion"].passed, checks["bento_serves_champion"].description
    # both checks answered a real request of the champion's contract: it reads the weather
    # forecast of its 24 target hours, so the request carried one
    for name in ("champion_is_servable", "bento_serves_champion"):
        smoke = {k: v.value for k, v in checks[name].metadata.items() if k.startswith("smoke")}
        assert smoke["smoke_request"] == "answered", (name, smoke)
        assert (smoke["smoke_model_inputs"], smoke["smoke_forecast_hours"]) == (2, 24), smoke

    # the bento carries the champion, imported into the BentoML store with its version
    import bentoml

    mats = result.asset_materializations_for_node("bento")
    meta = mats[0].metadata
    assert meta["mlflow_version"].value == decision.new_version
    stored = bentoml.models.get(meta["model_tag"].value)
    assert stored.info.metadata["mlflow_version"] == decision.new_version
    service = bentoml.bentos.get(meta["bento_tag"].value).info.services[0]
    assert [m.tag for m in service.models] == [stored.tag]  # declared by the service
    # and the bento's model answers the README's example request (with its forecast)
    from airquality_assets.serving.predictor import Predictor
    from airquality_assets.serving.request import RequestSpec, parse_request

    predictor = Predictor.from_package(stored.path, buckets=(1,))
    example = (Path(__file__).resolve().parents[3] / "bento" / "example_request.json").read_bytes()
    request = parse_request(example, RequestSpec.for_model(predictor.metadata))
    assert request.forecast_hours == 24
    answer = predictor.predict(request)
    assert answer.values.shape == (1, 24, 1) and np.isfinite(answer.values).all()

    # unchanged champion: re-materializing is idempotent (same model, same bento, no build)
    again = dg.materialize(
        [*MODEL, *DATA], selection=[bento.key], resources=resources, instance=instance
    )
    meta_again = again.asset_materializations_for_node("bento")[0].metadata
    assert meta_again["rebuilt"].value is False
    assert meta_again["bento_tag"].value == meta["bento_tag"].value
    assert meta_again["model_tag"].value == meta["model_tag"].value
