"""Shared fixtures: every test gets its own data directory; nothing touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from airquality_assets.settings import Settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh AIRQUALITY_DATA_DIR for the test, with the default (replay) settings."""
    directory = tmp_path / "data"
    monkeypatch.setenv("AIRQUALITY_DATA_DIR", str(directory))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("BENTOML_HOME", str(directory / "bentoml"))
    for name in ("AIRQUALITY_SOURCE", "AIRQUALITY_LOCATIONS", "AIRQUALITY_TARGETS"):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def settings(data_dir: Path) -> Settings:  # noqa: ARG001 (its environment, by name)
    return Settings.from_env()
