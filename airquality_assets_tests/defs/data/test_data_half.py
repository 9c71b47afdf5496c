"""The data half materialized in process from the bundled replay data, then read back.

Partition status is checked against a real (temporary, SQLite) DagsterInstance: what the UI
shows is what these tests assert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.partition_status_cache import (
    get_and_update_asset_status_cache_value,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.clock import Clock
from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.freshness import hourly_observations_freshness
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.data.schedules import newest_partition_requests
from airquality_assets.defs.partitions import build_partitions, range_tags
from airquality_assets.defs.resources import (
    AirPollutionSourceResource,
    WeatherSourceResource,
    build_resources,
)
from airquality_assets.settings import Settings
from airquality_assets.sources.base import (
    AirPollutionSource,
    RawResponse,
    SourceError,
    WeatherSource,
)
from airquality_assets.sources.replay import ReplayAirPollutionSource, ReplayWeatherSource
from airquality_assets.storage import frame_path, raw_month_bodies, raw_span
from airquality_assets_tests.sources import fixture_bytes, local_server

pytestmark = pytest.mark.slow

_PARTITIONS = build_partitions(Settings(data_dir=Path("unused")))
RAW = ingestion_assets(_PARTITIONS)
FRAMES = frame_assets(_PARTITIONS)
raw_air_quality = RAW[0]
MARCH = range_tags("2014-03-01", "2014-03-01", ["beijing"])
Q1 = range_tags("2014-01-01", "2014-03-01", ["beijing"])


def _materialize(
    settings: Settings, assets=RAW, tags=MARCH, instance=None, resources=None, **kwargs
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources=resources or build_resources(settings),
        tags=tags,
        instance=instance or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def _status(instance: dg.DagsterInstance, asset: str) -> tuple[set[str], set[str]]:
    """(materialized, failed) partition keys as Dagster's UI computes them."""
    partitions_def = _PARTITIONS.monthly
    value = get_and_update_asset_status_cache_value(instance, dg.AssetKey(asset), partitions_def)
    assert value is not None
    materialized = value.deserialize_materialized_partition_subsets(partitions_def)
    failed = value.deserialize_failed_partition_subsets(partitions_def)
    return set(materialized.get_partition_keys()), set(failed.get_partition_keys())


def test_one_month_of_one_location(settings: Settings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(settings, instance=instance).success
    result = _materialize(
        settings, [*FRAMES, hourly_observations_freshness], MARCH, instance, raise_on_error=True
    )
    assert result.success
    base = settings.data_dir
    month = date(2014, 3, 1)
    (air_path,) = raw_month_bodies(base, "raw_air_quality", "beijing", month)
    (weather_path,) = raw_month_bodies(base, "raw_weather", "beijing", month)
    assert air_path.name == "2014-03-01T00_2014-03-31T23.json"  # one request for the month
    body = json.loads(air_path.read_bytes())
    assert {"coord", "list"} <= body.keys()
    assert len(json.loads(weather_path.read_bytes())["days"]) == 31

    observations = pd.read_parquet(frame_path(base, "hourly_observations", "beijing", month))
    assert len(observations) == 31 * 24  # a full hourly grid
    assert observations["time"].is_monotonic_increasing
    assert str(observations["time"].dt.tz) == "UTC"
    assert observations["temp"].notna().all()

    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("hourly_observations", "schema")].passed
    assert checks[("air_quality_hourly", "schema")].passed
    assert checks[("weather_hourly", "schema")].passed

    # completeness counts the hours OWM left out, not NaN among stored rows
    air = pd.read_parquet(frame_path(base, "air_quality_hourly", "beijing", month))
    omitted = 31 * 24 - len(air)
    assert omitted > 0 and air["pm2_5"].isna().sum() == 0  # the old measure saw 0 % missing
    completeness = checks[("air_quality_hourly", "completeness")].metadata
    assert completeness["expected_hours"].value == 744
    assert completeness["missing_hours"].value["pm2_5"] == omitted
    assert completeness["longest_gap_hours"].value["pm2_5"] >= 1
    assert "no2 (beijing)" in completeness["never_reported"].value  # named, not failed
    assert checks[("air_quality_hourly", "completeness")].passed
    mats = result.asset_materializations_for_node("hourly_observations")
    assert {m.partition for m in mats} == {"2014-03-01|beijing"}
    assert "pm2_5" in mats[0].metadata["missing_hours"].value  # per column, in metadata


