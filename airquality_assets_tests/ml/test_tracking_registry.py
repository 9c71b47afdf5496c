"""MLflow tracking + the alias-only promotion gate, on a throw-away SQLite store.

No training: three hand-set models on the known-answer task of ``support.known_answer``
(the pollutant rises by exactly 1 ug/m3 per hour), so "worse" and "better" are exact:

* v1 "persistence": delta head at zero, RMSE = sqrt(mean(h^2)) over horizons 1..3;
* v2 "worse": constant +10 ug/m3 delta, RMSE = sqrt(mean((10 - h)^2)), clearly worse;
* v3 "better": delta head bias = h / delta_std, the exact answer, RMSE ~ 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from airquality_assets.ml.registry import (
    TAG_DECISION,
    TAG_REASON,
    Judgement,
    load_champion,
    register_and_maybe_promote,
)
from airquality_assets.ml.tracking import (
    DAGSTER_RUN_TAG,
    CandidateRun,
    default_artifact_location,
    default_tracking_uri,
    end_parent_run,
    ensure_experiment,
    epoch_logger,
    load_mlmodel,
    log_candidate_run,
    read_package_metadata,
    start_candidate_run,
)
from airquality_assets_tests.support.known_answer import (
    FEATURES,
    LOOKBACK,
    METADATA,
    PARAMS,
    X_TEST,
    Y_TEST,
    evaluate_champion,
    make_model,
    metrics_frame,
    score,
)

# Keras 3.15 + numpy 2.4 warn from inside keras on every np.array(variable); not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NAME = "airquality-lstm-test"

#: label -> (where the candidate was logged, its test score)
Candidates = dict[str, tuple[CandidateRun, float]]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import mlflow

    data_dir = tmp_path_factory.mktemp("mlflow-data")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(default_tracking_uri(data_dir))
    ensure_experiment(
        mlflow.MlflowClient(), "test-grid", f"{default_artifact_location(data_dir)}/test-grid"
    )
    yield data_dir
    mlflow.set_tracking_uri(previous)


def _parent_run(client, experiment_id: str, dagster_run_id: str) -> str:
    """A grid's parent run as dagster-mlflow opens it: named ``grid``, tagged by Dagster run."""
    tags = {DAGSTER_RUN_TAG: dagster_run_id}
    return client.create_run(experiment_id, run_name="grid", tags=tags).info.run_id


@pytest.fixture(scope="module")
def candidates(tracking: Path) -> Candidates:  # noqa: ARG001 (its store, by name)
    """Three candidates logged as nested runs of one grid run."""
    import mlflow

    logged: dict[str, tuple[CandidateRun, float]] = {}
    history = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "learning_rate": [1e-3, 5e-4]}
    client = mlflow.MlflowClient()
    experiment_id = client.get_experiment_by_name("test-grid").experiment_id
    parent = _parent_run(client, experiment_id, "dagster-run-1")
    other = _parent_run(client, experiment_id, "dagster-run-2")
    for label, delta in {
        "persistence": [0.0, 0.0, 0.0],
        "worse": [10.0, 10.0, 10.0],
        "better": [1.0, 2.0, 3.0],
    }.items():
        model = make_model(delta)
        run = log_candidate_run(
            PARAMS,
            history,
            metrics_frame(model),
            {"loss_curve.png": b"\x89PNG fake", "forecast": b"\x89PNG fake"},
            model,
            X_TEST,
            metadata=METADATA,
            fit_seconds=1.5,
            parent_run_id=parent,
            experiment_id=experiment_id,
            run_name=f"candidate-{label}",
        )
        logged[label] = (run, score(model))
    assert mlflow.active_run() is None  # nothing relies on (or leaves) a global active run
    end_parent_run(client, experiment_id, "dagster-run-1", "FINISHED")
    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(other).info.status == "RUNNING"  # found by its own run's tag only
    return logged


def test_default_locations_live_under_the_data_dir(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path)
    assert uri.startswith("sqlite:///") and uri.endswith("/mlflow.db")
    assert str(tmp_path.resolve()) in uri
    assert default_artifact_location(tmp_path).startswith("file://")


