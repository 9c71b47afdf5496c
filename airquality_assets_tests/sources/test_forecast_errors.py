"""The seeded forecast error model: deterministic draws, the documented figures, AR(1) leads,
and stand-in forecasts that stay physically consistent (scale 0 is an exact identity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from airquality_assets.data.beijing import magnus_relative_humidity
from airquality_assets.sources.forecast_errors import (
    ERROR_SERIES,
    MAX_LEAD_HOURS,
    MS_TO_KMH,
    PERTURBED,
    ForecastErrorModel,
    apply_errors,
    issue_epochs,
    perturb_frame,
    stand_in_forecasts,
)

ISSUE = datetime(2014, 3, 1, 6, tzinfo=UTC)
#: The issue's figures at 24 h, in the frame's units (wind components in km/h).
DOCUMENTED_SD24 = {
    "temp": 1.8,
    "dew": 2.0,
    "pressure": 1.2,
    "wind_u": 1.5 * 3.6,
    "wind_v": 1.5 * 3.6,
}


def many_issues(count: int, start: datetime = datetime(2012, 1, 1, tzinfo=UTC)) -> list[datetime]:
    return [start + timedelta(hours=6 * k) for k in range(count)]


def hourly_weather(hours: int = 24 * 10, seed: int = 7) -> pd.DataFrame:
    """Observed hourly weather in weather_hourly's columns (a dry, windy, unsaturated air)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2014-03-01", periods=hours, freq="h", tz="UTC")
    temp = np.round(10 + 5 * np.sin(np.arange(hours) / 24 * 2 * np.pi), 1)
    dew = temp - 8.0
    frame = pd.DataFrame(
        {
            "location": "beijing",
            "time": time,
            "temp": temp,
            "feelslike": temp - 1.0,
            "humidity": np.round(magnus_relative_humidity(temp, dew), 2),
            "dew": dew,
            "precip": rng.exponential(0.2, hours),
            "windgust": rng.uniform(10, 40, hours),
            "windspeed": np.round(rng.uniform(2, 30, hours), 1),
            "winddir": np.round(rng.uniform(0, 360, hours), 1),
            "pressure": np.round(rng.normal(1013, 6, hours), 1),
            "is_rain": (rng.uniform(size=hours) < 0.1).astype(float),
            "pm2_5": rng.gamma(2, 30, hours),  # a pollutant: never carried into a forecast
        }
    )
    return frame


