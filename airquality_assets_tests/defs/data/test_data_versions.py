"""Data versions follow the stored data: the raw partitions' versions are content hashes,
so an identical re-pull leaves everything downstream fresh (and the frames' automation
condition requests nothing), and a changed body makes exactly the partitions that read it
stale. Real runs on a temporary instance; staleness as Dagster's UI computes it."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import pytest
from dagster._utils.test.data_versions import get_stale_status_resolver

from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.partitions import build_partitions, range_tags
from airquality_assets.defs.resources import build_resources
from airquality_assets.settings import Settings
from airquality_assets.storage import raw_month_bodies

MONTHS = ["2014-01-01", "2014-02-01", "2014-03-01", "2014-04-01"]
ALL = range_tags(MONTHS[0], MONTHS[-1], ["beijing"])
RAW = ("raw_air_quality", "raw_weather")
FRAMES = ("air_quality_hourly", "weather_hourly", "hourly_observations")
REFETCH = {"ops": {name: {"config": {"refetch_closed_months": True}} for name in RAW}}


@pytest.fixture
def world(settings: Settings):
    settings = settings.replace(start_date=date(2014, 1, 1), end_date=date(2014, 5, 1))
    partitions = build_partitions(settings)
    assets = [
        a
        for a in [*ingestion_assets(partitions), *frame_assets(partitions)]
        if a.key.to_user_string() in RAW + FRAMES
    ]
    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources(settings)

    def run(names: tuple[str, ...], tags=ALL, **kwargs) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            assets,
            selection=list(names),
            resources=resources,
            instance=instance,
            tags=tags,
            **kwargs,
        )
        assert result.success
        return result

    run(RAW)
    run(FRAMES)
    return settings, assets, instance, run


def _stale(instance: dg.DagsterInstance, assets) -> dict[str, list[str]]:
    """The stale partitions of each frame, per the resolver the UI uses."""
    resolver = get_stale_status_resolver(instance, assets)
    return {
        name: [
            month[:7]
            for month in MONTHS
            if resolver.get_status(
                dg.AssetKey(name), dg.MultiPartitionKey({"date": month, "location": "beijing"})
            ).value
            == "STALE"
        ]
        for name in FRAMES
    }


def _versions(instance: dg.DagsterInstance, asset: str) -> dict[str, str]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    out: dict[str, str] = {}
    for record in records:  # newest first
        event = record.asset_materialization
        assert event is not None and event.partition is not None
        out.setdefault(str(event.partition), event.tags["dagster/data_version"])
    return out


def test_an_identical_re_pull_gives_the_same_versions_and_leaves_all_fresh(world) -> None:
    _, assets, instance, run = world
    before = {name: _versions(instance, name) for name in RAW}
    assert len(set(before["raw_air_quality"].values())) == len(MONTHS)  # one per partition
    events = len(instance.fetch_materializations(dg.AssetKey("raw_air_quality"), 100).records)
    run(RAW, run_config=REFETCH)
    assert {name: _versions(instance, name) for name in RAW} == before
    after = len(instance.fetch_materializations(dg.AssetKey("raw_air_quality"), 100).records)
    assert after - events == len(MONTHS)  # one event per partition, as before versions
    assert _stale(instance, assets) == {name: [] for name in FRAMES}


def test_a_changed_body_makes_exactly_the_partitions_that_read_it_stale(world) -> None:
    settings, assets, instance, run = world
    (body,) = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", date(2014, 2, 1))
    data = json.loads(body.read_bytes())
    data["list"][0]["components"]["pm2_5"] += 1.0
    body.write_text(json.dumps(data))
    run(("raw_air_quality",))  # stored whole: not pulled again, versioned from what is stored
    # Dagster's staleness is one step deep: the direct dependant first ...
    assert _stale(instance, assets) == {
        "air_quality_hourly": ["2014-02"],
        "weather_hourly": [],
        "hourly_observations": [],
    }
    feb = range_tags(MONTHS[1], MONTHS[1], ["beijing"])
    run(("air_quality_hourly",), tags=feb)
    # ... then, once it is rebuilt, the months that read it (M-1..M+1), and nothing else
    assert _stale(instance, assets) == {
        "air_quality_hourly": [],
        "weather_hourly": [],
        "hourly_observations": ["2014-01", "2014-02", "2014-03"],
    }


def test_the_frames_automation_ignores_an_identical_re_pull(world) -> None:
    settings, assets, instance, run = world
    defs = dg.Definitions(assets=assets, resources=build_resources(settings))
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    run(RAW, run_config=REFETCH)
    same = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert same.total_requested == 0
    (body,) = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", date(2014, 4, 1))
    data = json.loads(body.read_bytes())
    data["list"][0]["components"]["pm2_5"] += 1.0
    body.write_text(json.dumps(data))
    run(("raw_air_quality",))
    changed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=same.cursor)
    requested = {
        (key.to_user_string(), str(partition))
        for key in (dg.AssetKey("air_quality_hourly"),)
        for partition in changed.get_requested_partitions(key)
    }
    assert requested == {("air_quality_hourly", "2014-04-01|beijing")}
