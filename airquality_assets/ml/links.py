"""Links between the two UIs: MLflow pages for Dagster metadata, Dagster tags for MLflow.

Pure string functions: the base URLs are configuration (``AIRQUALITY_MLFLOW_UI_URL``,
``AIRQUALITY_DAGSTER_UI_URL``), handed in by the Dagster wiring.

* :class:`MlflowPages` builds the MLflow UI's addresses of a run, a logged model, a model
  version and a registered model (the single-page app's ``#/`` routes of MLflow 3).
* :func:`dagster_tags` is what every MLflow run, logged model and model version made by a
  Dagster step carries: the Dagster run id, the asset, the partition (if any) and the
  address of the run and the asset in the Dagster UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

#: Tag keys on MLflow runs, logged models and model versions.
TAG_RUN_ID = "dagster.run_id"
TAG_ASSET = "dagster.asset"
TAG_PARTITION = "dagster.partition"
TAG_RUN_URL = "dagster.run_url"
TAG_ASSET_URL = "dagster.asset_url"
TAG_JOB = "dagster.job"
#: Query of an MLflow UI address that opens the model-training view (not GenAI).
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def _base(url: str) -> str:
    return url.rstrip("/")


@dataclass(frozen=True)
class MlflowPages:
    """Addresses in the MLflow UI at ``base_url`` (e.g. ``http://127.0.0.1:5000``)."""

    base_url: str

    def experiment(self, experiment_id: str) -> str:
        """The experiment's runs table. MLflow 3.17's UI opens an experiment on its GenAI
        overview unless the address (or the browser's last choice) asks for the model
        training view: its ``mlflow.experimentKind`` tag alone does not decide."""
        return f"{_base(self.base_url)}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"

    def run(self, experiment_id: str, run_id: str) -> str:
        return f"{_base(self.base_url)}/#/experiments/{experiment_id}/runs/{run_id}"

    def logged_model(self, experiment_id: str, model_id: str) -> str:
        return f"{_base(self.base_url)}/#/experiments/{experiment_id}/models/{model_id}"

    def registered_model(self, name: str) -> str:
        return f"{_base(self.base_url)}/#/models/{quote(name, safe='')}"

    def model_version(self, name: str, version: str | int) -> str:
        return f"{self.registered_model(name)}/versions/{version}"

    def artifact(self, run_id: str, path: str) -> str:
        """The raw bytes of a run's artifact as the tracking server serves them (the route
        the MLflow UI's artifact viewer loads): a browser can show a PNG from here inline,
        which is how Dagster's metadata shows a chart (a short Markdown image link; a
        base64 image is too long for Dagster to render inline)."""
        query = f"path={quote(path, safe='/')}&run_uuid={quote(run_id, safe='')}"
        return f"{_base(self.base_url)}/get-artifact?{query}"


def dagster_run_url(base_url: str, run_id: str) -> str:
    return f"{_base(base_url)}/runs/{run_id}"


def dagster_asset_url(base_url: str, asset: str) -> str:
    return f"{_base(base_url)}/assets/{'/'.join(quote(p, safe='') for p in asset.split('/'))}"


def dagster_tags(
    base_url: str,
    run_id: str,
    asset: str | None = None,
    partition: str | None = None,
    job: str | None = None,
) -> dict[str, str]:
    """Tags pointing from an MLflow entity back to the Dagster run (and asset, partition,
    job) that made it."""
    tags = {TAG_RUN_ID: run_id, TAG_RUN_URL: dagster_run_url(base_url, run_id)}
    if asset is not None:
        tags[TAG_ASSET] = asset
        tags[TAG_ASSET_URL] = dagster_asset_url(base_url, asset)
    if partition is not None:
        tags[TAG_PARTITION] = partition
    if job is not None:
        tags[TAG_JOB] = job
    return tags
