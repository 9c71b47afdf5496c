"""One configuration, read back unchanged through every path it travels.

Every declared variable is set to a value other than its default; the parsed settings must
come back field for field from the ``deployment`` resource (directly and through run
config), and each built resource and the service config must hold exactly those values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from airquality_assets.defs.partitions import LOCATION_DIMENSION, build_partitions
from airquality_assets.defs.resources import (
    AirPollutionSourceResource,
    DeploymentResource,
    WeatherSourceResource,
    build_resources,
)
from airquality_assets.envconfig import declared
from airquality_assets.serving.config import ServiceConfig
from airquality_assets.settings import SECRET_VARIABLES, Settings
from airquality_assets.sources.base import Location

ALERTS = "json://127.0.0.1:9/a,json://127.0.0.1:9/b"


def live_environment(tmp_path: Path) -> dict[str, str]:
    """Every variable but the load-test one (which excludes a live source and locations)."""
    return {
        "AIRQUALITY_DATA_DIR": str(tmp_path / "data"),
        "AIRQUALITY_SOURCE": "live",
        "AIRQUALITY_LOCATIONS": "paris:48.85:2.35,london:51.5:-0.12",
        "AIRQUALITY_START_DATE": "2023-01-01",
        "AIRQUALITY_END_DATE": "2024-06-01",
        "AIRQUALITY_FORECASTS_START_DATE": "2023-03-01",
        "AIRQUALITY_REPLAY_NOW": "2013-02-03T04:00:00Z",
        "AIRQUALITY_TARGETS": "pm2_5,no2",
        "AIRQUALITY_SPLIT": "fixed",
        "AIRQUALITY_TEST_DAYS": "45",
        "AIRQUALITY_RAW_HISTORY_KEEP": "3",
        "AIRQUALITY_FORECAST_ISSUE_HOURS": "3",
        "AIRQUALITY_PROFILE": "full",
        "AIRQUALITY_EXECUTOR": "k8s",
        "AIRQUALITY_EXPERIMENT": "exp-x",
        "AIRQUALITY_MODEL_NAME": "model-x",
        "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
        "BENTOML_HOME": str(tmp_path / "bento"),
        "AIRQUALITY_STORAGE_URL": "s3://bucket/prefix/",
        "OPENWEATHER_BASE_URL": "http://127.0.0.1:8080",
        "VISUAL_CROSSING_BASE_URL": "http://127.0.0.1:8081/timeline",
        "AIRQUALITY_HTTP_TIMEOUT_S": "5",
        "AIRQUALITY_HTTP_MAX_RETRIES": "2",
        "OPENWEATHER_MIN_INTERVAL_S": "0.5",
        "VISUAL_CROSSING_DAILY_RECORD_BUDGET": "200",
        "AIRQUALITY_CIRCUIT_BREAKER_FAILURES": "3",
        "AIRQUALITY_MLFLOW_UI_URL": "http://mlflow.example:5000",
        "AIRQUALITY_DAGSTER_UI_URL": "http://dagster.example:3000",
        "AIRQUALITY_PUSHGATEWAY_URL": "http://pushgateway:9091",
        "AIRQUALITY_ALERT_URLS": ALERTS,
        "AIRQUALITY_SUBSCRIBER_ALERT_URLS": "json://subscribers.example/alerts",
        "AIRQUALITY_POLLUTION_ALERT_BAND": "5",
        "AIRQUALITY_INTERVAL_LEVEL": "0.9",
        "OPENWEATHER_API_KEY": "owm-key",
        "VISUAL_CROSSING_API_KEY": "vc-key",
        # the service's own
        "AIRQUALITY_MODEL_VERSION": "7",
        "AIRQUALITY_API_TOKEN": "t0ken",
        "AIRQUALITY_WORKERS": "2",
        "AIRQUALITY_MAX_BODY_BYTES": "2000",
        "AIRQUALITY_MAX_LOCATIONS": "8",
        "AIRQUALITY_BODY_TIMEOUT_S": "2.5",
        "AIRQUALITY_MAX_HEADER_BYTES": "8192",
        "AIRQUALITY_HEADER_TIMEOUT_S": "5",
        "AIRQUALITY_BATCHING": "0",
        "AIRQUALITY_XLA_THREADS": "0",
        "AIRQUALITY_ACCESS_LOG": "1",
        "AIRQUALITY_FORECAST_MAX_AGE_HOURS": "6",
        "AIRQUALITY_RELOAD_POLL_SECONDS": "0",
    }


def load_test_environment(tmp_path: Path) -> dict[str, str]:
    """The replay-only variables: many stations, and the stand-in forecasts' error."""
    return {
        "AIRQUALITY_DATA_DIR": str(tmp_path / "data"),
        "AIRQUALITY_REPLAY_LOCATIONS": "3",
        "AIRQUALITY_FORECAST_ERROR_SCALE": "1.5",
    }


