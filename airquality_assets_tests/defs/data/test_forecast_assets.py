"""The forecast half of the data assets, materialized in process on a temporary instance:
raw_weather_forecast / raw_air_pollution_forecast store one body per issue, and the
weather_forecasts frame parses them. Partition status is what Dagster's UI computes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.partition_status_cache import (
    get_and_update_asset_status_cache_value,
)

from airquality_assets.clock import Clock
from airquality_assets.defs.data.frames import WEATHER_FORECASTS, frame_assets
from airquality_assets.defs.data.ingestion import (
    RAW_AIR_POLLUTION_FORECAST,
    RAW_WEATHER_FORECAST,
    ingestion_assets,
)
from airquality_assets.defs.partitions import build_partitions, range_tags
from airquality_assets.defs.resources import WeatherSourceResource, build_resources
from airquality_assets.schemas import WeatherForecastsSchema, validate_lazily
from airquality_assets.settings import Settings
from airquality_assets.sources.base import SourceError, WeatherSource
from airquality_assets.sources.replay import ReplayWeatherSource
from airquality_assets.sources.spans import month_issues
from airquality_assets.storage import frame_path, raw_issue_bodies, raw_month_dir, stored_issues

pytestmark = pytest.mark.slow

_PARTITIONS = build_partitions(Settings(data_dir=Path("unused")))
_BY_NAME = {a.key.to_user_string(): a for a in ingestion_assets(_PARTITIONS)}
PULLS = [_BY_NAME[RAW_WEATHER_FORECAST], _BY_NAME[RAW_AIR_POLLUTION_FORECAST]]
FRAME = next(a for a in frame_assets(_PARTITIONS) if a.key.to_user_string() == WEATHER_FORECASTS)
MARCH = range_tags("2014-03-01", "2014-03-01", ["beijing"])
Q1 = range_tags("2014-01-01", "2014-03-01", ["beijing"])
MONTHS = {f"2014-0{m}-01|beijing": date(2014, m, 1) for m in (1, 2, 3)}


def _materialize(settings: Settings, assets, tags, instance, resources=None, **kwargs):
    return dg.materialize(
        assets,
        resources=resources or build_resources(settings),
        tags=tags,
        instance=instance,
        **kwargs,
    )


def _status(instance: dg.DagsterInstance, asset: str) -> tuple[set[str], set[str]]:
    partitions_def = _PARTITIONS.monthly
    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(asset), partitions_def)
    assert value is not None
    materialized = value.deserialize_materialized_partition_subsets(partitions_def)
    failed = value.deserialize_failed_partition_subsets(partitions_def)
    return set(materialized.get_partition_keys()), set(failed.get_partition_keys())


def _latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, dict]:
    """The newest materialization's plain metadata per partition."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    out: dict[str, dict] = {}
    for record in records:  # newest first
        m = record.asset_materialization
        assert m is not None and m.partition is not None
        out.setdefault(m.partition, {k: v.value for k, v in m.metadata.items()})
    return out


def _issues(settings: Settings, month: date) -> set[datetime]:
    return stored_issues(settings.data_dir, RAW_WEATHER_FORECAST, "beijing", month)


class _CountingWeather(WeatherSourceResource):
    """The replay weather source, counting forecast pulls; issues named in ``failing`` (ISO
    hours, or "*") fail like a 503 after retries, or a 401 with ``status``."""

    failing: list[str] = []  # noqa: RUF012 (pydantic copies a field default)
    status: int = 503

    def client(self, clock: Clock) -> WeatherSource:
        inner = ReplayWeatherSource(now=clock.now())
        failing, status = set(self.failing), self.status

        class _Client:
            source_name = "counting"
            pulled: ClassVar[list[datetime]] = []

            def forecast(self, location, issued_at):
                if "*" in failing or f"{issued_at:%Y-%m-%dT%H}" in failing:
                    raise SourceError("counting", location.name, str(issued_at), "down", status)
                _Client.pulled.append(issued_at)
                return inner.forecast(location, issued_at)

            def timeline(self, location, start, end):
                return inner.timeline(location, start, end)

            def now(self):
                return inner.now()

        _CountingWeather.last = _Client
        return _Client()  # type: ignore[return-value]


