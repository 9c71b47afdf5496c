"""Raw pulls: one response body per (UTC day, location), stored exactly as returned.

A backfill of any length runs as one run per location (single-run backfill policy); inside
it, each partition is its own request and its own atomic file, so one failed day never
touches the files of other days, nor the previous file of the failed day.
"""

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from airquality_assets.defs.partitions import DataPartitions, single_run, split_key
from airquality_assets.defs.resources import (
    AirPollutionSourceResource,
    DeploymentResource,
    RawStore,
    WeatherSourceResource,
)
from airquality_assets.quality import RawBodyVerdict, raw_body_verdict
from airquality_assets.settings import Settings
from airquality_assets.sources.base import Location, RawResponse, SourceError
from airquality_assets.transforms.parsing import parse_air_pollution, parse_weather

PROGRESS_EVERY = 100
RAW_BODY_CHECK = "body_parses_within_window"
_PARSERS = {"raw_air_quality": parse_air_pollution, "raw_weather": parse_weather}


def _raw_body_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RAW_BODY_CHECK,
        asset=asset,
        description=(
            "Every body pulled in the run parses, its records are counted, and none lies "
            "outside its partition's UTC day"
        ),
    )


def _raw_body_check_result(asset: str, verdict: RawBodyVerdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=RAW_BODY_CHECK,
        passed=verdict.passed,
        metadata={
            "partitions_checked": verdict.partitions,
            "records": verdict.records,
            "empty_bodies": len(verdict.empty),
            "unparsable": dg.MetadataValue.json(dict(list(verdict.unparsable.items())[:20])),
            "outside_window": dg.MetadataValue.json(
                dict(list(verdict.outside_window.items())[:20])
            ),
        },
        description=verdict.describe(),
    )


def _parse_or_error(asset_name: str, body: bytes, location: str) -> pd.DataFrame | Exception:
    try:
        return _PARSERS[asset_name](body, location)
    except Exception as exc:  # any failure to read the body is the check's finding
        return exc


def _pull_partitions(
    context: dg.AssetExecutionContext,
    asset_name: str,
    settings: Settings,
    raw_store: RawStore,
    fetch: Callable[[Location, date], RawResponse],
) -> dg.MaterializeResult:
    """Pull and store every partition of the run; fail at the end listing what failed.

    An authentication error (401) fails at once: every other day would fail the same way.
    """
    keys = context.partition_keys
    total_bytes = total_records = 0
    total_seconds = 0.0
    failures: list[str] = []
    parsed: dict[str, pd.DataFrame | Exception] = {}
    windows: dict[str, tuple[datetime, datetime]] = {}
    started = time.perf_counter()
    for index, partition_key in enumerate(keys, start=1):
        day_text, location_name = split_key(partition_key)
        location = settings.location(location_name)
        try:
            response = fetch(location, date.fromisoformat(day_text))
        except SourceError as exc:
            if exc.status == 401:
                raise dg.Failure(
                    description=f"{asset_name}: authentication failed, stopping: {exc}"
                ) from exc
            context.log.error(f"{asset_name} {partition_key}: {exc} (previous file kept)")
            failures.append(f"{partition_key}: {exc}")
            continue
        raw_store.write(asset_name, location_name, day_text, response.body)
        parsed[str(partition_key)] = _parse_or_error(asset_name, response.body, location_name)
        day_start = _day_bounds(date.fromisoformat(day_text))[0]
        windows[str(partition_key)] = (day_start, day_start + timedelta(days=1))
        total_bytes += len(response.body)
        total_records += response.record_count
        total_seconds += response.duration_s
        if index % PROGRESS_EVERY == 0 or index == len(keys):
            context.log.info(
                f"{asset_name}: {index}/{len(keys)} partitions pulled, {total_records} records"
            )
    if failures:
        raise dg.Failure(
            description=(
                f"{asset_name}: {len(failures)} of {len(keys)} partition pull(s) failed; "
                "successful ones were stored, failed ones kept their previous file"
            ),
            metadata={"failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures))},
        )
    return dg.MaterializeResult(
        metadata={
            "partitions": len(keys),
            "bytes": total_bytes,
            "records": total_records,
            "request_seconds": round(total_seconds, 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
        },
        check_results=[_raw_body_check_result(asset_name, raw_body_verdict(parsed, windows))],
    )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(hours=23)


def ingestion_assets(partitions: DataPartitions) -> list[dg.AssetsDefinition]:
    """The raw-pull assets over this deployment's (day x location) partitions."""

    @dg.asset(
        partitions_def=partitions.daily,
        backfill_policy=single_run,
        group_name="ingestion",
        kinds={"python", "json"},
        check_specs=[_raw_body_check_spec("raw_air_quality")],
        description=(
            "Hourly air pollution per UTC day and location, as the OpenWeatherMap Air Pollution "
            "history endpoint returned it (or the replay source, in the same JSON shape)."
        ),
    )
    def raw_air_quality(
        context: dg.AssetExecutionContext,
        deployment: DeploymentResource,
        air_pollution_source: AirPollutionSourceResource,
        raw_store: RawStore,
    ) -> dg.MaterializeResult:
        settings = deployment.settings
        client = air_pollution_source.client(settings.clock)
        return _pull_partitions(
            context,
            "raw_air_quality",
            settings,
            raw_store,
            lambda location, day: client.history(location, *_day_bounds(day)),
        )

    @dg.asset(
        partitions_def=partitions.daily,
        backfill_policy=single_run,
        group_name="ingestion",
        kinds={"python", "json"},
        check_specs=[_raw_body_check_spec("raw_weather")],
        description=(
            "Hourly weather per UTC day and location, as the Visual Crossing Timeline API "
            "returned it (metric units, timezone=Z), or the replay source in the same shape."
        ),
    )
    def raw_weather(
        context: dg.AssetExecutionContext,
        deployment: DeploymentResource,
        weather_source: WeatherSourceResource,
        raw_store: RawStore,
    ) -> dg.MaterializeResult:
        settings = deployment.settings
        client = weather_source.client(settings.clock)
        return _pull_partitions(
            context,
            "raw_weather",
            settings,
            raw_store,
            lambda location, day: client.timeline(location, day, day),
        )

    return [raw_air_quality, raw_weather]
