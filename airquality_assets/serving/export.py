"""Champion hand-over: MLflow registry alias ``champion`` -> BentoML model store -> bento.

Plain functions (no Dagster) so the ``bento`` asset stays thin and the same steps can run
from a shell. Both steps are idempotent on the champion's MLflow version: with an unchanged
champion a re-run only looks things up.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from airquality_assets.ml.package import save_package
from airquality_assets.ml.registry import DEFAULT_ALIAS, NoChampionError, load_champion
from airquality_assets.serving.bentoml_store import build_bento, find_model, import_model_package

__all__ = ["NoChampionError", "build_service", "export_champion"]


def export_champion(registered_name: str, alias: str = DEFAULT_ALIAS) -> dict[str, Any]:
    """Import the current champion into the BentoML store; return tag and versions."""
    import mlflow

    from airquality_assets.ml.logged_model import load_logged_model

    client = mlflow.MlflowClient()
    try:
        uri, version, metadata = load_champion(registered_name, alias, client=client)
    except NoChampionError as exc:
        raise NoChampionError(
            f"no '{alias}' alias on registered model {registered_name!r}: run the training "
            "job first (bash scripts/demo.sh, or materialize champion_model)"
        ) from exc
    if metadata is None:
        raise NoChampionError(f"{uri} was logged without model-package metadata")
    existing = find_model(version, registered_name)  # one name: MLflow and BentoML
    if existing is not None:
        return {"model_tag": str(existing.tag), "mlflow_version": version, "imported": False}

    tags = client.get_model_version(registered_name, version).tags
    metadata.test_metrics = {
        "mean_rmse_ug_m3": json.loads(tags.get("test_mean_rmse", "{}")),
        "rmse_ratio_vs_persistence": float(tags.get("rmse_ratio_vs_persistence", "nan")),
        "test_window": json.loads(tags.get("test_window", "{}")),
    }
    model = load_logged_model(uri)  # the LSTM, or the LSTM + LightGBM ensemble it serves
    with tempfile.TemporaryDirectory(prefix="aq-champion-") as tmp:
        package = save_package(model, metadata, Path(tmp) / "package")
        tag = import_model_package(package, registered_name)
    return {"model_tag": tag, "mlflow_version": version, "imported": True}


def existing_bento_for(model_tag: str) -> Any | None:
    """A built bento that already carries ``model_tag``, if any (newest first)."""
    import bentoml

    for bento in sorted(bentoml.bentos.list(), key=lambda b: b.info.creation_time, reverse=True):
        # The service declares its model (BentoModel), so the bento lists it per service.
        models = [*bento.info.models, *(m for s in bento.info.services for m in s.models)]
        if any(str(m.tag) == model_tag for m in models):
            return bento
    return None


def build_service(bento_dir: Path, model_tag: str) -> dict[str, Any]:
    """Build the bento unless one with this exact model already exists."""
    existing = existing_bento_for(model_tag)
    if existing is not None:
        size = sum(p.stat().st_size for p in Path(existing.path).rglob("*") if p.is_file())
        return {"bento_tag": str(existing.tag), "size_bytes": size, "built": False}
    tag, size = build_bento(bento_dir, model_tag)
    return {"bento_tag": tag, "size_bytes": size, "built": True}
