"""MLflow helpers for candidate runs, usable without Dagster (tests, notebooks, scripts).

Embedded default: a SQLite backend and a local artifact root, both under the project's data
directory, so the demo needs no server and never scatters ``mlruns/`` into the working
directory. mlflow and keras are imported inside the functions: importing this module must
stay cheap for Dagster's code server.

Metric names (stable, they are what dashboards and the promotion gate read), in MLflow's
idiom of one metric per quantity with ``step`` as its axis, so a run's metrics tab opens on a
few charts rather than hundreds:

* per epoch, with ``step=epoch``, logged live by :func:`epoch_logger` while a candidate
  trains: the Keras history keys (``loss``, ``val_loss``, ``mae``, ``val_mae``,
  ``learning_rate``; in target-std units of the delta, see ``ml.model``);
* ``{split}_{metric}_{pollutant}`` with ``step=horizon`` (hours ahead), e.g.
  ``test_rmse_pm2_5`` at step 6 is the 6 h forecast's RMSE;
* ``{split}_{metric}_{pollutant}_mean`` (mean over horizons) and ``{split}_{metric}_mean``
  (mean over pollutants and horizons), e.g. ``test_rmse_mean``;
* ``fit_seconds``, ``epochs_run``, ``best_epoch``, ``best_val_loss`` when known.

Baselines are not metrics of a candidate's run: their per-horizon tables are an artifact
(``evaluation/by_horizon.json``, an MLflow table) beside the model's. What is the run's is
how sure its lead over each baseline is: ``dm_p_vs_{baseline}`` with ``step=horizon`` and
``dm_p_mean_vs_{baseline}`` (Diebold-Mariano p-values, :mod:`airquality_assets.ml.comparison`;
``_{pollutant}`` appended with several targets), the full table in
``evaluation/significance.json``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from airquality_assets.ml.package import METADATA_FILE, ModelMetadata

if TYPE_CHECKING:
    import pandas as pd

    from airquality_assets.ml.model import LSTMParams

MLFLOW_DB_FILE = "mlflow.db"
#: Tag marking THE parent MLflow run of a Dagster run; dagster-mlflow's resource sets it on the
#: run it opens. Not ``dagster.run_id``: candidate runs and logged models carry that one too (a
#: link back), so a search on it would find them.
DAGSTER_RUN_TAG = "dagster_run_id"
_BY_DAGSTER_RUN = f"tags.{DAGSTER_RUN_TAG} = '{{}}'"
ARTIFACTS_DIR = "mlartifacts"
#: Run-artifact path of the model package's metadata.json.
PACKAGE_ARTIFACT_DIR = "model_package"
#: Key in the logged model's MLmodel ``metadata`` holding the ModelMetadata dict.
MLMODEL_METADATA_KEY = "airquality_package"
#: Columns of a metrics frame that are keys or counts (``n``: windows scored), not metrics;
#: the counts stay in the per-horizon tables.
_NOT_METRICS = frozenset({"pollutant", "horizon", "split", "n"})
# MLflow accepts at most 1000 metrics per log_batch call.
_BATCH_LIMIT = 1000
# Packages the served model needs; pinned to the versions installed at logging time.
_RUNTIME_PACKAGES = ("keras", "jax", "jaxlib", "numpy", "mlflow")


def default_tracking_uri(data_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<abs data_dir>/mlflow.db``: one file, no server, safe for one machine."""
    return f"sqlite:///{(Path(data_dir).resolve() / MLFLOW_DB_FILE).as_posix()}"


def default_artifact_location(data_dir: str | os.PathLike[str]) -> str:
    """``file://`` URI of the artifact root under the data dir (not the CWD's ``mlruns``)."""
    return (Path(data_dir).resolve() / ARTIFACTS_DIR).as_uri()


#: MLflow 3's experiment-kind tag; its UI opens a model-development experiment on its runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_KIND = "custom_model_development"