def wind_components(speed: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    radians = np.deg2rad(direction)
    return speed * np.sin(radians), speed * np.cos(radians)


# --- determinism ----------------------------------------------------------------------------


def test_errors_are_a_function_of_location_issue_and_seed_only() -> None:
    model = ForecastErrorModel()
    first = model.errors("beijing", [ISSUE], 48)
    again = ForecastErrorModel().errors("beijing", [ISSUE], 48)
    for name in ERROR_SERIES:
        assert first[name].shape == (1, 48)
        np.testing.assert_array_equal(first[name], again[name])
    elsewhere = model.errors("london", [ISSUE], 48)
    later = model.errors("beijing", [ISSUE + timedelta(hours=6)], 48)
    reseeded = ForecastErrorModel(seed=1).errors("beijing", [ISSUE], 48)
    for other in (elsewhere, later, reseeded):
        assert not np.allclose(first["temp"], other["temp"])


def test_an_issue_draws_the_same_errors_alone_or_among_others_and_whatever_leads_are_asked() -> (
    None
):
    model = ForecastErrorModel()
    issues = many_issues(5)
    together = model.errors("beijing", issues, 48)
    alone = model.errors("beijing", [issues[3]], 24)
    for name in ERROR_SERIES:
        np.testing.assert_array_equal(together[name][3, :24], alone[name][0])
    # the errors of other zones' spellings of the same instant are the same
    plus_eight = timezone(timedelta(hours=8))
    local = model.errors("beijing", [issues[3].astimezone(plus_eight)], 24)
    np.testing.assert_array_equal(local["temp"], alone["temp"])


def test_scale_multiplies_the_same_draws() -> None:
    unit = ForecastErrorModel().errors("beijing", [ISSUE], 48)
    double = ForecastErrorModel(scale=2.0).errors("beijing", [ISSUE], 48)
    zero = ForecastErrorModel(scale=0.0).errors("beijing", [ISSUE], 48)
    for name in ERROR_SERIES:
        np.testing.assert_allclose(double[name], 2 * unit[name], rtol=1e-12)
        assert (zero[name] == 0).all()


def test_a_re_made_stand_in_is_identical() -> None:
    weather = hourly_weather()
    one = stand_in_forecasts(weather, many_issues(8, ISSUE), "beijing")
    two = stand_in_forecasts(
        weather.sample(frac=1.0, random_state=3), many_issues(8, ISSUE), "beijing"
    )
    pd.testing.assert_frame_equal(one, two)  # row order of the observations does not matter


# --- the documented figures -------------------------------------------------------------------


def test_sd_grows_with_the_square_root_of_lead_and_is_the_documented_figure_at_24h() -> None:
    model = ForecastErrorModel()
    for name, sd24 in DOCUMENTED_SD24.items():
        assert model.sd(name, [24])[0] == pytest.approx(sd24)
        sd = model.sd(name, np.arange(1, 49))
        assert (np.diff(sd) > 0).all()  # grows with every lead
        assert sd[0] == pytest.approx(sd24 * np.sqrt(1 / 24))
        assert sd[47] == pytest.approx(sd24 * np.sqrt(2))  # past 24 h it keeps growing
    assert model.sd("temp", [0])[0] == 0.0
    assert ForecastErrorModel(scale=1.5).sd("dew", [24])[0] == pytest.approx(3.0)


def test_drawn_errors_have_the_documented_sd_at_24h_and_their_growth() -> None:
    """3000 issues: the sample sd of a N(0, s) draw is within 3 % of s with ~4 sigma margin."""
    errors = ForecastErrorModel().errors("beijing", many_issues(3000), 48)
    for name, sd24 in DOCUMENTED_SD24.items():
        drawn = errors[name]
        assert drawn[:, 23].std() == pytest.approx(sd24, rel=0.05), name
        assert drawn[:, 5].std() == pytest.approx(sd24 * 0.5, rel=0.05), name  # lead 6
        assert drawn[:, 47].std() == pytest.approx(sd24 * np.sqrt(2), rel=0.05), name
        assert abs(drawn[:, 23].mean()) < 0.1 * sd24  # unbiased


def test_errors_are_ar1_across_the_leads_of_an_issue_and_independent_across_series() -> None:
    model = ForecastErrorModel()
    errors = model.errors("beijing", many_issues(3000), 48)
    leads = np.arange(1, 49)
    for name in ERROR_SERIES:
        standard = errors[name] / model.sd(name, leads)
        for lag in (1, 6, 12):
            r = np.corrcoef(standard[:, 23], standard[:, 23 + lag])[0, 1]
            assert r == pytest.approx(0.95**lag, abs=0.04), (name, lag)
        assert standard.std(axis=0) == pytest.approx(np.ones(48), abs=0.06)  # unit variance
    r_temp_dew = np.corrcoef(errors["temp"][:, 23], errors["dew"][:, 23])[0, 1]
    r_u_v = np.corrcoef(errors["wind_u"][:, 23], errors["wind_v"][:, 23])[0, 1]
    assert abs(r_temp_dew) < 0.06 and abs(r_u_v) < 0.06
    # issues are independent of each other: consecutive issues' 24 h errors do not correlate
    temp24 = errors["temp"][:, 23]
    assert abs(np.corrcoef(temp24[:-1], temp24[1:])[0, 1]) < 0.06


def test_ar_coefficient_zero_gives_independent_leads() -> None:
    model = ForecastErrorModel(ar_coefficient=0.0)
    errors = model.errors("beijing", many_issues(2000), 48)
    standard = errors["temp"] / model.sd("temp", np.arange(1, 49))
    assert abs(np.corrcoef(standard[:, 10], standard[:, 11])[0, 1]) < 0.07


# --- stand-in forecasts ------------------------------------------------------------------------


def test_scale_zero_gives_exactly_the_observations() -> None:
    weather = hourly_weather()
    weather.loc[5, "windspeed"] = 0.0  # calm
    weather.loc[7, "winddir"] = np.nan  # a speed without a direction
    weather.loc[9, "temp"] = np.nan  # unknown temperature
    forecast = perturb_frame(weather, ISSUE, "beijing", model=ForecastErrorModel(scale=0.0))
    assert len(forecast) == 48
    observed = weather.set_index("time").loc[forecast["time"]]
    for column in ("temp", "feelslike", "humidity", "dew", "windspeed", "winddir", "pressure"):
        np.testing.assert_array_equal(
            forecast[column].to_numpy(), observed[column].to_numpy(), err_msg=column
        )


def test_stand_in_rows_keys_and_columns() -> None:
    weather = hourly_weather(hours=30)  # an issue at 06:00 has 23 observed targets left
    forecast = perturb_frame(weather, ISSUE, "beijing")
    assert list(forecast.columns[:4]) == ["location", "issue_time", "time", "lead"]
    assert "pm2_5" not in forecast.columns  # never a pollutant
    assert forecast["lead"].tolist() == list(range(1, 24))
    assert (
        forecast["time"] - forecast["issue_time"] == forecast["lead"] * pd.Timedelta("1h")
    ).all()
    assert (forecast["issue_time"] == pd.Timestamp(ISSUE)).all()
    assert str(forecast["time"].dt.tz) == "UTC"
    # columns without an error are copied as observed: a perfect forecast, named as such
    observed = weather.set_index("time").loc[forecast["time"]]
    for column in ("precip", "windgust", "is_rain"):
        assert column not in PERTURBED
        np.testing.assert_array_equal(forecast[column].to_numpy(), observed[column].to_numpy())
    assert not np.allclose(forecast["temp"].to_numpy(), observed["temp"].to_numpy())


def test_a_location_column_selects_that_locations_rows() -> None:
    here, there = hourly_weather(seed=1), hourly_weather(seed=2)
    there["location"] = "london"
    both = pd.concat([here, there], ignore_index=True)
    np.testing.assert_array_equal(
        stand_in_forecasts(both, [ISSUE], "london")["pressure"].to_numpy(),
        stand_in_forecasts(there, [ISSUE], "london")["pressure"].to_numpy(),
    )


def test_perturbed_values_carry_the_drawn_errors_and_stay_consistent() -> None:
    weather = hourly_weather()
    model = ForecastErrorModel(scale=1.5)
    forecast = perturb_frame(weather, ISSUE, "beijing", model=model)
    errors = model.errors("beijing", [ISSUE], 48)
    observed = weather.set_index("time").loc[forecast["time"]]
    np.testing.assert_allclose(forecast["temp"], observed["temp"] + errors["temp"][0])
    np.testing.assert_allclose(forecast["feelslike"], observed["feelslike"] + errors["temp"][0])
    np.testing.assert_allclose(forecast["pressure"], observed["pressure"] + errors["pressure"][0])
    dew = observed["dew"].to_numpy() + errors["dew"][0]
    np.testing.assert_allclose(forecast["dew"], np.minimum(dew, forecast["temp"]))
    np.testing.assert_allclose(
        forecast["humidity"], magnus_relative_humidity(forecast["temp"], forecast["dew"])
    )
    # wind is perturbed as a vector: each component moves by its own error (km/h)
    u_f, v_f = wind_components(forecast["windspeed"].to_numpy(), forecast["winddir"].to_numpy())
    u_o, v_o = wind_components(observed["windspeed"].to_numpy(), observed["winddir"].to_numpy())
    np.testing.assert_allclose(u_f - u_o, errors["wind_u"][0], atol=1e-9)
    np.testing.assert_allclose(v_f - v_o, errors["wind_v"][0], atol=1e-9)
    assert (forecast["windspeed"] >= 0).all()
    assert ((forecast["winddir"] >= 0) & (forecast["winddir"] < 360)).all()


def test_dew_point_is_capped_at_the_temperature() -> None:
    observed = {"temp": np.array([10.0, 10.0]), "dew": np.array([9.5, 5.0])}
    errors = {name: np.zeros(2) for name in ERROR_SERIES}
    errors["dew"] = np.array([2.0, 2.0])
    out = apply_errors(observed, errors)
    assert out["dew"].tolist() == [10.0, 7.0]


def test_calm_and_directionless_wind() -> None:
    observed = {"windspeed": np.array([0.0, 12.0, 12.0]), "winddir": np.array([0.0, np.nan, 90.0])}
    errors = {name: np.zeros(3) for name in ERROR_SERIES}
    errors["wind_u"] = np.array([3.0, -20.0, 0.0])
    errors["wind_v"] = np.array([4.0, 1.0, 0.0])
    out = apply_errors(observed, errors)
    assert out["windspeed"][0] == pytest.approx(5.0)  # calm -> a light wind with a direction
    assert out["winddir"][0] == pytest.approx(np.rad2deg(np.arctan2(3.0, 4.0)))
    assert out["windspeed"][1] == pytest.approx(8.0)  # |12 - 20|: no vector to perturb
    assert np.isnan(out["winddir"][1])
    assert (out["windspeed"][2], out["winddir"][2]) == (12.0, 90.0)  # no error: untouched


def test_an_absent_column_stays_absent() -> None:
    errors = {name: np.ones(2) for name in ERROR_SERIES}
    out = apply_errors({"temp": np.array([1.0, 2.0])}, errors)
    assert set(out) == {"temp"}
    assert out["temp"].tolist() == [2.0, 3.0]


def test_targets_the_observations_do_not_hold_are_left_out() -> None:
    weather = hourly_weather(hours=24 * 3).drop(index=[20, 21])
    forecast = perturb_frame(weather, ISSUE, "beijing")
    assert len(forecast) == 48 - 2
    assert not forecast["time"].isin(hourly_weather(hours=72)["time"].iloc[[20, 21]]).any()
    leads = forecast["lead"].to_numpy()
    assert (np.diff(leads) > 0).all()


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"scale": -0.1},
        {"scale": float("nan")},
        {"ar_coefficient": 1.0},
        {"ar_coefficient": -0.1},
        {"temp_sd24": -1.0},
        {"reference_lead_hours": 0.0},
    ],
)
def test_an_invalid_model_is_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        ForecastErrorModel(**options)


def test_issue_times_must_be_aware_whole_hours_and_leads_bounded() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_epochs([datetime(2014, 3, 1, 6)])
    with pytest.raises(ValueError, match="whole UTC hours"):
        issue_epochs([ISSUE + timedelta(minutes=30)])
    assert issue_epochs(ISSUE).tolist() == [int(ISSUE.timestamp())]
    model = ForecastErrorModel()
    with pytest.raises(ValueError, match="max_lead"):
        model.errors("beijing", [ISSUE], MAX_LEAD_HOURS + 1)
    with pytest.raises(ValueError, match="leads"):
        perturb_frame(hourly_weather(), ISSUE, "beijing", leads=[0, 1])
    naive = hourly_weather()
    naive["time"] = naive["time"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        perturb_frame(naive, ISSUE, "beijing")


def test_wind_sd_is_the_component_figure_in_km_per_hour() -> None:
    assert MS_TO_KMH == 3.6
    assert ForecastErrorModel(wind_component_sd24_ms=2.0).sd24("wind_u") == pytest.approx(7.2)
