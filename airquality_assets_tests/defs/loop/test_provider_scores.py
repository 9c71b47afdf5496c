"""forecast_accuracy's OpenWeatherMap lines: scored from the stored issues in live mode,
said to be unavailable in replay."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd

from airquality_assets.defs.data.ingestion import RAW_AIR_POLLUTION_FORECAST
from airquality_assets.defs.loop import assets
from airquality_assets.defs.resources import RawStore
from airquality_assets.settings import Settings
from airquality_assets_tests.monitoring.test_provider_forecasts import _body

NOW = datetime(2024, 3, 10, 0, tzinfo=UTC)


def test_the_stored_owm_issues_are_scored_in_live_mode(tmp_path) -> None:
    settings = Settings(source="live", data_dir=tmp_path)
    location = settings.location_names[0]
    store = RawStore(base_dir=str(tmp_path))
    # 8 days of hourly issues across the month boundary, each 3 ug/m3 above the truth
    first = NOW - timedelta(days=8)
    for i in range(8 * 24):
        issued = first + timedelta(hours=i)
        store.write_issue(RAW_AIR_POLLUTION_FORECAST, location, issued, _body(issued, [23.0] * 30))
    times = pd.date_range(first, NOW, freq="h", tz="UTC")
    observations = pd.DataFrame({"location": location, "time": times, "pm2_5": 20.0})

    metadata = assets.provider_scores(settings, store, observations, NOW, range(1, 25))

    assert metadata["openweathermap_forecast"] == f"{8 * 24} issue(s) scored"
    assert math.isclose(metadata["openweathermap_rmse_7d_mean"], 3.0)
    assert "| 24 |" in metadata["openweathermap_scores"].value


def test_nothing_stored_in_live_mode_says_so(tmp_path) -> None:
    settings = Settings(source="live", data_dir=tmp_path)
    observations = pd.DataFrame({"location": [], "time": pd.to_datetime([], utc=True),
                                 "pm2_5": []})  # fmt: skip
    metadata = assets.provider_scores(
        settings, RawStore(base_dir=str(tmp_path)), observations, NOW, range(1, 25)
    )
    assert metadata["openweathermap_forecast"] == "none stored"
    assert math.isnan(metadata["openweathermap_rmse_7d_mean"])


def test_replay_has_no_stand_in_for_it(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    metadata = assets.provider_scores(
        settings, RawStore(base_dir=str(tmp_path)), pd.DataFrame(), NOW, range(1, 25)
    )
    assert metadata == {"openweathermap_forecast": "not available in replay"}
