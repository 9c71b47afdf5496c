"""The model half: grid search as parallel steps, evaluation, and the promotion gate.

``tuned_lstm`` is a graph-backed asset: one step plans the candidates of the profile, one
``train_candidate`` step per candidate runs (side by side under the multiprocess executor,
or spread across machines by a Kubernetes/Celery executor), and ``select_best`` picks the
lowest validation loss. Keras, JAX and MLflow are imported inside the steps only, so loading
these definitions (the UI, sensors, the data half) never pays their start-up.
"""

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg

from airquality_assets import markdown
from airquality_assets.catalog import MODEL_GROUP
from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG
from airquality_assets.defs.model.lineage import tensors_record
from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.ml.handoffs import Evaluation, TrainedCandidate, TunedModel
from airquality_assets.ml.lineage import link_data_record, log_data_record
from airquality_assets.ml.model import LSTMParams
from airquality_assets.ml.registry import PromotionDecision
from airquality_assets.transforms.windowing import SequenceTensors

PICKLE = "pickle_io_manager"


def _target_index(tensors: SequenceTensors) -> list[int]:
    index = tensors.target_columns
    missing = [n for n, i in zip(tensors.target_names, index, strict=True) if i is None]
    if missing:
        raise dg.Failure(
            f"target pollutant(s) {missing} are not among the features {tensors.feature_names}; "
            "the model corrects the last observed value, so each target must be a feature"
        )
    return [int(i) for i in index if i is not None]


class GridConfig(dg.Config):
    profile: str | None = None
    """``demo`` (a few small candidates, minutes) or ``full`` (the full grid, hours);
    None: the deployment's ``profile``."""
    batch_size: int | None = None
    """Override every candidate's batch size (e.g. smaller for a short slice of data)."""
    epochs: int | None = None
    """Override every candidate's maximum number of epochs."""


@dg.op(out=dg.DynamicOut(LSTMParams, io_manager_key=PICKLE))
def plan_candidates(
    context: dg.OpExecutionContext,
    config: GridConfig,
    deployment: DeploymentResource,
    mlflow: MlflowResource,
    mlflow_run: dg.ResourceParam[Any],
    tensors: SequenceTensors,
) -> Iterator[Any]:
    """One dynamic output per hyper-parameter candidate of the profile.

    It runs after ``sequence_tensors`` (its input) and before any candidate and requires
    ``mlflow_run`` (dagster-mlflow), so the Dagster run's parent MLflow run is opened once,
    by this step, and every parallel candidate step finds it by tag instead of racing to
    create its own. It also fails before the fan-out when a target is not a feature.
    """
    _target_index(tensors)
    parent = mlflow_run.mlflow_run_id
    log_data_record(
        mlflow.client(), parent, tensors_record(context.instance, tensors, context.log), "training"
    )
    context.log.info(f"MLflow parent run {parent} in experiment {mlflow.experiment_name}")
    context.log.info(
        f"{len(tensors.ends['train'])} training / {len(tensors.ends['validation'])} "
        f"validation windows of {tensors.lookback} h x {len(tensors.feature_names)} features"
    )
    from airquality_assets.ml.grid import grid_for_profile

    profile = config.profile or deployment.profile
    try:
        grid = grid_for_profile(profile)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    context.log.info(f"profile {profile}: {len(grid)} candidate(s)")
    overrides = {
        k: v for k, v in {"batch_size": config.batch_size, "epochs": config.epochs}.items() if v
    }
    for params in grid:
        params = dataclasses.replace(params, **overrides)
        yield dg.DynamicOutput(params, mapping_key=params.name)


@dg.op(out=dg.Out(TrainedCandidate, io_manager_key=PICKLE))
def train_candidate(
    context: dg.OpExecutionContext,
    deployment: DeploymentResource,
    mlflow: MlflowResource,
    mlflow_run: dg.ResourceParam[Any],
    tensors: SequenceTensors,
    params: LSTMParams,
) -> TrainedCandidate:
    """Train one candidate and log it, model included, as a nested MLflow run."""
    from airquality_assets.ml.training_steps import fit_and_log_candidate

    context.log.info(f"training candidate {params.name}: {params.as_dict()}")
    try:
        trained = fit_and_log_candidate(
            tensors,
            params,
            target_feature_index=_target_index(tensors),
            model_name=deployment.settings.model_name,
            experiment_id=mlflow.experiment_id(),
            parent_run_id=mlflow_run.mlflow_run_id,
            client=mlflow.client(),
            tags=mlflow.dagster_tags(context.run_id, asset="tuned_lstm", job=context.job_name),
            log=context.log.info,
            interval_level=deployment.settings.interval_level,
        )
    except dg.Failure:
        raise
    except Exception as exc:
        raise dg.Failure(
            description=(
                f"candidate {params.name} {params.as_dict()} failed: {type(exc).__name__}: {exc}"
            )
        ) from exc
    context.log.info(
        f"candidate {params.name}: best val_loss {trained.val_loss:.4f} after "
        f"{trained.epochs} epoch(s) in {trained.fit_seconds:.1f} s"
    )
    return trained


