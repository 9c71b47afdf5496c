"""``bento``: the champion packaged as a BentoML service, built offline."""

import os
import time

import dagster as dg

from airquality_assets.defs.mlflow import MLFLOW_KEY
from airquality_assets.settings import get_settings, project_root


@dg.asset(
    deps=["champion_model"],
    group_name="serving",
    kinds={"bentoml"},
    required_resource_keys={MLFLOW_KEY},
    description=(
        "The MLflow champion imported into the BentoML model store (with its feature "
        "metadata and version) and the bento built from bento/bentofile.yaml. Idempotent: "
        "an unchanged champion re-uses the stored model and the built bento."
    ),
)
def bento(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = get_settings()
    # BentoML reads BENTOML_HOME when it is imported: keep its store in the data dir.
    os.environ.setdefault("BENTOML_HOME", str(settings.bentoml_home))
    from airquality_assets.serving.export import NoChampionError, build_service, export_champion

    started = time.perf_counter()
    try:
        exported = export_champion(settings.model_name)
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
            "bentoml_home": dg.MetadataValue.path(os.environ["BENTOML_HOME"]),
        }
    )
