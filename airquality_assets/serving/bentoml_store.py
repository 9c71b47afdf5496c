"""Hand a model package to BentoML: import into the model store, build the Bento.

BentoML is imported inside the functions so that the rest of ``airquality_assets.serving``
(and Dagster code that only validates or predicts) does not pay for importing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airquality_assets.ml.package import (
    DEFAULT_MODEL_NAME,
    METADATA_FILE,
    MODEL_FILE,
    read_metadata,
)
from airquality_assets.serving.integrity import verify_package

MLFLOW_VERSION_KEY = "mlflow_version"


def find_model(mlflow_version: str, name: str = DEFAULT_MODEL_NAME) -> Any | None:
    """The stored BentoML model imported from this MLflow version, if any."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name)
    except NotFound:
        return None
    for model in models:
        if str(model.info.metadata.get(MLFLOW_VERSION_KEY)) == str(mlflow_version):
            return model
    return None


def import_model_package(
    package_dir: str | os.PathLike[str],
    name: str = DEFAULT_MODEL_NAME,
    *,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Copy a model package into the BentoML model store; return the model tag.

    Idempotent on the MLflow model version (``ModelMetadata.model_version``): re-running
    the Dagster asset for an already imported champion returns the existing tag instead of
    creating a duplicate model that ``:latest`` would then point at.
    """
    import bentoml

    package_dir = Path(package_dir)
    package_meta = read_metadata(package_dir)
    if not (package_dir / MODEL_FILE).exists():
        raise FileNotFoundError(f"no {MODEL_FILE} in model package {package_dir}")
    verify_package(package_dir)  # a corrupt archive never reaches the store's ":latest"
    version = str(package_meta.model_version)
    existing = find_model(version, name)
    if existing is not None:
        return str(existing.tag)

    model_metadata: dict[str, Any] = {
        MLFLOW_VERSION_KEY: version,
        "model_name": package_meta.model_name,
        "lookback": package_meta.lookback,
        "horizons": list(package_meta.horizons),
        "target_pollutants": list(package_meta.target_pollutants),
        "training_window": dict(package_meta.training_window),
        **dict(metadata or {}),
    }
    model_labels = {"project": "airquality-assets", "mlflow_version": version, **(labels or {})}
    with bentoml.models.create(name, labels=model_labels, metadata=model_metadata) as model:
        for filename in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(package_dir / filename, model.path_of(filename))
    return str(model.tag)


def build_bento(
    bento_dir: str | os.PathLike[str], model_tag: str | None = None, *, timeout_s: float = 600.0
) -> tuple[str, int]:
    """Build the Bento from ``bento_dir/bentofile.yaml``; return ``(tag, size_bytes)``.

    The build context is ``bento_dir``'s parent (the repository root), because the Bento
    must carry the project's ``airquality_assets`` serving code next to ``service.py``.

    Runs the ``bentoml build`` CLI of this interpreter in a subprocess (the build imports
    the service module, which loads Keras and the model; keeping that out of the calling
    process, e.g. a Dagster run worker, keeps its memory flat). BentoML 1.4 shells out to
    ``uv``; the interpreter's ``bin`` directory is put first on PATH so the venv's ``uv``
    is found. ``bentofile.yaml`` sets ``lock_packages: false`` so no index is contacted.
    ``model_tag`` is handed to the service's settings, so the bento declares that model.
    """
    import bentoml

    bento_dir = Path(bento_dir).resolve()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    if model_tag is not None:  # the service declares exactly this model, whatever the env says
        name, _, version = model_tag.partition(":")
        env.update(AIRQUALITY_MODEL_NAME=name, AIRQUALITY_MODEL_VERSION=version or "latest")
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bentoml",
            "build",
            "-f",
            str(bento_dir / "bentofile.yaml"),
            "--output",
            "tag",
            str(bento_dir.parent),
        ],
        cwd=bento_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"bentoml build failed ({result.returncode}) after "
            f"{time.perf_counter() - started:.0f}s:\n{result.stderr[-4000:]}"
        )
    tag_line = [line for line in result.stdout.splitlines() if line.startswith("__tag__:")]
    tag = tag_line[-1].split(":", 1)[1] if tag_line else result.stdout.strip().splitlines()[-1]
    bento = bentoml.bentos.get(tag)
    size = sum(p.stat().st_size for p in Path(bento.path).rglob("*") if p.is_file())
    return str(bento.tag), size