def _at(model: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        model = getattr(model, key)
    return model


def _default(info: Any) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default


def test_the_environments_set_every_declared_variable(tmp_path: Path) -> None:
    variables = {d.env for d in declared(Settings)} | {d.env for d in declared(ServiceConfig)}
    covered = set(live_environment(tmp_path)) | set(load_test_environment(tmp_path))
    assert covered == variables | set(SECRET_VARIABLES)


@pytest.mark.parametrize("environment", [live_environment, load_test_environment])
def test_env_to_settings_to_deployment_to_settings_is_lossless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment
) -> None:
    env = environment(tmp_path)
    settings = Settings.from_env(env)
    for item in declared(Settings):
        if item.env in env:  # set, so it must differ from the default it replaces
            assert _at(settings, item.path) != _default(item.info), item.env
    # The secret alert URLs are carried as an EnvVar: read again from the run's environment.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deployment = DeploymentResource.from_settings(settings)
    assert deployment.settings == settings
    for item in declared(Settings):
        assert _at(deployment.settings, item.path) == _at(settings, item.path), item.env
    assert ALERTS not in deployment.settings_json  # a secret never sits in resource config
    # ... and through run config, as a run (or the simulation) restates it.
    with dg.build_resources(
        {"deployment": DeploymentResource.configure_at_launch()},
        resource_config={"deployment": {"config": deployment.run_config()}},
    ) as resources:
        assert resources.deployment.settings == settings


def test_every_live_setting_reaches_the_resource_that_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = live_environment(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env)
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.locations == [Location("paris", 48.85, 2.35), Location("london", 51.5, -0.12)]
    assert (settings.start_date, settings.end_date) == (date(2023, 1, 1), date(2024, 6, 1))
    assert settings.replay_now == datetime(2013, 2, 3, 4, tzinfo=UTC)
    assert settings.bentoml_home == tmp_path / "bento"
    assert settings.storage_root == "s3://bucket/prefix"
    resources = build_resources(settings)

    owm = resources["air_pollution_source"].data  # type: ignore[attr-defined]
    assert owm == {
        "api_key": "OPENWEATHER_API_KEY",
        "base_url": "http://127.0.0.1:8080",
        "timeout_s": 5.0,
        "max_retries": 2,
        "min_interval_s": 0.5,
        "forecast_issue_hours": 3,
        "circuit_breaker_failures": 3,
    }
    vc = resources["weather_source"].data  # type: ignore[attr-defined]
    assert vc == {
        "api_key": "VISUAL_CROSSING_API_KEY",
        "base_url": "http://127.0.0.1:8081/timeline",
        "timeout_s": 5.0,
        "max_retries": 2,
        "daily_record_budget": 200,
        "forecast_issue_hours": 3,
        "circuit_breaker_failures": 3,
    }
    operations = resources["operations"]
    assert operations.pushgateway_url == "http://pushgateway:9091"  # type: ignore[attr-defined]
    assert operations.ui_base_url == "http://dagster.example:3000"  # type: ignore[attr-defined]
    alert_urls = operations.alert_urls  # type: ignore[attr-defined]
    assert isinstance(alert_urls, dg.EnvVar) and alert_urls.env_var_name == "AIRQUALITY_ALERT_URLS"
    with dg.build_resources({"operations": operations}) as built:
        assert built.operations.alert_urls == ALERTS
    for key in ("raw_store", "io_manager", "tensors_io_manager"):
        assert resources[key].base_dir == "s3://bucket/prefix", key  # type: ignore[attr-defined]
    pickles = resources["pickle_io_manager"]
    assert pickles.base_dir == "s3://bucket/prefix/dagster_storage"  # type: ignore[attr-defined]
    mlflow = resources["mlflow"]
    assert mlflow.tracking_uri == "http://mlflow.internal:5000"  # type: ignore[attr-defined]
    assert mlflow.experiment_name == "exp-x"  # type: ignore[attr-defined]
    assert mlflow.artifact_location == "s3://bucket/prefix/mlartifacts/exp-x"  # type: ignore[attr-defined]
    assert mlflow.ui_url == "http://mlflow.example:5000"  # type: ignore[attr-defined]
    assert mlflow.dagster_ui_url == "http://dagster.example:3000"  # type: ignore[attr-defined]
    deployment = resources["deployment"].settings  # type: ignore[attr-defined]
    assert (deployment.profile, deployment.executor) == ("full", "k8s")
    assert (deployment.targets, deployment.model_name) == (["pm2_5", "no2"], "model-x")
    monthly = build_partitions(settings).monthly
    assert monthly.get_partitions_def_for_dimension(LOCATION_DIMENSION).get_partition_keys() == [
        "paris",
        "london",
    ]


