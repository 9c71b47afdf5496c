"""Calibrating the forecast error model from stored forecasts vs later observations: a known
scale is recovered from synthetic forecasts, per series and pooled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from airquality_assets.data.beijing import magnus_relative_humidity
from airquality_assets.sources.forecast_errors import (
    ERROR_SERIES,
    ForecastErrorModel,
    stand_in_forecasts,
)
from airquality_assets.transforms.forecast_calibration import (
    BY_LEAD_COLUMNS,
    calibrate_error_model,
    forecast_errors,
)

START = datetime(2014, 1, 1, tzinfo=UTC)
ISSUES = [START + timedelta(hours=6 * k) for k in range(240)]  # 60 days, 6-hourly


def observed_weather(days: int = 63, seed: int = 11, location: str = "somewhere") -> pd.DataFrame:
    """Hourly weather far from saturation (the dew-point cap never bites), real wind."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    temp = 12 + 6 * np.sin(np.arange(hours) / 24 * 2 * np.pi) + rng.normal(0, 1, hours)
    dew = temp - 16.0
    return pd.DataFrame(
        {
            "location": location,
            "time": pd.date_range(START, periods=hours, freq="h"),
            "temp": temp,
            "dew": dew,
            "humidity": magnus_relative_humidity(temp, dew),
            "windspeed": rng.uniform(5, 35, hours),
            "winddir": rng.uniform(0, 360, hours),
            "pressure": rng.normal(1012, 7, hours),
        }
    )


def test_a_known_scale_is_recovered_pooled_and_per_series() -> None:
    weather = observed_weather()
    forecasts = stand_in_forecasts(
        weather, ISSUES, "somewhere", model=ForecastErrorModel(scale=1.5, seed=3)
    )
    calibration = calibrate_error_model(forecasts, weather)
    assert calibration is not None
    assert calibration.scale == pytest.approx(1.5, rel=0.05)
    for name in ERROR_SERIES:
        assert calibration.scales[name] == pytest.approx(1.5, rel=0.1), name
        assert calibration.pairs[name] == len(ISSUES) * 48
    assert calibration.ar_coefficient == pytest.approx(0.95, abs=0.03)
    model = calibration.model()
    assert model.scale == calibration.scale
    assert (model.temp_sd24, model.seed, model.ar_coefficient) == (1.8, 0, 0.95)


def test_per_series_scales_recover_one_wrong_figure() -> None:
    weather = observed_weather()
    truth = ForecastErrorModel(temp_sd24=3.6, pressure_sd24=0.6, seed=5)  # 2x and 0.5x
    forecasts = stand_in_forecasts(weather, ISSUES, "somewhere", model=truth)
    calibration = calibrate_error_model(forecasts, weather)
    assert calibration is not None
    assert calibration.scales["temp"] == pytest.approx(2.0, rel=0.1)
    assert calibration.scales["pressure"] == pytest.approx(0.5, rel=0.1)
    for name in ("dew", "wind_u", "wind_v"):
        assert calibration.scales[name] == pytest.approx(1.0, rel=0.1), name
    assert 1.0 < calibration.scale < 2.0  # one scale for all sits between them
    per_series = calibration.model(per_series=True)
    assert per_series.scale == 1.0
    assert per_series.temp_sd24 == pytest.approx(3.6, rel=0.1)
    assert per_series.pressure_sd24 == pytest.approx(0.6, rel=0.1)
    assert per_series.dew_sd24 == pytest.approx(2.0, rel=0.1)
    assert per_series.wind_component_sd24_ms == pytest.approx(1.5, rel=0.1)


def test_the_table_by_lead_follows_the_models_growth() -> None:
    weather = observed_weather()
    forecasts = stand_in_forecasts(weather, ISSUES, "somewhere")
    calibration = calibrate_error_model(forecasts, weather)
    assert calibration is not None
    table = calibration.by_lead
    assert tuple(table.columns) == BY_LEAD_COLUMNS
    temp = table.loc[table["series"] == "temp"].set_index("lead")
    assert list(temp.index) == list(range(1, 49))
    assert temp.loc[24, "model_sd"] == pytest.approx(1.8)
    assert temp.loc[24, "rmse"] == pytest.approx(1.8, rel=0.2)
    assert temp.loc[48, "rmse"] > temp.loc[6, "rmse"] > temp.loc[1, "rmse"]
    assert (temp["pairs"] == len(ISSUES)).all()


