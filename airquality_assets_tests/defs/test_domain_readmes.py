"""Each defs/ domain's README names every asset, check, job, schedule and sensor it defines."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from airquality_assets import defs as defs_package
from airquality_assets.defs import data, loop, model, serving
from airquality_assets.defs.partitions import build_partitions
from airquality_assets.settings import Settings

DEFS_DIR = Path(defs_package.__file__).parent


def _names(definitions: dg.Definitions) -> set[str]:
    names: set[str] = set()
    for asset in definitions.assets or []:
        assert isinstance(asset, dg.AssetsDefinition)
        names |= {key.to_user_string() for key in asset.keys}
        names |= {check.name for check in asset.check_keys}
    for check in definitions.asset_checks or []:
        names |= {key.name for key in check.check_keys}  # type: ignore[union-attr]
    for kind in (definitions.jobs, definitions.schedules, definitions.sensors):
        names |= {item.name for item in kind or []}  # type: ignore[union-attr]
    return names


@pytest.mark.parametrize("domain", ["data", "model", "serving", "loop"])
def test_readme_names_what_the_domain_defines(domain: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    built = {
        "data": lambda: data.definitions(build_partitions(settings)),
        "model": lambda: model.definitions(settings),
        "serving": serving.definitions,
        "loop": lambda: loop.definitions(settings),
    }[domain]()
    readme = (DEFS_DIR / domain / "README.md").read_text()
    missing = sorted(name for name in _names(built) if f"`{name}`" not in readme)
    assert not missing, f"defs/{domain}/README.md does not name {missing}"


def test_the_architecture_page_names_the_data_halfs_assets_and_checks(tmp_path: Path) -> None:
    """docs/architecture.md draws the asset graph and lists the checks: a data asset or check
    added without it is missing from the page readers start at."""
    built = data.definitions(build_partitions(Settings(data_dir=tmp_path)))
    names: set[str] = set()
    for asset in built.assets or []:
        assert isinstance(asset, dg.AssetsDefinition)
        names |= {key.to_user_string() for key in asset.keys}
        names |= {check.name for check in asset.check_keys}
    for check in built.asset_checks or []:
        names |= {key.name for key in check.check_keys}  # type: ignore[union-attr]
    page = (DEFS_DIR.parents[1] / "docs" / "architecture.md").read_text()
    missing = sorted(name for name in names if name not in page)
    assert not missing, f"docs/architecture.md does not name {missing}"