def _model_id(model_uri: str) -> str | None:
    """``models:/m-abc`` -> ``m-abc`` (a logged model's id); None for other URIs."""
    rest = model_uri.removeprefix("models:/")
    return rest if rest != model_uri and rest.startswith("m-") else None


def _mlflow_links(mlflow: MlflowResource, candidate: TrainedCandidate) -> dict[str, object]:
    """Metadata linking a candidate to its MLflow run and logged model."""
    pages = mlflow.pages()
    experiment_id = mlflow.experiment_id()
    links: dict[str, object] = {
        "mlflow_experiment": dg.MetadataValue.url(pages.experiment(experiment_id)),
        "mlflow_run": dg.MetadataValue.url(pages.run(experiment_id, candidate.run_id)),
    }
    model_id = _model_id(candidate.model_uri)
    if model_id:
        links["mlflow_logged_model"] = dg.MetadataValue.url(
            pages.logged_model(experiment_id, model_id)
        )
    return links


@dg.op(out=dg.Out(TunedModel, io_manager_key=PICKLE))
def select_best(
    context: dg.OpExecutionContext, mlflow: MlflowResource, candidates: list[TrainedCandidate]
) -> TunedModel:
    """The candidate with the lowest validation loss (never the test set: that is for scoring)."""
    ranked = sorted(candidates, key=lambda c: c.val_loss)
    pages, experiment_id = mlflow.pages(), mlflow.experiment_id()
    table = "\n".join(
        f"| [{c.name}]({pages.run(experiment_id, c.run_id)}) | {c.val_loss:.4f} | "
        f"{c.val_rmse_mean:.2f} | {c.epochs} |"
        for c in ranked
    )
    context.add_output_metadata(
        {
            "best": ranked[0].name,
            **_mlflow_links(mlflow, ranked[0]),
            "candidates": dg.MetadataValue.md(
                "| candidate (MLflow run) | val loss | val RMSE (ug/m3) | epochs |\n"
                "|---|---|---|---|\n" + table
            ),
        }
    )
    return TunedModel(best=ranked[0], ranking=[c.name for c in ranked])


@dg.graph_asset(
    group_name=MODEL_GROUP,
    kinds={"keras", "mlflow"},
    description=(
        "Grid search: one step per candidate (fan-out), each its own nested MLflow run; the "
        "fan-in step keeps the candidate with the lowest validation loss."
    ),
)
def tuned_lstm(sequence_tensors: SequenceTensors) -> TunedModel:
    trained = plan_candidates(sequence_tensors).map(
        lambda params: train_candidate(sequence_tensors, params)
    )
    return select_best(trained.collect())


@dg.asset(
    io_manager_key=PICKLE,
    group_name=MODEL_GROUP,
    kinds={"keras", "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            "beats_persistence",
            asset="model_evaluation",
            blocking=True,
            description="The tuned model's mean test RMSE is below persistence's",
        ),
        dg.AssetCheckSpec(
            "beats_baselines_every_horizon",
            asset="model_evaluation",
            description=(
                "Warns unless the tuned model is significantly better (Diebold-Mariano, "
                "squared error, 5 %) than persistence, Ridge and LightGBM at every horizon "
                "(an average can hide a horizon where it loses); names the horizons"
            ),
        ),
    ],
    description=(
        "The tuned model against persistence, seasonal-naive, climatology, Ridge and LightGBM "
        "(the last two with the network's inputs) on the test window, per pollutant and "
        "horizon, in ug/m3, with a Diebold-Mariano p-value against each baseline."
    ),
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    mlflow: MlflowResource,
    tuned_lstm: TunedModel,
    sequence_tensors: SequenceTensors,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    from airquality_assets.ml.training_steps import RMSE_BY_HORIZON_ARTIFACT, evaluate_candidate

    started = time.perf_counter()
    report, _ = evaluate_candidate(
        sequence_tensors,
        tuned_lstm.best,
        reports_dir=deployment.settings.reports_dir,
        client=mlflow.client(),
    )
    context.log.info(f"evaluation took {time.perf_counter() - started:.1f} s")
    record = tensors_record(context.instance, sequence_tensors, context.log)
    log_data_record(mlflow.client(), tuned_lstm.best.run_id, record, "evaluation")
    ratio = report.rmse_ratio_vs_persistence
    yield dg.Output(
        report,
        metadata={
            "candidate": report.candidate.name,
            "test_rmse_mean": report.score,
            "rmse_ratio_vs_persistence": ratio,
            "rmse_ratio_vs_ridge": report.rmse_ratio_vs_ridge,
            "comparison": dg.MetadataValue.md(report.markdown),
            "significance": dg.MetadataValue.md(report.significance_markdown),
            "test_windows": int(report.test_window["windows"]),
            "test_window": f"{report.test_window['start']} .. {report.test_window['end']}",
            # the chart the candidate run keeps, by link: short enough to show inline
            "rmse_by_horizon": dg.MetadataValue.md(
                markdown.image(
                    "test RMSE by horizon",
                    mlflow.pages().artifact(report.candidate.run_id, RMSE_BY_HORIZON_ARTIFACT),
                )
            ),
            "plot_path": dg.MetadataValue.path(report.plot_path),
            **_mlflow_links(mlflow, report.candidate),
        },
    )
    yield dg.AssetCheckResult(
        check_name="beats_persistence",
        passed=bool(ratio < 1.0),
        metadata={"rmse_ratio_vs_persistence": ratio},
        description=None if ratio < 1.0 else f"model RMSE is {ratio:.3f}x persistence",
    )
    yield dg.AssetCheckResult(
        check_name="beats_baselines_every_horizon",
        passed=not report.shortfalls,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "losing_horizons": dg.MetadataValue.json(report.losing_horizons),
            "shortfalls": dg.MetadataValue.json(report.shortfalls),
            "significance": dg.MetadataValue.md(report.significance_markdown),
        },
        description="; ".join(report.shortfalls) or None,
    )