def test_candidate_runs_are_nested_with_params_metrics_and_artifacts(
    candidates: Candidates,
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    run_info, _ = candidates["persistence"]
    run = client.get_run(run_info.run_id)
    parent_id = run.data.tags["mlflow.parentRunId"]
    assert client.get_run(parent_id).info.run_name == "grid"
    assert all(
        client.get_run(r.run_id).data.tags["mlflow.parentRunId"] == parent_id
        for r, _ in candidates.values()
    )
    assert run.data.params["units"] == "4" and run.data.params["name"] == PARAMS.name
    metrics = run.data.metrics
    # one metric per quantity, step = horizon; persistence on a +1/h ramp misses by exactly h
    by_horizon = client.get_metric_history(run_info.run_id, "test_rmse_pm2_5")
    assert [(m.step, round(m.value, 4)) for m in by_horizon] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert not any("_h0" in key for key in metrics)
    assert metrics["test_rmse_pm2_5_mean"] == pytest.approx(2.0, rel=1e-5)
    assert "test_mae_mean" in metrics and metrics["fit_seconds"] == 1.5
    assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 2
    curve = client.get_metric_history(run_info.run_id, "val_loss")
    assert [(m.step, m.value) for m in curve] == [(0, 1.2), (1, 0.7)]
    artifacts = {a.path for a in client.list_artifacts(run_info.run_id, "plots")}
    assert artifacts == {"plots/loss_curve.png", "plots/forecast.png"}
    package = {a.path for a in client.list_artifacts(run_info.run_id, "model_package")}
    assert package == {"model_package/metadata.json"}
    assert run_info.model_uri.startswith("models:/")
    assert client.get_logged_model(run_info.model_id).name == PARAMS.name  # not "model"


def test_logged_model_has_explicit_requirements_and_a_tensor_signature(
    candidates: Candidates,
) -> None:
    import mlflow

    run_info, _ = candidates["persistence"]
    info = mlflow.models.get_model_info(run_info.model_uri)
    location = mlflow.MlflowClient().get_logged_model(run_info.model_id).artifact_location
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [
        -1,
        LOOKBACK,
        FEATURES,
    ]
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"{location}/requirements.txt")
    ).read_text()
    assert "keras==" in requirements and "jax==" in requirements


def test_package_metadata_round_trips_through_mlmodel_with_the_reference_as_one_string(
    candidates: Candidates,
) -> None:
    import mlflow

    run_info, _ = candidates["better"]
    location = mlflow.MlflowClient().get_logged_model(run_info.model_id).artifact_location
    stored = load_mlmodel(location).metadata["airquality_package"]
    assert isinstance(stored["reference_profile"], str)  # one YAML scalar, not 100 lines
    assert read_package_metadata(location) == METADATA


def test_gate_promotes_first_rejects_worse_then_promotes_better(candidates: Candidates) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    (first, first_score), (worse, worse_score), (better, better_score) = (
        candidates[k] for k in ("persistence", "worse", "better")
    )
    assert better_score < first_score < worse_score

    decision = register_and_maybe_promote(
        client, first.model_uri, NAME, first_score, "test_rmse_mean", evaluate_champion
    )
    assert decision.promoted and decision.new_version == "1"
    assert decision.previous_champion_version is None and decision.champion_score is None
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    decision = register_and_maybe_promote(
        client, worse.model_uri, NAME, worse_score, "test_rmse_mean", evaluate_champion
    )
    assert not decision.promoted and decision.new_version == "2"
    assert decision.previous_champion_version == "1"
    assert decision.champion_score == pytest.approx(first_score, rel=1e-6)
    assert "stays on v1" in decision.reason
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    v2 = client.get_model_version(NAME, "2")
    assert v2.tags[TAG_DECISION] == "rejected" and v2.tags[TAG_REASON] == decision.reason
    assert v2.description == decision.reason
    assert float(v2.tags["test_rmse_mean"]) == pytest.approx(worse_score)

    decision = register_and_maybe_promote(
        client,
        better.model_uri,
        NAME,
        better_score,
        "test_rmse_mean",
        evaluate_champion,
        tags={"profile": "test"},
    )
    assert decision.promoted and decision.new_version == "3"
    assert decision.previous_champion_version == "1"
    v3 = client.get_model_version(NAME, "3")
    assert v3.tags[TAG_DECISION] == "promoted" and v3.tags["profile"] == "test"
    assert v3.status == "READY"

    uri, version, metadata = load_champion(NAME, client=client)
    assert (uri, version) == (f"models:/{NAME}/3", "3")
    assert metadata is not None and metadata.feature_names == METADATA.feature_names
    assert (metadata.model_name, metadata.model_version) == (NAME, "3")
    assert evaluate_champion(uri) == pytest.approx(better_score, abs=1e-6)


def test_equal_score_does_not_move_the_alias(candidates: Candidates) -> None:
    """Strictly better only: re-registering a model as good as the champion keeps the alias."""
    from mlflow import MlflowClient

    client = MlflowClient()
    run, run_score = candidates["persistence"]
    name = f"{NAME}-ties"
    first = register_and_maybe_promote(client, run.model_uri, name, run_score, "s", None)
    tie = register_and_maybe_promote(client, run.model_uri, name, run_score, "s", None)
    assert first.promoted and not tie.promoted
    assert "NOT re-evaluated" in tie.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.new_version


