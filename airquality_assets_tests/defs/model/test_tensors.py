"""sequence_tensors' forecast inputs: which error model makes the stand-ins, and the record."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from airquality_assets.defs.model.tensors import SequenceConfig, _issued_by
from airquality_assets.settings import Settings
from airquality_assets.sources.forecast_errors import ForecastErrorModel, stand_in_forecasts
from airquality_assets_tests.transforms.test_forecast_inputs import observed_weather


def stored_forecasts(weather: pd.DataFrame, scale: float) -> pd.DataFrame:
    issues = pd.date_range("2021-01-01", "2021-01-08", freq="6h", tz="UTC")
    return stand_in_forecasts(
        weather, issues, "here", range(1, 49), ForecastErrorModel(scale=scale)
    )


def test_live_stand_ins_use_the_error_calibrated_from_stored_forecasts(tmp_path: Path) -> None:
    weather = observed_weather(days=20)
    stored = stored_forecasts(weather, scale=2.0)  # real forecasts twice as wrong as assumed
    settings = Settings(source="live", data_dir=tmp_path)
    now = pd.Timestamp("2021-01-20T23:00", tz="UTC")
    forecasts, origin = _issued_by(
        dg.build_asset_context(), SequenceConfig(), settings, stored, weather, now
    )
    assert origin["calibrated"] is True
    assert origin["error_scale"] == pytest.approx(2.0, rel=0.15)
    assert origin["kind"] == "issued + stand-in"
    assert origin["issued"] == 29 and origin["stand_in"] == 20 * 4 - 29
    assert forecasts is not None and forecasts["issue_time"].nunique() == 80


def test_replay_keeps_the_configured_error_and_never_reads_a_later_issue(tmp_path: Path) -> None:
    weather = observed_weather(days=10)
    stored = stored_forecasts(weather, scale=2.0)
    settings = Settings(data_dir=tmp_path, forecast_error_scale=1.0)
    now = pd.Timestamp("2021-01-04T00:00", tz="UTC")
    observed = weather[weather["time"] <= now]  # the asset keeps what the clock has seen
    forecasts, origin = _issued_by(
        dg.build_asset_context(), SequenceConfig(), settings, stored, observed, now
    )
    assert origin["calibrated"] is False and origin["error_scale"] == 1.0
    assert origin["issued"] == 13  # 2021-01-01T00 .. 2021-01-04T00, none after the clock
    assert forecasts is not None and forecasts["issue_time"].max() <= now


def test_forecasts_can_be_switched_off(tmp_path: Path) -> None:
    weather = observed_weather(days=2)
    forecasts, origin = _issued_by(
        dg.build_asset_context(),
        SequenceConfig(weather_forecasts=False),
        Settings(data_dir=tmp_path),
        stored_forecasts(weather, 1.0),
        weather,
        pd.Timestamp("2021-01-03", tz="UTC"),
    )
    assert forecasts is None and origin == {}
