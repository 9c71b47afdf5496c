"""The ``forecasts`` asset on the replay data, for a champion that reads weather forecasts.

The data half runs for real (one month of replay pulls and frames, so ``weather_forecasts``
holds the replay source's stand-in issues, every 6 h); only the registry is replaced: the
champion is a record with two-input package metadata and a stand-in forward pass that
answers each horizon with the forecast temperature it was given, so what the asset fed it
can be read back from the store.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.loop.assets import forecasts_asset
from airquality_assets.defs.partitions import build_partitions
from airquality_assets.defs.resources import build_resources
from airquality_assets.ml.package import ModelMetadata
from airquality_assets.ml.registry import ChampionRecord
from airquality_assets.monitoring.forecasting import ForecastStore
from airquality_assets.settings import Settings
from airquality_assets.storage import frame_path, storage_location
from airquality_assets.transforms.features import default_feature_names
from airquality_assets.transforms.forecast_inputs import future_feature_names

LOCATION = "beijing"
MONTH = {
    "dagster/asset_partition_range_start": f"2014-03-01|{LOCATION}",
    "dagster/asset_partition_range_end": f"2014-03-01|{LOCATION}",
}
DAY = date(2014, 3, 10)
CLOCK = datetime(2014, 3, 10, 7, 30, tzinfo=UTC)
FUTURE = future_feature_names()
TEMP = FUTURE.index("temp")


def _champion(reads_forecast: bool) -> ChampionRecord:
    features = default_feature_names(["pm2_5"])
    metadata = ModelMetadata(
        feature_names=features,
        target_pollutants=["pm2_5"],
        lookback=24,
        horizons=list(range(1, 25)),
        training_window={"start": "2013-01-01T00:00:00Z", "end": "2014-01-31T23:00:00Z"},
        future_feature_names=FUTURE if reads_forecast else [],
    )
    return ChampionRecord("airquality-lstm", "4", "models:/airquality-lstm/4", metadata, {}, {})


def _forward(reads_forecast: bool, calls: list[int]):
    def two_inputs(x: np.ndarray, future: np.ndarray) -> np.ndarray:
        assert x.shape[1:] == (24, len(default_feature_names(["pm2_5"])))
        assert future.shape[1:] == (24, len(FUTURE)) and np.isfinite(future).all()
        calls.append(2)
        return future[:, :, TEMP : TEMP + 1] + 100.0  # +100: never a plausible temperature

    def one_input(x: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.repeat(x[:, -1:, :1], 24, axis=1)

    return two_inputs if reads_forecast else one_input


@pytest.fixture
def replay_month(settings: Settings):
    """March 2014 pulled and framed from the replay data (its stand-in forecasts too)."""
    settings = settings.replace(forecasts_start_date=date(2014, 3, 1))  # the loop's first day
    partitions = build_partitions(settings)
    data = [*ingestion_assets(partitions), *frame_assets(partitions)]
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    for group in (ingestion_assets(partitions), frame_assets(partitions)):
        assert dg.materialize(group, resources=resources, tags=MONTH, instance=instance).success
    return settings, data, resources, instance


def _issue(replay_month, monkeypatch: pytest.MonkeyPatch, reads_forecast: bool):
    settings, data, resources, instance = replay_month
    calls: list[int] = []
    monkeypatch.setattr(
        "airquality_assets.defs.loop.assets._champion",
        lambda *_: _champion(reads_forecast),
    )
    monkeypatch.setattr(
        "airquality_assets.ml.registry.champion_forward",
        lambda *_: _forward(reads_forecast, calls),
    )
    asset = forecasts_asset(settings)
    result = dg.materialize(
        [asset, *data],
        selection=[asset.key],
        partition_key=dg.MultiPartitionKey({"date": DAY.isoformat(), "location": LOCATION}),
        resources={**resources, "deployment": resources["deployment"].at(CLOCK)},
        instance=instance,
    )
    assert result.success
    metadata = result.asset_materializations_for_node("forecasts")[0].metadata
    stored = ForecastStore(settings.storage_root).read_day(LOCATION, DAY)
    return {k: getattr(v, "value", v) for k, v in metadata.items()}, stored, calls


@pytest.mark.timeout(600)
def test_each_hour_gets_the_newest_stand_in_issued_at_or_before_it(
    replay_month, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata, stored, calls = _issue(replay_month, monkeypatch, reads_forecast=True)
    assert metadata["issued"] == 8 and calls == [2]  # 00:00 .. 07:00, one forward pass
    assert metadata["skipped_no_weather_forecast"] == 0
    assert metadata["weather_forecast_issues_read"] >= 2  # the 00:00 and 06:00 issues at least
    settings = replay_month[0]
    weather = pd.read_parquet(
        frame_path(storage_location(settings.storage_root), "weather_forecasts", LOCATION,
                   date(2014, 3, 1))
    )  # fmt: skip
    said = weather.set_index(["issue_time", "time"])["temp"]
    by = stored.set_index(["issued_at", "horizon"])["forecast"]
    for hour in pd.date_range("2014-03-10", periods=8, freq="h", tz="UTC"):
        newest = hour.floor("6h")  # the replay source issues every 6 h from 00 UTC
        for h in (1, 5, 24):
            target = hour + pd.Timedelta(hours=h)
            assert by[(hour, h)] == pytest.approx(said[(newest, target)] + 100.0, abs=1e-4)
    # 05:00 read the 00:00 issue, not the 06:00 one (issued after it): they differ there
    at_5 = pd.Timestamp("2014-03-10T05:00Z")
    later = said[(pd.Timestamp("2014-03-10T06:00Z"), at_5 + pd.Timedelta(hours=24))]
    assert by[(at_5, 24)] != pytest.approx(later + 100.0, abs=1e-4)


@pytest.mark.timeout(600)
def test_without_a_stored_forecast_hours_are_skipped_and_counted(
    replay_month, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = replay_month[0]
    path = frame_path(storage_location(settings.storage_root), "weather_forecasts", LOCATION,
                      date(2014, 3, 1))  # fmt: skip
    Path(path).unlink()
    metadata, stored, calls = _issue(replay_month, monkeypatch, reads_forecast=True)
    assert metadata["issued"] == 0 and stored.empty and calls == []
    assert metadata["skipped_no_weather_forecast"] == 8
    assert metadata["weather_forecast_issues_read"] == 0
    assert len(metadata["skipped_hours"]["no_weather_forecast"]) == 8

    # an observation-only champion never reads the frame and issues as before
    metadata, stored, calls = _issue(replay_month, monkeypatch, reads_forecast=False)
    assert metadata["issued"] == 8 and calls == [1]
    assert "weather_forecast_issues_read" not in metadata
    assert metadata["skipped_no_weather_forecast"] == 0
