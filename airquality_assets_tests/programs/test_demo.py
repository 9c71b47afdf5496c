"""The demo's data half, recorded as the UI records it: every asset's latest materialization
is its newest partition, and each partition's event carries its own figures."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from airquality_assets.programs.demo import run_data_half
from airquality_assets.programs.local_runs import load_code_location
from airquality_assets.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ("raw_air_quality", "raw_weather", "air_quality_hourly", "weather_hourly")


def test_latest_materialization_is_the_newest_month(tmp_path: Path, settings: Settings) -> None:
    with (
        dg.DagsterInstance.from_config(str(tmp_path)) as instance,
        load_code_location(instance, working_directory=str(ROOT)) as location,
    ):
        run_data_half(location, instance, settings, "2014-02-01", "2014-04-30")
        for asset in (*ASSETS, "hourly_observations"):
            latest = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert latest is not None and latest.asset_materialization is not None
            assert latest.asset_materialization.partition == "2014-04-01|beijing", asset
        records = instance.fetch_materializations(
            dg.AssetKey("hourly_observations"), limit=100
        ).records
        first_hours = {
            r.asset_materialization.partition: r.asset_materialization.metadata["first_hour"].value
            for r in records
            if r.asset_materialization is not None
        }
        assert first_hours == {
            f"2014-0{m}-01|beijing": f"2014-0{m}-01 00:00:00+00:00" for m in (2, 3, 4)
        }