@dg.asset(
    io_manager_key=PICKLE,
    group_name=MODEL_GROUP,
    kinds={"mlflow"},
    description=(
        "Registers the tuned model in the MLflow registry and moves alias 'champion' only if "
        "it beats the current champion on the same test window; the decision is recorded."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    mlflow: MlflowResource,
    model_evaluation: Evaluation,
    sequence_tensors: SequenceTensors,
) -> dg.Output[PromotionDecision]:
    from airquality_assets.ml.promotion import promote
    from airquality_assets.monitoring.flags import tensor_flags
    from airquality_assets.monitoring.level_shift import tensor_shift_flags

    decision = promote(
        sequence_tensors,
        model_evaluation,
        registered_name=deployment.settings.model_name,
        client=mlflow.client(),
        tags=mlflow.dagster_tags(
            context.run.run_id, asset="champion_model", job=context.run.job_name
        ),
        flags_for=tensor_flags,
        shift_flags_for=tensor_shift_flags,
        degraded_because=_champion_degraded(context.run.tags),
    )
    context.log.info(f"promotion: {decision.reason}")
    link_data_record(
        mlflow.client(),
        decision.registered_name,
        decision.new_version,
        tensors_record(context.instance, sequence_tensors, context.log),
        model_evaluation.candidate.run_id,
    )
    pages, name = mlflow.pages(), decision.registered_name
    links: dict[str, object] = {
        "mlflow_registered_model": dg.MetadataValue.url(pages.registered_model(name)),
        "mlflow_new_version": dg.MetadataValue.url(pages.model_version(name, decision.new_version)),
        **_mlflow_links(mlflow, model_evaluation.candidate),
    }
    if decision.champion_version is not None:
        links["mlflow_champion_version"] = dg.MetadataValue.url(
            pages.model_version(name, decision.champion_version)
        )
    return dg.Output(
        decision,
        metadata={
            **links,
            "promoted": decision.promoted,
            "reason": decision.reason,
            "registered_model": decision.registered_name,
            "new_version": str(decision.new_version),
            "champion_version": str(decision.champion_version),
            "candidate_score": decision.candidate_score,
            "previous_champion_score": str(decision.champion_score),
            **_gate_metadata(decision.evidence),
        },
    )


def _champion_degraded(run_tags: dict[str, str]) -> str:
    """Why the gate may take "not significantly worse" as enough: the retraining sensor
    asked for this run because the champion's accuracy degraded. Empty otherwise."""
    reasons = run_tags.get(RETRAIN_REASON_TAG, "").split("+")
    return (
        "its 7-day accuracy degraded (retrain requested by the accuracy trigger)"
        if ("accuracy" in reasons)
        else ""
    )


def _gate_metadata(evidence: dict[str, str]) -> dict[str, object]:
    """The gate's evidence as metadata: p-values and counts as numbers, the rest as text."""
    out: dict[str, object] = {}
    for key, value in evidence.items():
        if key in ("gate_excluded_by", "gate_challenger_rmse_by_horizon"):
            out[key] = dg.MetadataValue.json(json.loads(value))
        elif key.startswith(("gate_p_", "gate_windows", "gate_dm_", "gate_challenger_",
                             "gate_champion_rmse")):  # fmt: skip
            out[key] = float(value)
        else:
            out[key] = value
    return out