def test_the_service_reads_its_section_from_the_same_environment(tmp_path: Path) -> None:
    env = live_environment(tmp_path)
    config = ServiceConfig.from_env(env)
    for item in declared(ServiceConfig):
        assert _at(config, item.path) != _default(item.info), item.env
    assert config.model_name == Settings.from_env(env).model_name == "model-x"
    assert config.model_tag == "model-x:7" and config.token == "t0ken"
    assert (config.workers, config.max_body_bytes, config.max_locations) == (2, 2000, 8)
    assert (config.body_timeout_s, config.reload_poll_s, config.xla_threads) == (2.5, 0.0, 0)
    assert (config.batching, config.access_log) == (False, True)


def test_run_config_moves_the_replay_clock(settings: Settings) -> None:
    resource = DeploymentResource.from_settings(settings)
    assert resource.clock().now() == settings.replay_now
    moved = resource.model_copy(update={"replay_now": "2013-02-03T04:00:00Z"})
    assert moved.clock().now() == datetime(2013, 2, 3, 4, tzinfo=UTC)
    assert resource.at(datetime(2013, 2, 3, 4, tzinfo=UTC)).settings == moved.settings
    full = resource.model_copy(update={"profile": "full"}).settings
    assert full.profile == "full" and full.replace(profile="demo") == settings


def test_a_moved_deployment_reaches_a_schedule_at_its_new_clock(settings: Settings) -> None:
    """What a tick sees is the resource Dagster initializes, not the Python object: ``at``
    must survive that (a ``model_copy`` kept the old clock there and stopped the loop)."""
    moved = DeploymentResource.from_settings(settings).at(datetime(2014, 3, 2, 23, tzinfo=UTC))
    seen: list[datetime] = []

    @dg.schedule(cron_schedule="5 * * * *", target="*")
    def tick(deployment: DeploymentResource) -> list:
        seen.append(deployment.settings.replay_now)
        return []

    with dg.build_schedule_context(resources={"deployment": moved}) as context:
        tick.evaluate_tick(context)
    assert seen == [datetime(2014, 3, 2, 23, tzinfo=UTC)]


def test_the_replay_error_scale_reaches_the_stand_in_forecasts(tmp_path: Path) -> None:
    settings = Settings.from_env(load_test_environment(tmp_path))
    weather = build_resources(settings)["weather_source"]
    assert weather.data["forecast_error_scale"] == 1.5  # type: ignore[attr-defined]
    with dg.build_resources({"weather_source": weather}) as built:
        client = built.weather_source.client(settings.clock)
    issue = settings.clock.now()
    forecast = client.forecast(settings.location(settings.location_names[0]), issue)
    assert "error_scale=1.5" in forecast.url  # what its bodies are made with


# --- every documented client variable, seen at the client a run builds ----------------------


def _launched(settings: Settings) -> dict[str, Any]:
    """The clients and breakers as a run builds them: resources configured at launch with
    no run config, the path a user's environment takes (not the resources' own data)."""
    seen: dict[str, Any] = {}

    @dg.asset
    def probe(
        deployment: DeploymentResource,
        air_pollution_source: AirPollutionSourceResource,
        weather_source: WeatherSourceResource,
    ) -> None:
        clock = deployment.settings.clock
        for name, resource in (("air", air_pollution_source), ("weather", weather_source)):
            client = resource.client(clock)
            seen[name] = client
            seen[f"{name}_breaker"] = resource.breaker(client.source_name)

    resources = build_resources(settings)
    used = {k: resources[k] for k in ("deployment", "air_pollution_source", "weather_source")}
    assert dg.materialize([probe], resources=used).success
    return seen


_LIVE = {
    "AIRQUALITY_SOURCE": "live",
    "OPENWEATHER_API_KEY": "owm-key",
    "VISUAL_CROSSING_API_KEY": "vc-key",
}