def _events_by_partition(instance: dg.DagsterInstance, asset: str) -> dict[str, dict]:
    """Plain metadata of every stored materialization of ``asset``, by partition."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
    out: dict[str, dict] = {}
    for record in records:
        m = record.asset_materialization
        assert m is not None and m.partition is not None
        assert m.partition not in out  # one event per partition and run
        out[m.partition] = {k: v.value for k, v in m.metadata.items()}
    return out


def test_single_run_backfill_gives_each_partition_its_own_metadata(settings: Settings) -> None:
    """One run over Jan..Mar 2014: each month's event holds that month's figures, read back
    from what was stored, not the run's totals."""
    with dg.instance_for_test() as instance:
        assert _materialize(settings, RAW, Q1, instance).success
        assert _materialize(settings, FRAMES, Q1, instance).success
        months = {f"2014-0{m}-01|beijing": date(2014, m, 1) for m in (1, 2, 3)}

        raw = _events_by_partition(instance, "raw_air_quality")
        assert set(raw) == set(months)
        for key, month in months.items():
            (path,) = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", month)
            assert raw[key]["bytes"] == path.stat().st_size
            assert raw[key]["records"] == len(json.loads(path.read_bytes())["list"])
            assert raw[key]["run"]["records"] == sum(e["records"] for e in raw.values())
        assert len({e["records"] for e in raw.values()}) == 3  # 744, 672, ~743: not equal

        for asset in ("air_quality_hourly", "hourly_observations"):
            events = _events_by_partition(instance, asset)
            assert set(events) == set(months)
            for key, month in months.items():
                stored = pd.read_parquet(frame_path(settings.data_dir, asset, "beijing", month))
                meta = events[key]
                assert meta["dagster/row_count"] == len(stored)
                assert meta["first_hour"] == str(stored["time"].min())
                assert meta["last_hour"] == str(stored["time"].max())
                expected = pd.Timestamp(month).days_in_month * 24
                assert meta["expected_hours"] == expected
                present = stored["pm2_5"].notna().sum()
                assert meta["missing_pm2_5"] == expected - present  # absent rows count
                assert meta["missing_hours"]["pm2_5"] == expected - present
                # a column never reported is named as such, not listed as missing every hour
                assert (
                    "co" not in meta["missing_hours"] and "co (beijing)" in meta["never_reported"]
                )
            assert len({e["dagster/row_count"] for e in events.values()}) > 1
            assert len({e["first_hour"] for e in events.values()}) == 3

        observations = _events_by_partition(instance, "hourly_observations")
        for key, month in months.items():
            stored = pd.read_parquet(
                frame_path(settings.data_dir, "hourly_observations", "beijing", month)
            )
            cleaning = observations[key]["cleaning"]
            interpolated = int(stored.filter(like="_interpolated").to_numpy().sum())
            assert observations[key]["interpolated"] == interpolated == cleaning["interpolated"]
            spikes = int(stored.filter(like="_spike").notna().to_numpy().sum())
            assert cleaning["outliers"] >= spikes
            assert cleaning["rows"] == len(stored)
            # columns the station never reports are named, not measured as gaps
            assert "co" in cleaning["empty_columns"] and "co" not in cleaning["longest_gap_hours"]
        assert len({e["interpolated"] for e in observations.values()}) > 1


class _FlakySource(AirPollutionSourceResource):
    """Serves the replay data, except that pulls starting in ``failing_months`` fail like a
    503 after retries (every month fails when ``failing_months`` is ``["*"]``)."""

    failing_months: list[str]

    def client(self, clock: Clock) -> AirPollutionSource:
        inner = ReplayAirPollutionSource(now=clock.now())
        failing = set(self.failing_months)

        class _Client:
            source_name = "flaky"
            calls = 0

            def history(self, location, start, end):
                _Client.calls += 1
                if "*" in failing or f"{start:%Y-%m}" in failing:
                    raise SourceError("flaky", location.name, f"{start}..{end}", "down", 503)
                return inner.history(location, start, end)

            def now(self):
                return inner.now()

        _FlakySource.last_client = _Client
        return _Client()  # type: ignore[return-value]


def _with(settings: Settings, source: AirPollutionSourceResource) -> dict[str, object]:
    resources = build_resources(settings)
    resources["air_pollution_source"] = source
    return resources