def test_a_judge_decides_instead_of_the_scores(candidates: Candidates) -> None:
    """With a judge (the significance-tested rule of ml/promotion.py) a lower score alone
    moves nothing; the judge's evidence lands on the version and in the decision."""
    from mlflow import MlflowClient

    client = MlflowClient()
    name = f"{NAME}-judged"
    (first, first_score), (better, better_score) = (
        candidates[k] for k in ("persistence", "better")
    )
    register_and_maybe_promote(client, first.model_uri, name, first_score, "s", None)
    seen: list[str] = []

    def judge(uri: str) -> Judgement:
        seen.append(uri)
        return Judgement(False, "not significantly better (p 0.6)", first_score,
                         {"gate_p_better": "0.6", "gate_windows_used": "552"})  # fmt: skip

    decision = register_and_maybe_promote(
        client, better.model_uri, name, better_score, "s", None, judge=judge
    )
    assert seen == [f"models:/{name}/1"]  # the pinned champion, never the moving alias
    assert not decision.promoted and decision.reason == "not significantly better (p 0.6)"
    assert decision.evidence == {"gate_p_better": "0.6", "gate_windows_used": "552"}
    version = client.get_model_version(name, decision.new_version)
    assert version.tags["gate_p_better"] == "0.6" and version.tags[TAG_DECISION] == "rejected"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"

    def yes(_uri: str) -> Judgement:
        return Judgement(True, "significantly better", first_score, {"gate_p_better": "0.001"})

    decision = register_and_maybe_promote(
        client, better.model_uri, name, better_score, "s", None, judge=yes
    )
    assert decision.promoted
    assert str(client.get_model_version_by_alias(name, "champion").version) == "3"


@pytest.mark.usefixtures("tracking")
def test_epoch_metrics_are_logged_live_into_a_run_created_before_training() -> None:
    """The run exists (and is RUNNING) before fit; each epoch's metrics land as it ends;
    the results then go to the same run, which carries the tags on its logged model too."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment_id = client.get_experiment_by_name("test-grid").experiment_id
    parent = _parent_run(client, experiment_id, "dagster-run-live")
    tags = {"dagster.run_id": "dagster-run-live", "dagster.asset": "tuned_lstm"}
    run_id = start_candidate_run(client, experiment_id, parent, PARAMS.name, tags)
    assert client.get_run(run_id).info.status == "RUNNING"
    model = make_model([0.0, 0.0, 0.0])
    seen_during_fit: list[int] = []
    import keras

    # reads the store after each epoch, as the MLflow UI would while the candidate trains
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda _epoch, _logs=None: seen_during_fit.append(
            len(client.get_metric_history(run_id, "loss"))
        )
    )
    logger = epoch_logger(client, run_id)
    history = model.fit(
        X_TEST, np.zeros_like(Y_TEST), epochs=3, verbose=0, callbacks=[logger, probe]
    ).history
    assert seen_during_fit == [1, 2, 3]
    # in a Dagster step the parent is this thread's active run (dagster-mlflow starts it)
    with mlflow.start_run(run_id=parent):
        run = log_candidate_run(
            PARAMS,
            history,
            metrics_frame(model),
            {},
            model,
            X_TEST,
            parent_run_id=parent,
            experiment_id=experiment_id,
            tags=tags,
            run_id=run_id,
        )
        assert mlflow.active_run().info.run_id == parent  # the candidate's run was closed
    assert run.run_id == run_id and mlflow.active_run() is None
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.tags["mlflow.parentRunId"] == parent
    assert stored.data.tags["dagster.asset"] == "tuned_lstm"
    # curves were logged once (live), not again from the history
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2]
    logged = client.get_logged_model(run.model_id)
    assert logged.name == PARAMS.name and logged.tags["dagster.run_id"] == "dagster-run-live"
    assert len(stored.data.metrics) < 20, sorted(stored.data.metrics)
    # the logged model shows its own figures, not the first epoch's curve values
    on_model = {m.key: m.value for m in logged.metrics}
    assert "loss" not in on_model and "val_loss" not in on_model
    assert on_model["epochs_run"] == 3
    assert on_model["test_rmse_mean"] == pytest.approx(stored.data.metrics["test_rmse_mean"])
    assert not any(k.startswith("test_rmse_pm2_5") and not k.endswith("_mean") for k in on_model)


def test_the_experiment_opens_on_its_runs(tmp_path: Path) -> None:
    """MLflow 3 opens an experiment of unknown kind on its GenAI view: a new experiment is
    created as a model-development one, and an existing one without the tag gets it."""
    import mlflow

    from airquality_assets.ml.tracking import EXPERIMENT_KIND_TAG

    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri(tmp_path))
    new = ensure_experiment(client, "new", f"{default_artifact_location(tmp_path)}/new")
    assert client.get_experiment(new).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    old = client.create_experiment("old", artifact_location=default_artifact_location(tmp_path))
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert ensure_experiment(client, "old", "unused") == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