@pytest.fixture
def live_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys a run reads as ``EnvVar``s at launch."""
    for name in ("OPENWEATHER_API_KEY", "VISUAL_CROSSING_API_KEY"):
        monkeypatch.setenv(name, _LIVE[name])


#: variable, value set, what the launched client shows (each differs from the default's)
_CLIENT_VARIABLES: list[tuple[str, str, Any]] = [
    ("OPENWEATHER_BASE_URL", "http://127.0.0.1:8080/", lambda s: s["air"].base_url),
    ("VISUAL_CROSSING_BASE_URL", "http://127.0.0.1:8081/tl", lambda s: s["weather"].base_url),
    (
        "AIRQUALITY_HTTP_TIMEOUT_S",
        "2.5",
        lambda s: (s["air"].timeout_s, s["weather"].timeout_s),
    ),
    (
        "AIRQUALITY_HTTP_MAX_RETRIES",
        "1",
        lambda s: (s["air"].policy.max_retries, s["weather"].policy.max_retries),
    ),
    ("OPENWEATHER_MIN_INTERVAL_S", "0", lambda s: s["air"]._throttle.min_interval_s),
    ("VISUAL_CROSSING_DAILY_RECORD_BUDGET", "none", lambda s: s["weather"].budget.limit),
    ("VISUAL_CROSSING_DAILY_RECORD_BUDGET", "", lambda s: s["weather"].budget.limit),
    ("VISUAL_CROSSING_DAILY_RECORD_BUDGET", "50", lambda s: s["weather"].budget.limit),
    (
        "AIRQUALITY_CIRCUIT_BREAKER_FAILURES",
        "0",
        lambda s: (s["air_breaker"].threshold, s["weather_breaker"].threshold),
    ),
    (
        "AIRQUALITY_FORECAST_ISSUE_HOURS",
        "3",
        lambda s: (s["air"].forecast_max_age, s["weather"].forecast_max_age),
    ),
]
_EXPECTED = {
    "OPENWEATHER_BASE_URL": "http://127.0.0.1:8080",
    "VISUAL_CROSSING_BASE_URL": "http://127.0.0.1:8081/tl",
    "AIRQUALITY_HTTP_TIMEOUT_S": (2.5, 2.5),
    "AIRQUALITY_HTTP_MAX_RETRIES": (1, 1),
    "OPENWEATHER_MIN_INTERVAL_S": 0.0,
    "AIRQUALITY_CIRCUIT_BREAKER_FAILURES": (0, 0),
    "AIRQUALITY_FORECAST_ISSUE_HOURS": (timedelta(hours=3), timedelta(hours=3)),
}


@pytest.mark.parametrize(("variable", "value", "at_client"), _CLIENT_VARIABLES)
@pytest.mark.usefixtures("live_keys")
def test_each_client_variable_takes_effect_at_the_launched_client(
    tmp_path: Path, variable: str, value: str, at_client: Any
) -> None:
    base = {"AIRQUALITY_DATA_DIR": str(tmp_path), **_LIVE}
    default = at_client(_launched(Settings.from_env(base)))
    shown = at_client(_launched(Settings.from_env({**base, variable: value})))
    if variable == "VISUAL_CROSSING_DAILY_RECORD_BUDGET":
        expected = int(value) if value.strip().isdigit() else None  # `none`, empty: no budget
    else:
        expected = _EXPECTED[variable]
    assert shown == expected, variable
    assert shown != default, f"{variable}={value!r} is the default's value"


@pytest.mark.usefixtures("live_keys")
def test_no_budget_lets_a_month_of_hourly_history_through(tmp_path: Path) -> None:
    env = {"AIRQUALITY_DATA_DIR": str(tmp_path), **_LIVE}
    weather = _launched(Settings.from_env({**env, "VISUAL_CROSSING_DAILY_RECORD_BUDGET": "none"}))
    assert weather["weather"].budget.refusal(3 * 744) is None
    limited = _launched(Settings.from_env(env))["weather"].budget.refusal(3 * 744)
    assert limited is not None and "VISUAL_CROSSING_DAILY_RECORD_BUDGET" in limited
    assert "daily_record_budget" not in limited  # the variable a user sets, not the field


def test_replay_forecast_error_scale_takes_effect_at_the_client(tmp_path: Path) -> None:
    env = {"AIRQUALITY_DATA_DIR": str(tmp_path), "AIRQUALITY_FORECAST_ERROR_SCALE": "0"}
    assert _launched(Settings.from_env(env))["weather"]._error_model.scale == 0.0
    assert _launched(Settings.from_env(env | {"AIRQUALITY_FORECAST_ERROR_SCALE": ""}))[
        "weather"
    ]._error_model.scale == pytest.approx(1.0)
