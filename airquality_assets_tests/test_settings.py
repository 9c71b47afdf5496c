"""Settings: parsed once from an environment mapping; bad values fail with a clear message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from airquality_assets.envconfig import declared
from airquality_assets.serving.config import ServiceConfig
from airquality_assets.settings import (
    Settings,
    default_data_dir,
    format_locations,
    parse_locations,
    project_root,
    reference_markdown,
)
from airquality_assets.sources.replay import BEIJING


def test_defaults_are_the_bundled_replay_deployment(tmp_path: Path) -> None:
    settings = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path)})
    assert settings.source == "replay"
    assert settings.locations == [BEIJING]
    assert (settings.start_date, settings.end_date) == (date(2010, 1, 1), date(2015, 1, 1))
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.bentoml_home == tmp_path.resolve() / "bentoml"


def test_the_evaluation_split_is_one_setting_away(tmp_path: Path) -> None:
    default = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path)})
    assert (default.split, default.test_days) == ("recent", 90)
    fixed = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path), "AIRQUALITY_SPLIT": "Fixed"})
    assert fixed.split == "fixed"


def test_explicit_services_win_over_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "AIRQUALITY_DATA_DIR": str(tmp_path),
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
            "BENTOML_HOME": str(tmp_path / "elsewhere"),
            "AIRQUALITY_SOURCE": "live",
        }
    )
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.bentoml_home == tmp_path / "elsewhere"
    assert settings.end_date is None  # live: partitions run up to today


def test_locations_round_trip() -> None:
    text = "paris:48.85:2.35, london:51.5:-0.12"
    locations = parse_locations(text)
    assert [loc.name for loc in locations] == ["paris", "london"]
    assert parse_locations(format_locations(locations)) == locations


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paris:48.85", "is not 'name:latitude:longitude'"),
        ("paris:north:2.35", "is not 'name:latitude:longitude'"),
        ("paris:48.85:2.35:1", "is not 'name:latitude:longitude'"),
        ("paris:95:2.35", "coordinates out of range"),
        ("paris:48.85:181", "coordinates out of range"),
        ("paris:48.85:2.35,paris:48.9:2.4", "unique locations"),
        (" , ", "unique locations"),
    ],
)
def test_bad_locations_fail_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_locations(text)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AIRQUALITY_SOURCE", "csv", "must be 'replay' or 'live'"),
        ("AIRQUALITY_PROFILE", "huge", "must be 'demo' or 'full'"),
        ("AIRQUALITY_START_DATE", "2014/01/01", "is not a YYYY-MM-DD date"),
        ("AIRQUALITY_END_DATE", "soon", "is not a YYYY-MM-DD date"),
        ("AIRQUALITY_SPLIT", "yearly", "must be 'recent' or 'fixed'"),
        ("AIRQUALITY_TEST_DAYS", "0", "must be at least 1"),
        ("AIRQUALITY_HTTP_TIMEOUT_S", "0", "AIRQUALITY_HTTP_TIMEOUT_S='0' must be > 0"),
        ("VISUAL_CROSSING_DAILY_RECORD_BUDGET", "-5", "VISUAL_CROSSING_DAILY_RECORD_BUDGET="),
    ],
)
def test_bad_values_fail_clearly(tmp_path: Path, variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path), variable: value})


def test_client_settings_from_the_environment(tmp_path: Path) -> None:
    default = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path)}).clients
    assert default.openweather_base_url == "https://api.openweathermap.org"
    assert default.visual_crossing_daily_records == 1000
    clients = Settings.from_env(
        {
            "AIRQUALITY_DATA_DIR": str(tmp_path),
            "OPENWEATHER_BASE_URL": "http://127.0.0.1:8080",
            "VISUAL_CROSSING_BASE_URL": "http://127.0.0.1:8081/timeline",
            "AIRQUALITY_HTTP_TIMEOUT_S": "5",
            "AIRQUALITY_HTTP_MAX_RETRIES": "2",
            "OPENWEATHER_MIN_INTERVAL_S": "0",
            "VISUAL_CROSSING_DAILY_RECORD_BUDGET": "none",
            "AIRQUALITY_CIRCUIT_BREAKER_FAILURES": "3",
        }
    ).clients
    assert clients.openweather_base_url == "http://127.0.0.1:8080"
    assert clients.visual_crossing_base_url == "http://127.0.0.1:8081/timeline"
    assert (clients.timeout_s, clients.max_retries) == (5.0, 2)
    assert clients.openweather_min_interval_s == 0.0
    assert clients.visual_crossing_daily_records is None
    assert clients.circuit_breaker_failures == 3
    with pytest.raises(ValueError, match="AIRQUALITY_HTTP_MAX_RETRIES='-1' must be >= 0"):
        Settings.from_env(
            {"AIRQUALITY_DATA_DIR": str(tmp_path), "AIRQUALITY_HTTP_MAX_RETRIES": "-1"}
        )


def test_replay_locations_load_test_mode(tmp_path: Path) -> None:
    env = {"AIRQUALITY_DATA_DIR": str(tmp_path), "AIRQUALITY_REPLAY_LOCATIONS": "100"}
    settings = Settings.from_env(env)
    assert len(settings.location_names) == 100
    assert settings.location_names[0] == "beijing-001"
    with pytest.raises(ValueError, match="load-test mode"):
        Settings.from_env({**env, "AIRQUALITY_LOCATIONS": "x:1:2"})


def test_the_environment_reference_is_generated_from_the_declarations() -> None:
    committed = project_root() / "docs" / "reference" / "environment.md"
    assert committed.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/reference/environment.md is stale: run "
        "`.venv/bin/python -m airquality_assets.settings --markdown > "
        "docs/reference/environment.md`"
    )
    for item in [*declared(Settings), *declared(ServiceConfig)]:
        assert f"| `{item.env}` |" in committed.read_text(encoding="utf-8"), item.env
        assert item.help, f"{item.env} declares no meaning"


def test_the_data_dir_default_is_the_project_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRQUALITY_DATA_DIR", raising=False)
    assert Settings.from_env({}).data_dir == default_data_dir() == project_root() / ".data"
    assert Settings.from_env({"AIRQUALITY_DATA_DIR": ""}).data_dir == default_data_dir()


def test_a_live_deployment_has_no_default_end_and_an_empty_end_means_none(tmp_path: Path) -> None:
    base = {"AIRQUALITY_DATA_DIR": str(tmp_path)}
    assert Settings.from_env({**base, "AIRQUALITY_SOURCE": "live"}).end_date is None
    assert Settings.from_env({**base, "AIRQUALITY_END_DATE": ""}).end_date is None
    with pytest.raises(ValueError, match="AIRQUALITY_STORAGE_URL='bucket' must be a URL"):
        Settings.from_env({**base, "AIRQUALITY_STORAGE_URL": "bucket"})


def test_the_forecasts_partitions_start_where_the_loop_can_issue() -> None:
    """Not a wall of missing issue days since 2010: a replay deployment's loop starts at its
    clock (the demo issues the day before it), a live one on the first day, or as set."""
    from airquality_assets.defs.loop.assets import daily_partitions

    replay = Settings.from_env({"AIRQUALITY_REPLAY_NOW": "2014-12-31T00:00:00Z"})
    assert replay.forecasts_start == date(2014, 12, 30)
    days = daily_partitions(replay).get_partitions_def_for_dimension("date")
    assert days.get_partition_keys() == ["2014-12-30", "2014-12-31"]
    live = Settings.from_env({"AIRQUALITY_SOURCE": "live", "AIRQUALITY_START_DATE": "2024-01-01"})
    assert live.forecasts_start == date(2024, 1, 1)
    chosen = {"AIRQUALITY_FORECASTS_START_DATE": "2014-03-01"}
    assert Settings.from_env(chosen).forecasts_start == date(2014, 3, 1)
