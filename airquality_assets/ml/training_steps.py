"""The model half's steps as plain functions: train+log a candidate; score, render and log
its evaluation; promote.

Dagster ops/assets in ``defs/model/training.py`` are thin wrappers around these, so the whole flow
can also run from a notebook or a test; MLflow is reached through the client and run ids
passed in. The steps hand typed values (``ml/handoffs.py``) to each other. Keras, JAX and
MLflow are imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.ml.comparison import (
    Comparison,
    compare,
    shortfalls,
    significance_markdown,
    significance_metrics,
)
from airquality_assets.ml.drift_reference import reference_profile
from airquality_assets.ml.evaluation import (
    forecast_metrics,
    losing_horizons,
    markdown_table,
    predicted_vs_actual_plot,
    rmse_by_horizon_plot,
)
from airquality_assets.ml.handoffs import Evaluation, TrainedCandidate
from airquality_assets.ml.intervals import DEFAULT_LEVEL, conformal_intervals
from airquality_assets.ml.intervals import METADATA_KEY as INTERVALS_KEY
from airquality_assets.ml.model import LSTMParams
from airquality_assets.ml.package import ModelMetadata
from airquality_assets.storage import atomic_write_bytes
from airquality_assets.transforms.windowing import SequenceTensors, network_inputs

SCORE_NAME = "test_rmse_mean"
#: Where the candidate run keeps its test RMSE-by-horizon chart (model_evaluation shows it).
RMSE_BY_HORIZON_ARTIFACT = "evaluation/rmse_by_horizon.png"
#: Baselines the tuned model should beat at *every* horizon, significantly (a non-blocking
#: check reports where it does not): the blocking bar and the two learned ones, which read
#: the same inputs as the network.
BASELINES_TO_BEAT_EVERYWHERE: tuple[str, ...] = ("persistence", "ridge", "lightgbm")
PREDICT_BATCH = 4096


Forward = Callable[..., np.ndarray]


def predict(forward: Forward, inputs: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Forecasts for many windows in fixed-size chunks (bounded memory, few recompiles).

    ``inputs`` is the observations array, or the list a network reads
    (:func:`~airquality_assets.transforms.windowing.network_inputs`)."""
    arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    n = len(arrays[0])
    if n == 0:
        raise ValueError("no windows to predict")
    return np.concatenate(
        [forward(*(a[i : i + PREDICT_BATCH] for a in arrays)) for i in range(0, n, PREDICT_BATCH)]
    )


def _training_rows(tensors: SequenceTensors) -> np.ndarray:
    return tensors.times < tensors.split_bounds["train"][1]


def model_metadata(tensors: SequenceTensors, params: LSTMParams, model_name: str) -> ModelMetadata:
    """What serving and drift detection need, fixed at training time."""
    train_start, train_end = tensors.split_range("train")
    return ModelMetadata(
        feature_names=list(tensors.feature_names),
        target_pollutants=list(tensors.target_names),
        lookback=int(tensors.lookback),
        horizons=[int(h) for h in tensors.horizons],
        training_window={"start": train_start, "end": train_end},
        model_name=model_name,
        future_feature_names=list(tensors.future_names) if tensors.future is not None else [],
        reference_profile=reference_profile(
            tensors.features[_training_rows(tensors)], list(tensors.feature_names)
        ),
        extra={
            "candidate": params.name,
            "params": params.as_dict(),
            "locations": tensors.locations,
            **({"weather_forecasts": tensors.forecast_origin} if tensors.forecast_origin else {}),
        },
    )