def _with(settings: Settings, weather: WeatherSourceResource) -> dict[str, object]:
    resources = build_resources(settings)
    resources["weather_source"] = weather
    return resources


def test_a_month_of_issues_is_stored_and_the_replay_air_pollution_forecast_is_unavailable(
    settings: Settings,
) -> None:
    with dg.instance_for_test() as instance:
        result = _materialize(settings, PULLS, MARCH, instance)
        assert result.success
        due = month_issues(date(2014, 3, 1), settings.clock.now(), settings.forecast_issue_hours)
        assert len(due) == 31 * 4
        assert _issues(settings, date(2014, 3, 1)) == set(due)
        paths = raw_issue_bodies(
            settings.data_dir, RAW_WEATHER_FORECAST, "beijing", date(2014, 3, 1)
        )
        assert paths[0].name == "2014-03-01T00.json" and paths[-1].name == "2014-03-31T18.json"
        body = json.loads(paths[-1].read_bytes())
        assert [d["datetime"] for d in body["days"]] == ["2014-03-31", "2014-04-01", "2014-04-02"]

        meta = _latest_metadata(instance, RAW_WEATHER_FORECAST)["2014-03-01|beijing"]
        assert (meta["issues_due"], meta["already_stored"], meta["pulled"]) == (124, 0, 124)
        assert meta["bytes"] == sum(p.stat().st_size for p in paths)
        assert meta["last_issue"] == "2014-03-31T18Z"

        unavailable = _latest_metadata(instance, RAW_AIR_POLLUTION_FORECAST)["2014-03-01|beijing"]
        assert unavailable["available"] is False
        assert "not available in replay" in unavailable["reason"]
        assert unavailable["pulled"] == 0
        folder = raw_month_dir(
            settings.data_dir, RAW_AIR_POLLUTION_FORECAST, "beijing", date(2014, 3, 1)
        )
        assert not folder.exists()  # nothing invented, nothing stored
        materialized, failed = _status(instance, RAW_AIR_POLLUTION_FORECAST)
        assert (materialized, failed) == ({"2014-03-01|beijing"}, set())


def test_a_re_run_pulls_only_the_issues_not_stored(settings: Settings) -> None:
    weather = _CountingWeather()
    with dg.instance_for_test() as instance:
        resources = _with(settings, weather)
        assert _materialize(settings, PULLS[:1], MARCH, instance, resources).success
        assert len(_CountingWeather.last.pulled) == 124
        folder = raw_month_dir(settings.data_dir, RAW_WEATHER_FORECAST, "beijing", date(2014, 3, 1))
        before = {p.name: p.read_bytes() for p in folder.iterdir()}

        assert _materialize(settings, PULLS[:1], MARCH, instance, resources).success
        assert _CountingWeather.last.pulled == []  # every issue stored: nothing fetched
        meta = _latest_metadata(instance, RAW_WEATHER_FORECAST)["2014-03-01|beijing"]
        assert (meta["already_stored"], meta["pulled"]) == (124, 0)

        (folder / "2014-03-10T12.json").unlink()
        assert _materialize(settings, PULLS[:1], MARCH, instance, resources).success
        assert _CountingWeather.last.pulled == [datetime(2014, 3, 10, 12, tzinfo=UTC)]
        after = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert after == before  # the re-pulled issue is byte-identical