def ensure_experiment(client: Any, experiment_name: str, artifact_location: str) -> str:
    """The experiment's id, creating it with its artifacts at ``artifact_location`` if new.

    With a SQLite backend MLflow would otherwise put a new experiment's artifacts in
    ``./mlruns`` of whatever the working directory is.

    The experiment is marked a model-development one (``mlflow.experimentKind``): MLflow 3
    otherwise guesses its kind and may open it on the GenAI (traces) view, not its runs.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_KIND)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            experiment_name,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: MODEL_KIND},
        )
    except MlflowException:
        # Another process (parallel Dagster step) created it first.
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


def end_parent_run(client: Any, experiment_id: str, dagster_run_id: str, status: str) -> None:
    """Close the parent run of ``dagster_run_id`` (if any) with ``status`` (e.g. FINISHED).

    Found by its tag, so a step in any process can end the parent another step opened.
    """
    for run in client.search_runs(
        [experiment_id], filter_string=_BY_DAGSTER_RUN.format(dagster_run_id)
    ):
        client.set_terminated(run.info.run_id, status=status)


def default_pip_requirements() -> list[str]:
    """Pinned requirements of the served model, from the installed distributions.

    Passing an explicit list to ``log_model`` skips MLflow's requirement inference, which
    loads the model in a subprocess and costs tens of seconds per candidate.
    """
    requirements = []
    for package in _RUNTIME_PACKAGES:
        try:
            requirements.append(f"{package}=={importlib_metadata.version(package)}")
        except importlib_metadata.PackageNotFoundError:
            requirements.append(package)
    return requirements


def metric_name(split: str, metric: str, pollutant: str, horizon: int | str | None = None) -> str:
    """``test_rmse_pm2_5`` (logged with ``step=horizon``); ``horizon="mean"`` gives
    ``test_rmse_pm2_5_mean``."""
    base = f"{split}_{metric}_{pollutant}"
    return f"{base}_{horizon}" if isinstance(horizon, str) else base


def horizon_metrics(
    metrics_df: pd.DataFrame, default_split: str = "test"
) -> list[tuple[str, float, int]]:
    """Long metrics frame -> ``(key, value, step)`` triples in the module's naming.

    ``metrics_df`` has one row per (pollutant, horizon[, split]): columns ``pollutant``,
    ``horizon`` (hours ahead, int), optional ``split`` (else ``default_split``) and one
    numeric column per metric (e.g. ``mse``, ``rmse``, ``mae``, ``r2``). Per-horizon values
    share one key with ``step=horizon``; means (plain means of the per-horizon values, the
    mean RMSE, not the RMSE of all errors) are logged at step 0. Non-finite values are
    skipped: MLflow stores them but charts and comparisons break.
    """
    per_horizon = [
        (key, value, int(horizon))
        for (key, horizon), value in _metric_values(metrics_df, default_split, True).items()
    ]
    means = [
        (key, value, 0)
        for (key, _), value in _metric_values(metrics_df, default_split, False).items()
    ]
    return per_horizon + means


def _metric_values(
    metrics_df: pd.DataFrame, default_split: str, per_horizon: bool
) -> dict[tuple[str, int], float]:
    """``(key, horizon) -> value`` per horizon, or ``(key, 0) -> value`` for the means."""
    required = {"pollutant", "horizon"}
    missing = required - set(metrics_df.columns)
    if missing:
        raise ValueError(f"metrics_df lacks columns {sorted(missing)}; has {list(metrics_df)}")
    frame = metrics_df.copy()
    if "split" not in frame.columns:
        frame["split"] = default_split
    value_columns = [
        c
        for c in frame.columns
        if c not in _NOT_METRICS and np.issubdtype(frame[c].dtype, np.number)
    ]
    values: dict[tuple[str, int], float] = {}

    def put(name: str, step: int, value: Any) -> None:
        value = float(value)
        if math.isfinite(value):
            values[(name, step)] = value

    if per_horizon:
        for row in frame.itertuples(index=False):
            for column in value_columns:
                put(
                    metric_name(row.split, column, row.pollutant),
                    int(row.horizon),
                    getattr(row, column),
                )
        return values
    for (split, pollutant), group in frame.groupby(["split", "pollutant"], sort=True):
        for column in value_columns:
            put(metric_name(split, column, pollutant, "mean"), 0, group[column].mean())
    for split, group in frame.groupby("split", sort=True):
        for column in value_columns:
            put(f"{split}_{column}_mean", 0, group[column].mean())
    return values


def log_horizon_metrics(
    client: Any, run_id: str, metrics_df: pd.DataFrame, default_split: str = "test"
) -> dict[str, float]:
    """Log :func:`horizon_metrics` to ``run_id`` in batches; return the means."""
    from mlflow.entities import Metric

    timestamp = _now_ms()
    triples = horizon_metrics(metrics_df, default_split)
    _log_metrics_batched(client, run_id, [Metric(k, v, timestamp, s) for k, v, s in triples])
    return {k: v for k, v, _ in triples if k.endswith("_mean")}


def log_step_metrics(client: Any, run_id: str, triples: Sequence[tuple[str, float, int]]) -> None:
    """Log ``(key, value, step)`` triples to ``run_id`` in batches."""
    from mlflow.entities import Metric

    timestamp = _now_ms()
    _log_metrics_batched(client, run_id, [Metric(k, v, timestamp, s) for k, v, s in triples])


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def epoch_logger(client: Any, run_id: str) -> Any:
    """A Keras callback logging each epoch's metrics to ``run_id`` as it ends (``step=epoch``),
    so a candidate's curves and its run's duration are live in the MLflow UI while it trains."""
    import keras
    from mlflow.entities import Metric

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        timestamp = _now_ms()
        metrics = [
            Metric(key, float(value), timestamp, epoch)
            for key, value in (logs or {}).items()
            if isinstance(value, int | float | np.floating) and math.isfinite(float(value))
        ]
        if metrics:
            client.log_batch(run_id, metrics=metrics, synchronous=True)

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def start_candidate_run(
    client: Any,
    experiment_id: str,
    parent_run_id: str | None,
    name: str,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Create a candidate's run (nested under ``parent_run_id``) before it trains; its id is
    then given to :func:`epoch_logger` and :func:`log_candidate_run`."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    run_tags = {"candidate": name, **(tags or {})}
    if parent_run_id:
        run_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    return client.create_run(experiment_id, run_name=name, tags=run_tags).info.run_id


@dataclass(frozen=True)
class CandidateRun:
    """Where a candidate landed: its run, and the logged model's URI (``models:/m-...``)."""

    run_id: str
    model_uri: str
    model_id: str | None
    metrics: dict[str, float]


