"""The service settings: one read of the environment, clear refusals."""

from __future__ import annotations

import pytest

from airquality_assets.serving.config import ConfigError, ServiceConfig


def test_defaults_mean_auth_off_and_the_default_model() -> None:
    config = ServiceConfig.from_env({"PATH": "/bin", "AIRQUALITY_SOURCE": "replay"})
    assert config.token is None and config.model_tag == "airquality-lstm:latest"
    assert (config.workers, config.max_body_bytes, config.batching) == (1, 1_000_000, True)


def test_environment_is_parsed_once_into_typed_values() -> None:
    config = ServiceConfig.from_env(
        {
            "AIRQUALITY_MODEL_NAME": "beijing-pm25",
            "AIRQUALITY_API_TOKEN": "t0ken",
            "AIRQUALITY_BATCHING": "0",
            "AIRQUALITY_BODY_TIMEOUT_S": "2.5",
            "AIRQUALITY_FORECAST_MAX_AGE_HOURS": "1.5",
        }
    )
    assert config.forecast_max_age_hours == 1.5
    assert config.model_tag == "beijing-pm25:latest" and config.token == "t0ken"
    assert config.batching is False and config.body_timeout_s == 2.5
    assert "t0ken" not in repr(config)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AIRQUALITY_API_TOKEN": ""}, "AIRQUALITY_API_TOKEN is set but empty"),
        ({"AIRQUALITY_API_TOKEN": "  "}, "AIRQUALITY_API_TOKEN is set but empty"),
        ({"AIRQUALITY_WORKERS": "two"}, "AIRQUALITY_WORKERS"),
        ({"AIRQUALITY_MAX_BODY_BYTES": "10"}, "AIRQUALITY_MAX_BODY_BYTES"),
        ({"AIRQUALITY_MODEL_NAME": ""}, "AIRQUALITY_MODEL_NAME"),
        ({"AIRQUALITY_FORECAST_MAX_AGE_HOURS": "0"}, "AIRQUALITY_FORECAST_MAX_AGE_HOURS"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ServiceConfig.from_env(env)