def test_a_failing_issue_fails_only_its_partition_and_keeps_what_was_stored(
    settings: Settings,
) -> None:
    weather = _CountingWeather(failing=["2014-02-10T06"])
    with dg.instance_for_test() as instance:
        result = _materialize(
            settings, PULLS[:1], Q1, instance, _with(settings, weather), raise_on_error=False
        )
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.event_specific_data.error.message  # type: ignore[union-attr]
        assert "1 of 3 partition pull(s) failed (2 stored and materialized" in message
        assert "2014-02-01|beijing issue 2014-02-10T06Z" in message
        materialized, failed = _status(instance, RAW_WEATHER_FORECAST)
        assert materialized == {"2014-01-01|beijing", "2014-03-01|beijing"}
        assert failed == {"2014-02-01|beijing"}
        february = _issues(settings, date(2014, 2, 1))
        assert len(february) == 28 * 4 - 1  # the others of its month are kept
        assert datetime(2014, 2, 10, 6, tzinfo=UTC) not in february

        healed = _CountingWeather()
        february_tags = range_tags("2014-02-01", "2014-02-01", ["beijing"])
        rerun = _materialize(settings, PULLS[:1], february_tags, instance, _with(settings, healed))
        assert rerun.success
        assert _CountingWeather.last.pulled == [datetime(2014, 2, 10, 6, tzinfo=UTC)]
        materialized, failed = _status(instance, RAW_WEATHER_FORECAST)
        assert materialized == set(MONTHS) and failed == set()


def test_a_401_stops_the_run_and_the_partitions_not_reached_show_failed(
    settings: Settings,
) -> None:
    weather = _CountingWeather(failing=["2014-01-01T00"], status=401)
    with dg.instance_for_test() as instance:
        result = _materialize(
            settings, PULLS[:1], Q1, instance, _with(settings, weather), raise_on_error=False
        )
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.event_specific_data.error.message  # type: ignore[union-attr]
        assert "authentication failed, stopping" in message
        assert "3 of 3 partition pull(s) failed (0 stored" in message
        assert "not pulled: the run stopped first" in message
        assert _CountingWeather.last.pulled == []
        materialized, failed = _status(instance, RAW_WEATHER_FORECAST)
        assert materialized == set() and failed == set(MONTHS)


def test_the_weather_forecasts_frame_passes_its_schema_with_lead_in_hours(
    settings: Settings,
) -> None:
    with dg.instance_for_test() as instance:
        assert _materialize(settings, PULLS[:1], Q1, instance).success
        result = _materialize(settings, [FRAME], Q1, instance)
        assert result.success
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "schema" and check.passed
        for key, month in MONTHS.items():
            stored = pd.read_parquet(
                frame_path(settings.data_dir, WEATHER_FORECASTS, "beijing", month)
            )
            assert validate_lazily(WeatherForecastsSchema, stored)[0]
            issues = len(month_issues(month, settings.clock.now(), 6))
            assert stored["issue_time"].nunique() == issues
            assert len(stored) == issues * 48  # the data reaches every target hour
            lead = (stored["time"] - stored["issue_time"]) / pd.Timedelta("1h")
            assert (lead == stored["lead"]).all()
            assert sorted(stored["lead"].unique()) == list(range(1, 49))
            # a partition holds its month's issues, even where their targets leave it
            assert (stored["issue_time"].dt.month == month.month).all()
            assert (stored["time"].dt.month != month.month).any()
            meta = _latest_metadata(instance, WEATHER_FORECASTS)[key]
            assert meta["issues"] == issues
            assert meta["dagster/row_count"] == len(stored)
            assert meta["max_lead"] == 48


def test_a_month_without_stored_issues_gives_an_empty_frame_not_a_failure(
    settings: Settings,
) -> None:
    with dg.instance_for_test() as instance:
        result = _materialize(settings, [FRAME], MARCH, instance)
        assert result.success
        (check,) = result.get_asset_check_evaluations()
        assert check.passed
        stored = pd.read_parquet(
            frame_path(settings.data_dir, WEATHER_FORECASTS, "beijing", date(2014, 3, 1))
        )
        assert stored.empty and list(stored.columns)[:4] == [
            "location",
            "issue_time",
            "time",
            "lead",
        ]