def fit_and_log_candidate(
    tensors: SequenceTensors,
    params: LSTMParams,
    *,
    target_feature_index: Sequence[int],
    model_name: str,
    experiment_id: str,
    parent_run_id: str,
    client: Any,
    tags: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
    interval_level: float = DEFAULT_LEVEL,
) -> TrainedCandidate:
    """Train one candidate, score it on validation, log it (model included) as a run nested
    under ``parent_run_id``.

    The run is created before training and each epoch's metrics reach it as the epoch ends,
    so the MLflow UI shows the curves (and an honest duration) while the candidate trains;
    a candidate that fails to train leaves its run FAILED. ``tags`` (e.g. the Dagster run
    and asset) go on the run and on its logged model. The package metadata carries the
    ``interval_level`` prediction intervals calibrated on the validation residuals of the
    forward it serves (:mod:`airquality_assets.ml.intervals`).
    """
    from airquality_assets.ml.model import epoch_progress, jit_forward, train_lstm
    from airquality_assets.ml.tracking import epoch_logger, log_candidate_run, start_candidate_run

    inputs_train, y_train = network_inputs(tensors, "train")
    inputs_val, y_val = network_inputs(tensors, "validation")
    x_train, x_val = inputs_train[0], inputs_val[0]
    with_future = len(inputs_train) > 1
    log(
        f"{params.name}: {len(x_train)} training and {len(x_val)} validation windows"
        + (", with the weather forecast of the target hours" if with_future else "")
    )
    run_id = start_candidate_run(client, experiment_id, parent_run_id, params.name, tags)
    try:
        model, history, fit_seconds = train_lstm(
            params,
            x_train,
            y_train,
            x_val,
            y_val,
            target_feature_index=target_feature_index,
            feature_mean=tensors.scaler.feature_mean,
            feature_std=tensors.scaler.feature_std,
            future_train=inputs_train[1] if with_future else None,
            future_val=inputs_val[1] if with_future else None,
            future_mean=tensors.scaler.future_mean if with_future else None,
            future_std=tensors.scaler.future_std if with_future else None,
            extra_callbacks=[
                epoch_progress(log, params.name, params.epochs),
                epoch_logger(client, run_id),
            ],
        )
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    val_pred = predict(jit_forward(model), inputs_val)
    val_metrics = forecast_metrics(y_val, val_pred, tensors.target_names, tensors.horizons)
    val_metrics["split"] = "validation"
    metadata = model_metadata(tensors, params, model_name)
    metadata.extra[INTERVALS_KEY] = conformal_intervals(
        y_val, val_pred, tensors.target_names, tensors.horizons, interval_level
    ).to_dict()
    plots = {
        "validation_predicted_vs_actual.png": predicted_vs_actual_plot(
            y_val, val_pred, tensors.target_names, tensors.horizons
        )
    }
    run = log_candidate_run(
        params,
        history,
        val_metrics,
        plots,
        model,
        [a[:2] for a in inputs_val],
        metadata=metadata,
        fit_seconds=fit_seconds,
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        tags=tags,
        run_id=run_id,
    )
    val_loss = [v for v in history.get("val_loss", []) if math.isfinite(v)]
    return TrainedCandidate(
        name=params.name,
        params=params.as_dict(),
        val_loss=min(val_loss) if val_loss else float("inf"),
        val_rmse_mean=float(val_metrics["rmse"].mean()),
        epochs=len(history.get("loss", [])),
        fit_seconds=float(fit_seconds),
        run_id=run.run_id,
        model_uri=run.model_uri,
    )


def _test_metrics(tensors: SequenceTensors, forward: Forward):
    inputs, y_test = network_inputs(tensors, "test")
    pred = predict(forward, inputs_for(forward, inputs))
    return y_test, pred, forecast_metrics(y_test, pred, tensors.target_names, tensors.horizons)