def test_perfect_forecasts_have_scale_zero() -> None:
    weather = observed_weather(days=10)
    forecasts = stand_in_forecasts(
        weather, ISSUES[:20], "somewhere", model=ForecastErrorModel(scale=0.0)
    )
    calibration = calibrate_error_model(forecasts, weather)
    assert calibration is not None
    assert calibration.scale == 0.0
    assert set(calibration.scales.values()) == {0.0}
    assert (calibration.by_lead["ratio"] == 0).all()


def test_an_error_flat_in_lead_is_judged_at_the_day_ahead_leads() -> None:
    """Real forecasts are wrong at lead 1 too; the estimator weighs each hour by the model's
    variance at its lead, so an error of sd24 at every lead gives a scale near 1 (the
    likelihood's mean((e/sd)^2) would say 1.5: the 1-3 h leads would decide it)."""
    weather = observed_weather()
    forecasts = stand_in_forecasts(
        weather, ISSUES, "somewhere", model=ForecastErrorModel(scale=0.0)
    )
    rng = np.random.default_rng(8)
    forecasts["temp"] = forecasts["temp"] + rng.normal(0, 1.8, len(forecasts))
    calibration = calibrate_error_model(forecasts, weather)
    assert calibration is not None
    assert calibration.scales["temp"] == pytest.approx(np.sqrt(24 / 24.5), rel=0.05)


def test_nothing_observed_yet_is_none() -> None:
    weather = observed_weather(days=5)
    later = [datetime(2014, 6, 1, tzinfo=UTC)]
    forecasts = stand_in_forecasts(observed_weather(days=200), later, "somewhere")
    assert calibrate_error_model(forecasts, weather) is None
    few = stand_in_forecasts(weather, ISSUES[:2], "somewhere")
    assert calibrate_error_model(few, weather, min_pairs=10_000) is None
    assert calibrate_error_model(few, weather) is not None


def test_errors_match_forecast_and_observation_by_location_and_hour() -> None:
    here, there = observed_weather(seed=1), observed_weather(seed=2, location="elsewhere")
    observations = pd.concat([here, there], ignore_index=True)
    forecast = stand_in_forecasts(here, ISSUES[:3], "somewhere", leads=range(1, 60))
    errors = forecast_errors(forecast, observations)
    assert set(errors["location"]) == {"somewhere"}
    assert errors["lead"].max() == 48  # leads past the frame's 48 are left out
    assert len(errors) == 3 * 48
    model_errors = ForecastErrorModel().errors("somewhere", ISSUES[:3], 48)
    np.testing.assert_allclose(errors["temp"].to_numpy(), model_errors["temp"].ravel())
    np.testing.assert_allclose(errors["wind_u"].to_numpy(), model_errors["wind_u"].ravel())


def test_wind_errors_treat_calm_as_a_zero_vector_and_an_unknown_direction_as_unknown() -> None:
    time = pd.date_range(START + timedelta(hours=1), periods=3, freq="h")
    observed = pd.DataFrame(
        {
            "location": "x",
            "time": time,
            "windspeed": [0.0, 10.0, 10.0],
            "winddir": [np.nan, np.nan, 90.0],
            "temp": [np.nan, 1.0, 2.0],
        }
    )
    forecast = observed.assign(
        issue_time=pd.Timestamp(START),
        lead=[1, 2, 3],
        windspeed=[5.0, 10.0, 10.0],
        winddir=[90.0, 90.0, 0.0],
        temp=[1.0, 1.5, 2.0],
    )
    errors = forecast_errors(forecast, observed)
    assert errors["wind_u"].iloc[0] == pytest.approx(5.0)  # calm -> 5 km/h from the east
    assert errors["wind_v"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(errors["wind_u"].iloc[1])  # a speed without a direction: no vector
    assert errors["wind_u"].iloc[2] == pytest.approx(-10.0)
    assert errors["wind_v"].iloc[2] == pytest.approx(10.0)
    assert np.isnan(errors["temp"].iloc[0]) and errors["temp"].iloc[1] == 0.5
