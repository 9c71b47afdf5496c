"""``bento``: the champion packaged as a BentoML service, built offline."""

import os
import time
from pathlib import Path

import dagster as dg

from airquality_assets.catalog import SERVING_GROUP
from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.settings import project_root


def use_bentoml_home(home: Path) -> None:
    """Point BentoML's store at ``home``.

    BentoML takes its store location only from ``BENTOML_HOME`` (read on first use, and by
    the ``bentoml build`` subprocess), so this is the one place that writes it.
    """
    os.environ["BENTOML_HOME"] = str(home)


@dg.asset(
    deps=["champion_model"],
    group_name=SERVING_GROUP,
    kinds={"bentoml"},
    description=(
        "The MLflow champion imported into the BentoML model store (with its feature "
        "metadata and version) and the bento built from bento/bentofile.yaml. Idempotent: "
        "an unchanged champion re-uses the stored model and the built bento."
    ),
)
def bento(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    # Required for its set-up (Dagster passes resources by name): the export reads the
    # registry through the process-wide tracking URI.
    mlflow: MlflowResource,  # noqa: ARG001
) -> dg.MaterializeResult:
    use_bentoml_home(deployment.settings.bentoml_home)
    from airquality_assets.serving.export import NoChampionError, build_service, export_champion

    started = time.perf_counter()
    try:
        exported = export_champion(deployment.settings.model_name)
    except NoChampionError as exc:
        raise dg.Failure(str(exc)) from exc
    built = build_service(project_root() / "bento", exported["model_tag"])
    context.log.info(
        f"bento {built['bento_tag']} with model {exported['model_tag']} "
        f"(MLflow v{exported['mlflow_version']}) in {time.perf_counter() - started:.1f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "bento_tag": built["bento_tag"],
            "model_tag": exported["model_tag"],
            "mlflow_version": exported["mlflow_version"],
            "size_bytes": built["size_bytes"],
            "rebuilt": built["built"],
            "bentoml_home": dg.MetadataValue.path(deployment.settings.bentoml_home),
        }
    )