def test_backfill_with_a_failing_month_shows_exactly_what_was_stored(settings: Settings) -> None:
    with dg.instance_for_test() as instance:
        flaky = _with(settings, _FlakySource(failing_months=["2014-02"]))
        result = _materialize(
            settings, [raw_air_quality], Q1, instance, flaky, raise_on_error=False
        )
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        message = failure.event_specific_data.error.message  # type: ignore[union-attr]
        assert "1 of 3 partition pull(s) failed (2 stored and materialized" in message
        assert "2014-02-01|beijing" in message
        materialized, failed = _status(instance, "raw_air_quality")
        assert materialized == {"2014-01-01|beijing", "2014-03-01|beijing"}
        assert failed == {"2014-02-01|beijing"}

        # re-run only the failed month: the range is whole and nothing shows failed
        rerun = _materialize(
            settings,
            [raw_air_quality],
            range_tags("2014-02-01", "2014-02-01", ["beijing"]),
            instance,
        )
        assert rerun.success
        materialized, failed = _status(instance, "raw_air_quality")
        assert materialized == {f"2014-0{m}-01|beijing" for m in (1, 2, 3)}
        assert failed == set()


def test_circuit_breaker_stops_the_step_after_n_consecutive_failures(
    settings: Settings,
) -> None:
    source = _FlakySource(failing_months=["*"], circuit_breaker_failures=2)
    year = range_tags("2014-01-01", "2014-12-01", ["beijing"])
    with pytest.raises(dg.Failure) as caught:
        _materialize(settings, [raw_air_quality], year, resources=_with(settings, source))
    message = str(caught.value)
    assert "flaky: circuit breaker open after 2 consecutive failed pulls" in message
    assert "2014-02" in message  # the last errors are listed
    assert _FlakySource.last_client.calls == 2  # not twelve


REFETCH = {"ops": {"raw_air_quality": {"config": {"refetch_closed_months": True}}}}


def test_a_stored_closed_month_is_not_pulled_again_unless_asked(settings: Settings) -> None:
    assert _materialize(settings, [raw_air_quality], Q1).success
    down = _with(settings, _FlakySource(failing_months=["*"]))  # any pull would fail
    again = _materialize(settings, [raw_air_quality], Q1, resources=down)
    assert again.success and _FlakySource.last_client.calls == 0  # nothing requested
    mats = {
        m.partition: m.metadata for m in again.asset_materializations_for_node("raw_air_quality")
    }
    assert {k: v["already_stored"].value for k, v in mats.items()} == {
        f"2014-0{m}-01|beijing": True for m in (1, 2, 3)
    }
    assert mats["2014-01-01|beijing"]["run"].value["already_stored"] == 3

    # asked: pulled again (and here the source is down, so the run says so)
    with pytest.raises(dg.Failure, match="3 of 3 partition pull"):
        _materialize(settings, [raw_air_quality], Q1, resources=down, run_config=REFETCH)
    assert _FlakySource.last_client.calls == 3


def test_failed_pull_keeps_previous_bodies_and_says_so_only_then(settings: Settings) -> None:
    assert _materialize(settings, [raw_air_quality], MARCH).success
    (path,) = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", date(2014, 3, 1))
    before = path.read_bytes()
    source = _FlakySource(failing_months=["2014-03", "2014-04"])
    tags = range_tags("2014-03-01", "2014-04-01", ["beijing"])
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(
        settings,
        [raw_air_quality],
        tags,
        instance,
        _with(settings, source),
        raise_on_error=False,
        run_config=REFETCH,
    )
    assert not result.success
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))
    logged = [r.user_message for r in instance.all_logs(result.run_id) if "down" in r.user_message]
    assert any("2014-03-01|beijing" in m and "(previous bodies kept)" in m for m in logged)
    assert any("2014-04-01|beijing" in m and "kept" not in m for m in logged)


def test_hourly_tick_is_one_run_that_pulls_only_the_newest_hours(settings: Settings) -> None:
    """Replay clock 2014-12-31T00:00Z: December is the month in progress."""
    instance = dg.DagsterInstance.ephemeral()
    december = range_tags("2014-12-01", "2014-12-01", ["beijing"])
    assert _materialize(settings, RAW, december, instance).success
    (tick,) = newest_partition_requests(settings.clock.now(), settings.location_names)
    assert tick.tags == december
    assert _materialize(settings, RAW, dict(tick.tags), instance).success
    bodies = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", date(2014, 12, 1))
    assert [p.name for p in bodies] == [
        "2014-12-01T00_2014-12-31T00.json",  # the month so far, one request
        "2014-12-30T23_2014-12-31T00.json",  # the tick: the newest hours only
    ]
    assert len(json.loads(bodies[1].read_bytes())["list"]) <= 2
    assert raw_span(bodies[1])[1] == settings.clock.now()