def _log_metrics_batched(client: Any, run_id: str, metrics: list[Any]) -> None:
    for start in range(0, len(metrics), _BATCH_LIMIT):
        client.log_batch(run_id, metrics=metrics[start : start + _BATCH_LIMIT], synchronous=True)


def _history_summary(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    lengths = [len(v) for v in history.values()]
    if lengths:
        summary["epochs_run"] = float(max(lengths))
    val_loss = [float(v) for v in history.get("val_loss", [])]
    finite = [(v, i) for i, v in enumerate(val_loss) if math.isfinite(v)]
    if finite:
        best, epoch = min(finite)
        summary["best_val_loss"] = best
        summary["best_epoch"] = float(epoch)
    return summary


def log_candidate_run(
    params: LSTMParams,
    history: Mapping[str, Sequence[float]],
    metrics_df: pd.DataFrame,
    plots: Mapping[str, bytes],
    model: Any,
    signature_example: np.ndarray | Sequence[np.ndarray],
    pip_requirements: Sequence[str] | None = None,
    *,
    metadata: ModelMetadata | None = None,
    fit_seconds: float | None = None,
    parent_run_id: str | None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> CandidateRun:
    """Log one trained candidate as its own MLflow run; return where it went.

    With ``run_id`` (from :func:`start_candidate_run`) the results go to that run, whose
    epoch curves :func:`epoch_logger` already logged live; without it a new nested run is
    created and the curves come from ``history``. The logged model is named after the
    candidate and carries ``tags`` too (e.g. the Dagster run and asset that produced it).

    The run is nested under ``parent_run_id`` (the grid's parent run, which dagster-mlflow
    opens for the Dagster run), never under whatever run happens to be active; a run from
    :func:`start_candidate_run` already names its parent, and is resumed as ``nested`` only
    because that parent may be this thread's active run. It records
    params (``params.as_dict()`` plus ``name``), per-epoch curves, ``metrics_df`` per
    horizon and as means (:func:`horizon_metrics`), ``plots`` (file name -> PNG/SVG bytes) under
    ``plots/``, ``metadata.json`` under ``model_package/``, and the Keras model via
    ``mlflow.keras.log_model`` with an inferred tensor signature and an explicit pip
    requirement list (``pip_requirements`` or :func:`default_pip_requirements`), which
    avoids MLflow's slow subprocess-based requirement inference. The model's MLmodel file
    also carries the metadata dict (key ``airquality_package``), so it travels with every
    registered version.
    """
    import mlflow
    import mlflow.keras
    from mlflow.entities import Metric
    from mlflow.models import infer_signature

    arrays = [signature_example] if isinstance(signature_example, np.ndarray) else signature_example
    example = [np.asarray(a, dtype=np.float32) for a in arrays]
    prediction = np.asarray(model.predict(example[0] if len(example) == 1 else example, verbose=0))
    # One named tensor per model input (observations, and forecast_weather when it reads one).
    named = (
        example[0]
        if len(example) == 1
        else {tensor.name: a for tensor, a in zip(model.inputs, example, strict=True)}
    )
    signature = infer_signature(named, prediction)
    requirements = list(pip_requirements) if pip_requirements else default_pip_requirements()
    triples = horizon_metrics(metrics_df)
    flat = {k: v for k, v, _ in triples if k.endswith("_mean")}
    summary = _history_summary(history)
    if fit_seconds is not None:
        summary["fit_seconds"] = float(fit_seconds)

    run_tags = {"candidate": params.name, **(tags or {})}
    curves_logged_live = run_id is not None
    started = (
        mlflow.start_run(run_id=run_id, nested=True)
        if run_id is not None
        else mlflow.start_run(
            run_name=run_name or params.name,
            parent_run_id=parent_run_id,
            experiment_id=experiment_id,
            tags=run_tags,
        )
    )
    with started as run:
        run_id = run.info.run_id
        client = mlflow.MlflowClient()
        mlflow.log_params({**params.as_dict(), "name": params.name})

        with tempfile.TemporaryDirectory(prefix="aq-candidate-") as tmp:
            if plots:
                plot_dir = Path(tmp) / "plots"
                plot_dir.mkdir()
                for file_name, content in plots.items():
                    name = Path(file_name).name
                    target = plot_dir / (name if Path(name).suffix else f"{name}.png")
                    target.write_bytes(content)
                mlflow.log_artifacts(str(plot_dir), artifact_path="plots")
            if metadata is not None:
                package_dir = Path(tmp) / PACKAGE_ARTIFACT_DIR
                package_dir.mkdir()
                (package_dir / METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
                mlflow.log_artifacts(str(package_dir), artifact_path=PACKAGE_ARTIFACT_DIR)

        # log_model links the run's metrics at its ``step`` to the logged model: at the
        # default step 0 the model page showed the FIRST epoch's loss. Logged at the step
        # after the last epoch, before the results, it links nothing by itself; the model's
        # own figures (means over horizons, best epoch) are linked explicitly below.
        epochs = max((len(v) for v in history.values()), default=0)
        model_info = mlflow.keras.log_model(
            model,
            name=params.name,
            signature=signature,
            pip_requirements=requirements,
            metadata={MLMODEL_METADATA_KEY: mlmodel_metadata(metadata)} if metadata else None,
            tags=run_tags,
            step=epochs,
        )
        model_id = getattr(model_info, "model_id", None)

        timestamp = _now_ms()
        metrics = (
            []
            if curves_logged_live
            else [
                Metric(key, float(value), timestamp, step)
                for key, values in history.items()
                for step, value in enumerate(values)
                if math.isfinite(float(value))
            ]
        )
        metrics += [Metric(k, v, timestamp, s) for k, v, s in triples if k not in flat]
        metrics += [
            Metric(k, v, timestamp, 0, model_id=model_id) for k, v in {**flat, **summary}.items()
        ]
        _log_metrics_batched(client, run_id, metrics)
    return CandidateRun(
        run_id=run_id,
        model_uri=model_info.model_uri,
        model_id=getattr(model_info, "model_id", None),
        metrics={**flat, **summary},
    )


def mlmodel_metadata(metadata: ModelMetadata) -> dict[str, Any]:
    """The package metadata as stored in MLmodel, with the drift reference as one JSON string.

    As YAML the reference is ~28,000 lines (a value sample per feature), and every reader of
    MLmodel (``mlflow.keras.load_model``, the registry check, the MLflow UI) parses it with
    PyYAML's pure-Python loader: seconds per read. One string scalar parses in milliseconds.
    """
    stored = asdict(metadata)
    stored["reference_profile"] = json.dumps(metadata.reference_profile, separators=(",", ":"))
    return stored


def load_mlmodel(model_uri: str) -> Any:
    """``mlflow.models.Model.load`` that also accepts ``file://`` directory URIs.

    MLflow 3.17's ``Model.load`` tests ``os.path.exists`` on the raw ``file://...`` string
    and fails, yet ``file://`` is exactly what ``get_model_version_download_uri`` returns for
    local artifact stores; a local path works.
    """
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from mlflow.models import Model

    parsed = urlparse(model_uri)
    if parsed.scheme == "file":
        model_uri = url2pathname(parsed.path)
    return Model.load(model_uri)


def read_package_metadata(
    model_uri: str, run_id: str | None = None, tracking_uri: str | None = None
) -> ModelMetadata | None:
    """The ModelMetadata logged with a model: MLmodel ``metadata`` first, then the run artifact.

    ``model_uri`` is anything :func:`load_mlmodel` accepts: a storage location (what
    ``MlflowClient.get_model_version_download_uri`` returns, independent of the global
    tracking URI), ``models:/m-...``, ``models:/name/3`` or ``runs:/...``. Returns None for
    models logged without metadata.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    stored = (load_mlmodel(model_uri).metadata or {}).get(MLMODEL_METADATA_KEY)
    if stored is not None:
        profile = stored.get("reference_profile")
        if isinstance(profile, str):
            stored = {**stored, "reference_profile": json.loads(profile)}
        return ModelMetadata(**stored)
    if run_id is None:
        return None
    with tempfile.TemporaryDirectory(prefix="aq-metadata-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=f"{PACKAGE_ARTIFACT_DIR}/{METADATA_FILE}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
        except (MlflowException, OSError):
            return None
        return ModelMetadata.from_json(Path(local).read_text(encoding="utf-8"))
