"""The code location's name is the same everywhere it is spelled."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from airquality_assets.programs.local_runs import DEFINITIONS_MODULE, LOCATION_NAME

ROOT = Path(__file__).resolve().parents[2]


def test_workspace_pyproject_and_demo_name_the_location_alike() -> None:
    (entry,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION_NAME
    assert entry["python_module"]["module_name"] == DEFINITIONS_MODULE
    dg_project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert dg_project["code_location_name"] == LOCATION_NAME