def _checks_of(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], object]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_observations_completeness_judges_the_weather_the_model_reads(
    settings: Settings,
) -> None:
    """Air quality for Q1, weather for March only: the targets are whole, the weather is
    two thirds missing, and the check on what the model reads must say so."""
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(settings, [raw_air_quality], Q1, instance).success
    assert _materialize(settings, [RAW[1]], MARCH, instance).success  # raw_weather
    result = _materialize(settings, FRAMES, Q1, instance)
    check = _checks_of(result)[("hourly_observations", "completeness")]
    assert not check.passed  # type: ignore[attr-defined]
    description = check.description  # type: ignore[attr-defined]
    assert "temp: " in description and "2014-01|beijing" in description
    assert "temp" in check.metadata["watched"].value  # type: ignore[attr-defined]


class _SilentSensors(WeatherSourceResource):
    """The replay weather as a station without humidity and pressure sensors and without
    precipitation amounts: those keys null in every hour (as Visual Crossing sends them)."""

    def client(self, clock: Clock) -> WeatherSource:
        inner = ReplayWeatherSource(now=clock.now())

        class _Client:
            source_name = "silent"

            def timeline(self, location, start, end):
                raw = inner.timeline(location, start, end)
                body = json.loads(raw.body)
                for day in body["days"]:
                    for hour in day.get("hours") or ():
                        hour.update(humidity=None, pressure=None, precip=None, preciptype=None)
                data = json.dumps(body).encode()
                return RawResponse(data, raw.record_count, raw.duration_s, raw.url)

            def now(self):
                return inner.now()

        return _Client()  # type: ignore[return-value]


