"""Checks a user of the model assets would ask for: is there a servable champion, and is the
bento serving it?

Both read MLflow's registry through the ``mlflow`` resource (mlflow imported inside); both
warn rather than block: they describe the state after the run, nothing downstream waits.
Both end with a real request: the example body of the model's own contract (with the
weather forecast of its target hours when it reads one) validated and answered by the
serving predictor (:func:`airquality_assets.serving.smoke.answer_example`), from the
registry's champion and from the model the bento packs.
"""

from typing import Any

import dagster as dg

from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.ml.package import ModelMetadata
from airquality_assets.ml.registry import DEFAULT_ALIAS as CHAMPION_ALIAS


def _answers(model: Any, metadata: ModelMetadata, where: str) -> tuple[str | None, dict]:
    """A problem (None: answered) and the metadata of one example request to ``model``."""
    from airquality_assets.serving.smoke import answer_example

    answer = answer_example(model, metadata)
    problem = None if answer.problem is None else f"{where}: {answer.problem}"
    return problem, answer.as_metadata()


def _champion_answers(mlflow: MlflowResource, name: str) -> tuple[str | None, dict]:
    from airquality_assets.ml.logged_model import load_logged_model
    from airquality_assets.ml.registry import read_champion

    record = read_champion(mlflow.client(), name)
    try:
        model, metadata = load_logged_model(record.uri), record.package_metadata()
    except Exception as exc:  # reported by the check, like a status that is not READY
        return f"{record.uri} does not load: {type(exc).__name__}: {exc}", {}
    return _answers(model, metadata, record.uri)


def _bento_answers(deployment: DeploymentResource, model_tag: str) -> tuple[str | None, dict]:
    from airquality_assets.defs.serving.bento import use_bentoml_home

    use_bentoml_home(deployment.settings.bentoml_home)
    import bentoml

    from airquality_assets.ml.package import load_package

    where = f"the bento's model {model_tag}"
    try:
        model, metadata = load_package(bentoml.models.get(model_tag).path)
    except Exception as exc:  # a missing or unreadable stored model: the check says so
        return f"{where} does not load: {type(exc).__name__}: {exc}", {}
    return _answers(model, metadata, where)


def _champion(mlflow: MlflowResource, name: str) -> tuple[object | None, str | None]:
    """The version the alias points at, or None and why not."""
    from airquality_assets.ml.registry import champion_version

    version = champion_version(mlflow.client(), name)
    return version, None if version is not None else f"no '{CHAMPION_ALIAS}' alias on {name}"


@dg.asset_check(
    asset="champion_model",
    description=(
        f"The '{CHAMPION_ALIAS}' alias resolves to a READY model version whose logged model "
        "is READY (what serving and the bento load), and it answers an example request of "
        "its own contract (with the weather forecast when it reads one)"
    ),
)
def champion_is_servable(
    deployment: DeploymentResource, mlflow: MlflowResource
) -> dg.AssetCheckResult:
    name = deployment.settings.model_name
    version, problem = _champion(mlflow, name)
    metadata: dict[str, object] = {
        "registered_model": dg.MetadataValue.url(mlflow.pages().registered_model(name))
    }
    if version is not None:
        metadata["champion_version"] = str(version.version)  # type: ignore[attr-defined]
        metadata["mlflow_champion_version"] = dg.MetadataValue.url(
            mlflow.pages().model_version(name, version.version)  # type: ignore[attr-defined]
        )
        problems = []
        if version.status != "READY":  # type: ignore[attr-defined]
            problems.append(f"version status {version.status}")  # type: ignore[attr-defined]
        model_id = getattr(version, "model_id", None)
        if model_id:
            logged = mlflow.client().get_logged_model(model_id)
            if str(logged.status) not in {"READY", "LoggedModelStatus.READY"}:
                problems.append(f"logged model {model_id} status {logged.status}")
        if not problems:
            served, smoke = _champion_answers(mlflow, name)
            metadata.update(smoke)
            problems += [served] if served else []
        problem = "; ".join(problems) or None
    return dg.AssetCheckResult(
        passed=problem is None,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=problem,
    )


@dg.asset_check(
    asset="bento",
    description=(
        f"The latest bento packages the version the '{CHAMPION_ALIAS}' alias points at, and "
        "its model answers an example request of its own contract"
    ),
)
def bento_serves_champion(
    context: dg.AssetCheckExecutionContext,
    deployment: DeploymentResource,
    mlflow: MlflowResource,
) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(dg.AssetKey("bento"))
    materialization = event.asset_materialization if event else None
    built = materialization.metadata.get("mlflow_version") if materialization is not None else None
    built_version = None if built is None else str(built.value)
    version, problem = _champion(mlflow, deployment.settings.model_name)
    champion_version = None if version is None else str(version.version)  # type: ignore[attr-defined]
    if problem is None and built_version is None:
        problem = "no bento materialization records an MLflow version"
    elif problem is None and built_version != champion_version:
        problem = f"bento packages v{built_version}, the champion is v{champion_version}"
    metadata: dict[str, object] = {
        "bento_version": str(built_version),
        "champion_version": str(champion_version),
    }
    model_tag = materialization.metadata.get("model_tag") if materialization else None
    if problem is None and model_tag is not None:
        problem, smoke = _bento_answers(deployment, str(model_tag.value))
        metadata.update(smoke)
    return dg.AssetCheckResult(
        passed=problem is None,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=problem,
    )
