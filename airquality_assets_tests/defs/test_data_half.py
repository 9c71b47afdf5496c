"""The data half materialized in process from the bundled replay data, then read back."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from airquality_assets.clock import Clock
from airquality_assets.defs.frames import frame_assets
from airquality_assets.defs.freshness import hourly_observations_freshness
from airquality_assets.defs.ingestion import ingestion_assets
from airquality_assets.defs.partitions import build_partitions
from airquality_assets.defs.resources import AirPollutionSourceResource, build_resources
from airquality_assets.settings import Settings
from airquality_assets.sources.base import AirPollutionSource, SourceError
from airquality_assets.storage import frame_path, raw_path

_PARTITIONS = build_partitions(Settings(data_dir=Path("unused")))
RAW = ingestion_assets(_PARTITIONS)
FRAMES = frame_assets(_PARTITIONS)
raw_air_quality = RAW[0]
RANGE = {
    "dagster/asset_partition_range_start": "2014-03-01|beijing",
    "dagster/asset_partition_range_end": "2014-03-02|beijing",
}
MONTH = {
    "dagster/asset_partition_range_start": "2014-03-01|beijing",
    "dagster/asset_partition_range_end": "2014-03-01|beijing",
}


def _materialize(
    settings: Settings, assets=RAW, tags=RANGE, instance=None, **kwargs
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources=build_resources(settings),
        tags=tags,
        instance=instance or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def test_two_days_of_one_location(settings: Settings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(settings, instance=instance).success
    result = _materialize(
        settings, [*FRAMES, hourly_observations_freshness], MONTH, instance, raise_on_error=True
    )
    assert result.success
    base = settings.data_dir
    for day in (date(2014, 3, 1), date(2014, 3, 2)):
        body = json.loads(raw_path(base, "raw_air_quality", "beijing", day).read_bytes())
        assert {"coord", "list"} <= body.keys()
        assert "days" in json.loads(raw_path(base, "raw_weather", "beijing", day).read_bytes())

    observations = pd.read_parquet(
        frame_path(base, "hourly_observations", "beijing", date(2014, 3, 1))
    )
    assert len(observations) == 48  # a full hourly grid: every UTC hour of both days
    assert observations["time"].is_monotonic_increasing
    assert str(observations["time"].dt.tz) == "UTC"
    assert observations["pm2_5"].notna().sum() > 40
    assert observations["temp"].notna().all()

    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("hourly_observations", "schema")]
    assert checks[("air_quality_hourly", "schema")]
    assert checks[("weather_hourly", "schema")]

    mats = result.asset_materializations_for_node("hourly_observations")
    assert {m.partition for m in mats} == {"2014-03-01|beijing"}
    assert mats[0].metadata["dagster/row_count"].value == 48


class _FlakySource(AirPollutionSourceResource):
    """Serves the replay data except for one day, which fails like a 503 after retries."""

    failing_day: str

    def client(self, clock: Clock) -> AirPollutionSource:
        from airquality_assets.sources.replay import ReplayAirPollutionSource

        inner = ReplayAirPollutionSource(now=clock.now())
        failing_day = self.failing_day

        class _Client:
            source_name = "flaky"

            def history(self, location, start, end):
                if start.date().isoformat() == failing_day:
                    raise SourceError("flaky", location.name, f"{start}..{end}", "down", 503)
                return inner.history(location, start, end)

            def now(self):
                return inner.now()

        return _Client()  # type: ignore[return-value]


def test_failed_pull_keeps_previous_file_and_fails_clearly(settings: Settings) -> None:
    first = _materialize(settings, assets=[raw_air_quality])
    assert first.success
    path: Path = raw_path(settings.data_dir, "raw_air_quality", "beijing", date(2014, 3, 2))
    before = path.read_bytes()
    path.write_bytes(before)  # the "previous" good file

    resources = build_resources(settings)
    resources["air_pollution_source"] = _FlakySource(failing_day="2014-03-02")
    with pytest.raises(dg.Failure, match=r"1 of 2 partition pull\(s\) failed"):
        dg.materialize(
            [raw_air_quality],
            resources=resources,
            tags=RANGE,
            instance=dg.DagsterInstance.ephemeral(),
        )
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))


def test_raw_body_check_and_freshness_by_the_source_clock(settings: Settings) -> None:
    import dataclasses

    from airquality_assets.defs.resources import DeploymentResource

    instance = dg.DagsterInstance.ephemeral()
    pulled = _materialize(settings, instance=instance)
    raw_checks = {e.asset_key.to_user_string(): e for e in pulled.get_asset_check_evaluations()}
    for asset in ("raw_air_quality", "raw_weather"):
        check = raw_checks[asset]
        assert check.passed and check.check_name == "body_parses_within_window"
        assert check.metadata["partitions_checked"].value == 2
        assert check.metadata["records"].value == 48
    assert _materialize(settings, FRAMES, MONTH, instance).success

    def freshness_at(now: str) -> dg.AssetCheckResult:
        at = dataclasses.replace(settings, replay_now=Clock().at(now).now())
        return hourly_observations_freshness(deployment=DeploymentResource.from_settings(at))

    fresh = freshness_at("2014-03-03T00:00:00Z")  # newest stored hour 2014-03-02 23:00
    assert fresh.passed, fresh.description
    stale = freshness_at("2014-03-03T06:00:00Z")
    assert not stale.passed and "stale" in (stale.description or "")
    future = freshness_at("2014-03-02T09:00:00Z")  # 14 stored hours lie after this clock
    assert not future.passed and "14 row(s) after the source's clock" in future.description
    assert future.metadata["lag_hours_by_location"].value == {"beijing": -14.0}