def test_a_column_a_station_never_reports_is_named_once_and_fails_nothing(
    settings: Settings,
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources(settings)
    resources["weather_source"] = _SilentSensors()
    assert _materialize(settings, RAW[:2], Q1, instance, resources).success
    result = _materialize(settings, FRAMES, Q1, instance)
    checks = _checks_of(result)
    weather = checks[("weather_hourly", "completeness")]
    assert weather.passed, weather.description  # type: ignore[attr-defined]
    assert weather.description.count("humidity") == 1  # type: ignore[attr-defined]
    assert "never reported: " in weather.description  # type: ignore[attr-defined]
    excused = weather.metadata["not_judged_never_reported"].value  # type: ignore[attr-defined]
    assert excused["humidity"] == excused["pressure"] == ["beijing"]
    observations = checks[("hourly_observations", "completeness")]
    assert observations.passed, observations.description  # type: ignore[attr-defined]
    frame = pd.read_parquet(
        frame_path(settings.data_dir, "weather_hourly", "beijing", date(2014, 2, 1))
    )
    assert frame["is_rain"].isna().all() and frame["is_snow"].isna().all()  # unknown, not dry
    assert frame["temp"].notna().all()


# --- a live client against a local server, configured only through the environment ---------

LONDON_DAY = fixture_bytes("owm_history_london_2024-03-04.json")


@pytest.fixture
def owm_server() -> Iterator[HTTPServer]:
    with local_server() as server:
        yield server


@pytest.fixture
def live_settings(
    data_dir: Path,  # noqa: ARG001 (its environment, by name)
    owm_server: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    for name, value in {
        "AIRQUALITY_SOURCE": "live",
        "AIRQUALITY_LOCATIONS": "london:51.5074:-0.1278",
        "AIRQUALITY_START_DATE": "2024-03-01",
        "AIRQUALITY_END_DATE": "2024-04-01",
        "OPENWEATHER_BASE_URL": owm_server.url_for("/").rstrip("/"),
        "OPENWEATHER_API_KEY": "0123456789abcdef",
        "VISUAL_CROSSING_API_KEY": "unused",
        "OPENWEATHER_MIN_INTERVAL_S": "0",
        "AIRQUALITY_HTTP_MAX_RETRIES": "2",
    }.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def _live_raw(settings: Settings, instance=None, **kwargs) -> dg.ExecuteInProcessResult:
    partitions = build_partitions(settings)
    return dg.materialize(
        [ingestion_assets(partitions)[0]],
        resources=build_resources(settings),
        tags=range_tags("2024-03-01", "2024-03-01", ["london"]),
        instance=instance or dg.DagsterInstance.ephemeral(),
        # a partial override: no need to restate the key or the base URL
        run_config={"resources": {"air_pollution_source": {"config": {"timeout_s": 5.0}}}},
        **kwargs,
    )


def test_live_pull_survives_a_truncated_body(live_settings: Settings, owm_server) -> None:
    history = "/data/2.5/air_pollution/history"
    owm_server.expect_oneshot_request(history).respond_with_data(
        LONDON_DAY[: len(LONDON_DAY) // 2], content_type="application/json"
    )
    owm_server.expect_oneshot_request(history).respond_with_data(
        LONDON_DAY, content_type="application/json"
    )
    assert _live_raw(live_settings).success
    (path,) = raw_month_bodies(
        live_settings.data_dir, "raw_air_quality", "london", date(2024, 3, 1)
    )
    assert path.read_bytes() == LONDON_DAY  # stored exactly as returned
    assert len(owm_server.log) == 2


def _truncated(_request: Request) -> Response:
    return Response(LONDON_DAY[:1000], content_type="application/json")


def test_live_pull_always_truncated_fails_with_byte_count(
    live_settings: Settings, owm_server
) -> None:
    owm_server.expect_request("/data/2.5/air_pollution/history").respond_with_handler(_truncated)
    with pytest.raises(dg.Failure) as caught:
        _live_raw(live_settings)
    message = str(caught.value)
    assert "body is not valid JSON" in message
    assert "1000 bytes received (gave up after 3 attempts)" in message
    assert "0123456789abcdef" not in message
    assert len(owm_server.log) == 3


def test_live_retries_are_logged_and_counted_per_partition(
    live_settings: Settings, owm_server
) -> None:
    history = "/data/2.5/air_pollution/history"
    owm_server.expect_oneshot_request(history).respond_with_data(
        fixture_bytes("owm_error_429.json"), status=429, content_type="application/json"
    )
    owm_server.expect_oneshot_request(history).respond_with_data(
        fixture_bytes("owm_error_502.html").replace(b"502", b"503"),
        status=503,
        content_type="text/html",
    )
    owm_server.expect_oneshot_request(history).respond_with_data(
        LONDON_DAY, content_type="application/json"
    )
    instance = dg.DagsterInstance.ephemeral()
    result = _live_raw(live_settings, instance=instance)
    assert result.success and len(owm_server.log) == 3
    lines = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if "retrying GET" in entry.user_message
    ]
    assert len(lines) == 2, lines  # one line per retried request, in the run's log
    assert "raw_air_quality 2024-03-01|london: retrying GET" in lines[0]
    assert "HTTP 429 on attempt 1 of 3; next attempt in 0.0 s" in lines[0]
    assert "HTTP 503 on attempt 2 of 3; next attempt in" in lines[1]
    assert all("0123456789abcdef" not in line for line in lines)
    (mat,) = result.asset_materializations_for_node("raw_air_quality")
    assert mat.metadata["retries"].value == 2
    assert mat.metadata["retry_wait_seconds"].value >= 2.0  # backoff 1 * 2**1 (+ jitter)
    assert mat.metadata["run"].value["retries"] == 2  # the run's total


def test_raw_body_check_and_freshness_by_the_source_clock(settings: Settings) -> None:
    from airquality_assets.defs.resources import DeploymentResource

    instance = dg.DagsterInstance.ephemeral()
    pulled = _materialize(settings, instance=instance)
    raw_checks = {e.asset_key.to_user_string(): e for e in pulled.get_asset_check_evaluations()}
    for asset in ("raw_air_quality", "raw_weather"):
        check = raw_checks[asset]
        assert check.passed and check.check_name == "body_parses_within_window"
        assert check.metadata["partitions_checked"].value == 1  # March, one body
        assert check.metadata["records"].value >= 743  # OWM left one hour out
    assert _materialize(settings, FRAMES, MARCH, instance).success

    def freshness_at(now: str) -> dg.AssetCheckResult:
        at = settings.replace(replay_now=now)
        return hourly_observations_freshness(deployment=DeploymentResource.from_settings(at))

    fresh = freshness_at("2014-04-01T00:00:00Z")  # newest stored hour 2014-03-31 23:00
    assert fresh.passed, fresh.description
    stale = freshness_at("2014-04-01T06:00:00Z")
    assert not stale.passed and "stale" in (stale.description or "")
    future = freshness_at("2014-03-31T09:00:00Z")  # 14 stored hours lie after this clock
    assert not future.passed and "14 row(s) after the source's clock" in future.description
    assert future.metadata["lag_hours_by_location"].value == {"beijing": -14.0}