def inputs_for(forward: Forward, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The inputs a model reads, of those the tensors offer: an observations-only champion
    is scored on the same windows as a candidate that also reads forecasts (the gate
    compares like with like), a forecast-reading model on tensors without forecasts is an
    error."""
    wanted = int(getattr(forward, "n_inputs", len(inputs)))
    if wanted > len(inputs):
        raise ValueError(
            "the model reads the weather forecast of its target hours, but these tensors "
            "carry none (sequence_tensors config weather_forecasts: false?)"
        )
    return inputs[:wanted]


def _load_forward(model_uri: str) -> Forward:
    from airquality_assets.ml.logged_model import load_logged_model
    from airquality_assets.ml.model import jit_forward

    return jit_forward(load_logged_model(model_uri))


def score_model_uri(tensors: SequenceTensors, model_uri: str) -> float:
    """Mean test RMSE (ug/m3) of a logged or registered model on ``tensors``' test window."""
    return float(_test_metrics(tensors, _load_forward(model_uri))[2]["rmse"].mean())


@dataclass(frozen=True)
class CandidateScores:
    """Per model ("lstm" and each baseline): metrics per (pollutant, horizon) on the test
    window, the model's own forecasts for plotting, and the model against each baseline
    with its Diebold-Mariano tests."""

    metrics: dict[str, pd.DataFrame]
    y_test: np.ndarray
    lstm_forecast: np.ndarray
    comparison: Comparison

    @property
    def mean_rmse(self) -> dict[str, float]:
        return {name: float(frame["rmse"].mean()) for name, frame in self.metrics.items()}


def ensemble_candidate(
    tensors: SequenceTensors, candidate: TrainedCandidate, client: Any
) -> dict[str, Any]:
    """Make the tuned LSTM the served ensemble: LightGBM's per-horizon boosters on the same
    inputs (training windows, early-stopped on validation) and per-horizon weights fitted on
    the validation windows, logged on the candidate's run, so every later load of its model
    (test scores, the gate, the loop, the bento) runs the blend. Returns what was fitted."""
    import mlflow.keras

    from airquality_assets.ml.ensemble import fit_ensemble
    from airquality_assets.ml.logged_model import log_ensemble

    inputs_train, y_train = network_inputs(tensors, "train")
    inputs_val, y_val = network_inputs(tensors, "validation")
    lstm = mlflow.keras.load_model(candidate.model_uri)
    ensemble = fit_ensemble(
        [lstm], inputs_train, y_train, inputs_val, y_val, tensors.feature_names,
        tensors.future_names, tensors.target_names, tensors.horizons,
    )  # fmt: skip
    log_ensemble(client, candidate.run_id, ensemble)
    return {
        **{
            f"{component}_share_by_horizon": _by_horizon(
                tensors.horizons, ensemble.share(component)[:, 0]
            )
            for component in ensemble.components
        },
        **ensemble.extra,
    }


def _by_horizon(horizons: Sequence[int], values: np.ndarray) -> dict[int, float]:
    return {int(h): round(float(v), 3) for h, v in zip(horizons, values, strict=True)}


def score_candidate(tensors: SequenceTensors, candidate: TrainedCandidate) -> CandidateScores:
    """The tuned model (loaded from its logged MLflow model, the served ensemble when one
    was logged with it) and every baseline on the test window."""
    from airquality_assets.ml.baselines import baseline_forecasts

    y_test, pred, lstm_metrics = _test_metrics(tensors, _load_forward(candidate.model_uri))
    metrics = {"lstm": lstm_metrics}
    ends = tensors.ends["test"]
    baselines = baseline_forecasts(tensors, ends)
    for name, forecast in baselines.items():
        metrics[name] = forecast_metrics(y_test, forecast, tensors.target_names, tensors.horizons)
    comparison = compare(
        y_test, pred, baselines, tensors.times[ends], tensors.target_names, tensors.horizons
    )
    return CandidateScores(
        metrics=metrics, y_test=y_test, lstm_forecast=pred, comparison=comparison
    )


@dataclass(frozen=True)
class RenderedEvaluation:
    """The comparison for people: two Markdown tables (RMSE; ratio and p-value against each
    baseline) and two PNG plots."""

    markdown: str
    rmse_by_horizon_png: bytes
    predicted_vs_actual_png: bytes
    significance_markdown: str = ""


def render_evaluation(tensors: SequenceTensors, scores: CandidateScores) -> RenderedEvaluation:
    from airquality_assets.ml.baselines import BASELINE_LABELS

    return RenderedEvaluation(
        markdown=markdown_table(scores.metrics),
        significance_markdown=significance_markdown(scores.comparison, labels=BASELINE_LABELS),
        rmse_by_horizon_png=rmse_by_horizon_plot(scores.metrics),
        predicted_vs_actual_png=predicted_vs_actual_plot(
            scores.y_test, scores.lstm_forecast, tensors.target_names, tensors.horizons
        ),
    )


def _per_model_records(scores: CandidateScores) -> dict[str, list[dict[str, Any]]]:
    return {
        name: frame.assign(model=name).to_dict(orient="records")
        for name, frame in scores.metrics.items()
    }


def log_evaluation(
    client: Any, run_id: str, scores: CandidateScores, rendered: RenderedEvaluation
) -> None:
    """Everything about the evaluation on the candidate's MLflow run, through ``client``.

    The model's test errors per horizon (step = horizon); each baseline's mean test RMSE as
    one metric for comparing runs; the Diebold-Mariano p-value against each baseline per
    horizon (step = horizon) and on the mean; every model's per-horizon table and the
    significance table as MLflow tables; both Markdown tables and both plots as artifacts.
    """
    from airquality_assets.ml.tracking import log_horizon_metrics, log_step_metrics

    log_horizon_metrics(client, run_id, scores.metrics["lstm"], default_split="test")
    log_step_metrics(client, run_id, significance_metrics(scores.comparison))
    for name, mean in scores.mean_rmse.items():
        if name != "lstm" and math.isfinite(mean):
            client.log_metric(run_id, f"{name}_test_rmse_mean", mean)
    by_horizon = pd.concat(
        [frame.assign(model=name) for name, frame in scores.metrics.items()], ignore_index=True
    )
    client.log_table(run_id, data=by_horizon, artifact_file="evaluation/by_horizon.json")
    client.log_text(run_id, rendered.markdown, "evaluation/comparison.md")
    significance = pd.DataFrame(scores.comparison.records())
    client.log_table(run_id, data=significance, artifact_file="evaluation/significance.json")
    client.log_text(run_id, rendered.significance_markdown, "evaluation/significance.md")
    records = json.dumps(_per_model_records(scores), default=float)
    client.log_text(run_id, records, "evaluation/metrics.json")
    client.log_image(run_id, _png_array(rendered.rmse_by_horizon_png), RMSE_BY_HORIZON_ARTIFACT)
    client.log_image(
        run_id,
        _png_array(rendered.predicted_vs_actual_png),
        "evaluation/test_predicted_vs_actual.png",
    )


def evaluation_of(
    tensors: SequenceTensors,
    candidate: TrainedCandidate,
    scores: CandidateScores,
    rendered: RenderedEvaluation,
    plot_path: Path,
) -> Evaluation:
    """The hand-over to the promotion gate: score, ratios, the horizons where it loses and
    where it is not significantly better than the baselines it should beat."""
    from airquality_assets.ml.baselines import BASELINE_LABELS

    means = scores.mean_rmse
    score = means["lstm"]
    test_start, test_end = tensors.split_range("test")
    return Evaluation(
        candidate=candidate,
        score=score,
        score_name=SCORE_NAME,
        mean_rmse=means,
        rmse_ratio_vs_persistence=score / means["persistence"],
        rmse_ratio_vs_ridge=score / means["ridge"] if "ridge" in means else float("nan"),
        losing_horizons={
            name: losing_horizons(scores.metrics["lstm"], scores.metrics[name])
            for name in BASELINES_TO_BEAT_EVERYWHERE
            if name in scores.metrics
        },
        metrics=_per_model_records(scores),
        markdown=rendered.markdown,
        plot_path=str(plot_path),
        test_window={"start": test_start, "end": test_end, "windows": len(scores.y_test)},
        significance=scores.comparison.records(),
        significance_markdown=rendered.significance_markdown,
        shortfalls=shortfalls(scores.comparison, BASELINES_TO_BEAT_EVERYWHERE, BASELINE_LABELS),
    )


def evaluate_candidate(
    tensors: SequenceTensors, candidate: TrainedCandidate, reports_dir: Path, client: Any
) -> tuple[Evaluation, RenderedEvaluation]:
    """Score, render, write the RMSE plot under ``reports_dir`` and log to the candidate's run
    (through ``client``, an ``MlflowClient``). The tuned LSTM becomes the served LSTM +
    LightGBM ensemble first (:func:`ensemble_candidate`), so what is scored is what serves."""
    fitted = ensemble_candidate(tensors, candidate, client)
    client.log_dict(candidate.run_id, fitted, "ensemble/fitted.json")
    scores = score_candidate(tensors, candidate)
    rendered = render_evaluation(tensors, scores)
    plot_path = atomic_write_bytes(
        reports_dir / "rmse_by_horizon.png", rendered.rmse_by_horizon_png
    )
    log_evaluation(client, candidate.run_id, scores, rendered)
    return evaluation_of(tensors, candidate, scores, rendered, plot_path), rendered


def _png_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


MIN_GATE_WINDOWS = 24 * 7


def gate_tensors(tensors: SequenceTensors, champion_seen_until: str | None) -> SequenceTensors:
    """``tensors`` with the test windows neither model trained on: those ending at or after
    the champion's ``seen_until`` (the start of its own test window; the candidate never
    saw its test window). Raises ``ValueError`` when fewer than a week of windows remain."""
    if not champion_seen_until:
        return tensors
    cut = int(pd.Timestamp(champion_seen_until).timestamp())
    test = tensors.ends["test"]
    kept = test[tensors.times[test] >= cut]
    if len(kept) == len(test):
        return tensors
    if len(kept) < MIN_GATE_WINDOWS:
        raise ValueError(
            f"only {len(kept)} test windows after the champion's training data ends "
            f"({champion_seen_until}); the gate needs {MIN_GATE_WINDOWS} that neither model "
            "trained on: the champion stays"
        )
    return dataclasses.replace(tensors, ends={**tensors.ends, "test": kept})
