"""The hourly ingestion tick: observations every hour, the forecast pulls riding along only
when a forecast issue is due that some location has not stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from airquality_assets.defs.data.ingestion import RAW_AIR_POLLUTION_FORECAST, RAW_WEATHER_FORECAST
from airquality_assets.defs.data.schedules import (
    FORECAST_ASSETS,
    OBSERVATION_ASSETS,
    forecast_issue_missing,
    hourly_ingestion_schedule,
    newest_partition_requests,
)
from airquality_assets.defs.resources import DeploymentResource, RawStore
from airquality_assets.settings import Settings

NOW = datetime(2014, 12, 31, 7, 5, tzinfo=UTC)  # the 06:00 issue is due
DUE = datetime(2014, 12, 31, 6, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    return RawStore(base_dir=str(tmp_path / "data"))


def _tick(settings: Settings, store: RawStore) -> dg.RunRequest:
    with dg.build_schedule_context(
        resources={"deployment": DeploymentResource.from_settings(settings), "raw_store": store}
    ) as context:
        (request,) = hourly_ingestion_schedule.evaluate_tick(context).run_requests or []
    return request


def test_a_tick_without_forecasts_selects_the_observation_pulls_only() -> None:
    (plain,) = newest_partition_requests(NOW, ["a", "b"], forecasts=False)
    assert plain.asset_selection == [dg.AssetKey(name) for name in OBSERVATION_ASSETS]
    (full,) = newest_partition_requests(NOW, ["a", "b"])
    assert full.asset_selection is None  # the whole ingestion job: forecasts too
    assert full.tags == plain.tags and full.run_key == plain.run_key == "hourly:20141231T07"
    assert set(FORECAST_ASSETS).isdisjoint(OBSERVATION_ASSETS)
    # the month that just closed is stored whole: a tick asks for it again on purpose
    for request in (plain, full):
        ops = request.run_config["ops"]
        assert ops == {a: {"config": {"refetch_closed_months": True}} for a in OBSERVATION_ASSETS}


def test_the_due_issue_is_missing_until_every_location_stored_it(store: RawStore) -> None:
    assert forecast_issue_missing(store, ["a", "b"], NOW, 6)
    store.write_issue(RAW_WEATHER_FORECAST, "a", DUE, b"{}")
    assert forecast_issue_missing(store, ["a", "b"], NOW, 6)  # b has not stored it
    store.write_issue(RAW_WEATHER_FORECAST, "b", DUE, b"{}")
    assert not forecast_issue_missing(store, ["a", "b"], NOW, 6)
    # an older issue does not count for the one due now; hourly issues fall due every hour
    assert forecast_issue_missing(store, ["a"], NOW.replace(hour=12), 6)
    assert forecast_issue_missing(store, ["a"], NOW, 1)


def test_the_schedule_rides_the_forecasts_along_while_the_due_issue_is_missing(
    settings: Settings, store: RawStore
) -> None:
    at = settings.replace(replay_now=NOW)
    first = _tick(at, store)
    assert first.asset_selection is None
    for name in at.location_names:
        store.write_issue(RAW_WEATHER_FORECAST, name, DUE, b"{}")
    later = _tick(at.replace(replay_now=datetime(2014, 12, 31, 8, 5, tzinfo=UTC)), store)
    assert later.asset_selection == [dg.AssetKey(name) for name in OBSERVATION_ASSETS]
    next_cycle = _tick(at.replace(replay_now=datetime(2014, 12, 31, 12, 5, tzinfo=UTC)), store)
    assert next_cycle.asset_selection is None  # 12:00 is due and nobody has it


def test_live_ticks_also_wait_for_the_air_pollution_issue(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AIRQUALITY_SOURCE": "live",
        "AIRQUALITY_LOCATIONS": "london:51.5074:-0.1278",
        "AIRQUALITY_START_DATE": "2014-01-01",
        "OPENWEATHER_API_KEY": "unused",
        "VISUAL_CROSSING_API_KEY": "unused",
    }.items():
        monkeypatch.setenv(name, value)
    live = Settings.from_env()

    def tick() -> dg.RunRequest:
        with dg.build_schedule_context(
            resources={"deployment": DeploymentResource.from_settings(live), "raw_store": store},
            scheduled_execution_time=NOW,  # a live clock reads the tick's time
        ) as context:
            (request,) = hourly_ingestion_schedule.evaluate_tick(context).run_requests or []
        return request

    store.write_issue(RAW_WEATHER_FORECAST, "london", DUE, b"{}")
    assert not forecast_issue_missing(store, ["london"], NOW, 6)  # replay waits for weather only
    assert tick().asset_selection is None  # live: OWM's issue is still missing, retried
    store.write_issue(RAW_AIR_POLLUTION_FORECAST, "london", DUE, b"{}")
    assert not forecast_issue_missing(store, ["london"], NOW, 6, FORECAST_ASSETS)
    assert tick().asset_selection == [dg.AssetKey(name) for name in OBSERVATION_ASSETS]