def test_mid_month_the_issues_stop_at_the_clock(settings: Settings) -> None:
    at = settings.replace(replay_now="2014-03-10T13:30:00Z")
    with dg.instance_for_test() as instance:
        assert _materialize(at, PULLS[:1], MARCH, instance).success
        issues = _issues(at, date(2014, 3, 1))
        assert max(issues) == datetime(2014, 3, 10, 12, tzinfo=UTC)
        assert len(issues) == 9 * 4 + 3


def test_the_hourly_tick_pulls_the_due_issue_once(settings: Settings) -> None:
    from airquality_assets.defs.data.schedules import newest_partition_requests
    from airquality_assets.defs.resources import RawStore

    everything = list(_BY_NAME.values())
    store = RawStore(base_dir=str(settings.data_dir))
    now = settings.clock.now()  # 2014-12-31T00:00Z: the 00:00 issue is due

    def tick() -> list[dg.AssetsDefinition]:
        from airquality_assets.defs.data.schedules import forecast_issue_missing

        due = forecast_issue_missing(store, settings.location_names, now, 6)
        (request,) = newest_partition_requests(now, settings.location_names, forecasts=due)
        keys = request.asset_selection
        chosen = [a for a in everything if keys is None or a.key in keys]
        with dg.instance_for_test() as instance:
            assert _materialize(settings, chosen, dict(request.tags), instance).success
        return chosen

    assert {a.key.to_user_string() for a in tick()} == set(_BY_NAME)
    december = _issues(settings, date(2014, 12, 1))
    assert max(december) == now and len(december) == 30 * 4 + 1
    assert {a.key.to_user_string() for a in tick()} == {"raw_air_quality", "raw_weather"}


# --- live: the issue due now only, from a local server in Visual Crossing's wire format -------


def test_a_live_pull_stores_the_issue_due_now_exactly_as_returned(
    data_dir: Path,  # noqa: ARG001 (its environment, by name)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re

    from airquality_assets.sources.spans import due_issue
    from airquality_assets_tests.sources import fixture_bytes, local_server

    body = fixture_bytes("vc_forecast_london_2024-03-04T12.json")
    with local_server() as server:
        server.expect_request(
            re.compile(r"/timeline/51\.5074,-0\.1278/\d{4}-\d\d-\d\d/\d{4}-\d\d-\d\d")
        ).respond_with_data(body, content_type="application/json")
        for name, value in {
            "AIRQUALITY_SOURCE": "live",
            "AIRQUALITY_LOCATIONS": "london:51.5074:-0.1278",
            "AIRQUALITY_START_DATE": "2024-01-01",
            "VISUAL_CROSSING_BASE_URL": server.url_for("/timeline"),
            "VISUAL_CROSSING_API_KEY": "ABCDEFGHJKLMNPQRSTUVWXYZ2",
            "OPENWEATHER_API_KEY": "unused",
        }.items():
            monkeypatch.setenv(name, value)
        live = Settings.from_env()
        now = live.clock.now()
        month = date(now.year, now.month, 1)
        previous = date(now.year - (now.month == 1), (now.month - 2) % 12 + 1, 1)
        partitions = build_partitions(live)
        raw = next(
            a
            for a in ingestion_assets(partitions)
            if a.key.to_user_string() == RAW_WEATHER_FORECAST
        )
        tags = range_tags(previous.isoformat(), month.isoformat(), ["london"])
        with dg.instance_for_test() as instance:
            assert _materialize(live, [raw], tags, instance).success
            assert _materialize(live, [raw], tags, instance).success  # stored: not re-fetched
        (request, _), *_ = server.log
        assert len(server.log) == 1
        assert request.args["unitGroup"] == "metric" and request.args["timezone"] == "Z"
    issue = due_issue(now, live.forecast_issue_hours)
    (path,) = raw_issue_bodies(live.data_dir, RAW_WEATHER_FORECAST, "london", month)
    assert path.name == f"{issue:%Y-%m-%dT%H}.json"
    assert path.read_bytes() == body
    # no archive: the month before holds nothing, and the current month only the issue due
    assert stored_issues(live.data_dir, RAW_WEATHER_FORECAST, "london", previous) == set()
