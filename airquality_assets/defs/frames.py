"""Parsed, typed hourly frames and the merged, cleaned ``hourly_observations``.

Each asset validates its frame with its Pandera schema inside the step and reports the
result as a blocking asset check: a violation fails the check (with every failure case in
its metadata) and stops downstream assets, while the frame is still stored for inspection.
Nothing is dropped silently.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from airquality_assets import schemas
from airquality_assets.columns import POLLUTANTS, TIME
from airquality_assets.defs.checks import completeness_result, schema_check_result
from airquality_assets.defs.metadata import frame_metadata
from airquality_assets.defs.partitions import (
    DataPartitions,
    days_of_month,
    month_days,
    neighbouring_months,
    single_run,
    split_key,
)
from airquality_assets.defs.resources import DeploymentResource, RawStore
from airquality_assets.transforms.cleaning import clean_observations, influence_hours
from airquality_assets.transforms.merging import merge_hourly
from airquality_assets.transforms.parsing import parse_many

COMPLETENESS_THRESHOLD = 0.20  # share of missing target hours above which the check warns


def _column_schema(schema: type) -> dg.TableSchema:
    """The frame's columns as Dagster shows them, derived from the Pandera model."""
    dagster_type = pandera_schema_to_dagster_type(schema)
    return dagster_type.metadata["schema"].schema  # type: ignore[index,union-attr]


def _checks(asset: str, blocking: bool) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "schema",
            asset=asset,
            blocking=blocking,
            description="Pandera schema: dtypes, ranges, unique (location, time), monotonic",
        ),
        dg.AssetCheckSpec(
            "completeness",
            asset=asset,
            description=f"At most {COMPLETENESS_THRESHOLD:.0%} of the target hours missing",
        ),
    ]


def _parse_partitions(
    context: dg.AssetExecutionContext, raw_store: RawStore, raw_asset: str, kind: str
) -> pd.DataFrame:
    """Parse the raw bodies of every day of the run's months, per location in day order (a
    later body wins a duplicate hour), into one typed frame."""
    days_by_location: dict[str, list[str]] = {}
    for partition_key in context.partition_keys:
        month, location = split_key(partition_key)
        days_by_location.setdefault(location, []).extend(month_days(month))
    frames, missing = [], []
    for location, days in days_by_location.items():
        bodies = []
        for day in sorted(days):
            if raw_store.path(raw_asset, location, day).exists():
                bodies.append(raw_store.read(raw_asset, location, day))
            else:
                missing.append(f"{day}|{location}")
        if not bodies:
            raise dg.Failure(
                f"no {raw_asset} partitions stored for {location} in "
                f"{context.partition_key_range}; materialize {raw_asset} for those days first"
            )
        frame = parse_many(bodies, location, kind=kind)  # type: ignore[arg-type]
        dropped = frame.attrs.get("duplicates_dropped", 0)
        if dropped:
            context.log.warning(f"{raw_asset} {location}: {dropped} duplicate hour(s) dropped")
        frames.append(frame)
    if missing:
        context.log.warning(
            f"{len(missing)} day(s) of {raw_asset} not stored yet (e.g. {missing[:3]}); "
            "their hours count as missing"
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    context.log.info(
        f"parsed {sum(map(len, days_by_location.values())) - len(missing)} {raw_asset} "
        f"bodies into {len(frame)} rows"
    )
    return frame


def _emit(
    asset: str, frame: pd.DataFrame, schema: type, watch: list[str]
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    yield dg.Output(frame, metadata=frame_metadata(frame, watch))
    yield schema_check_result(asset, schema, frame)
    yield completeness_result(asset, frame, watch, COMPLETENESS_THRESHOLD)


class ObservationsConfig(dg.Config):
    interpolation_limit_hours: int = 3
    """Gaps of at most this many consecutive hours are interpolated; longer ones stay missing.
    At most 10 with the default spike rule: cleaning of an hour may look at most 24 hours
    away (a month is computed with the neighbouring months as context)."""


def frame_assets(partitions: DataPartitions) -> list[dg.AssetsDefinition]:
    """The frame assets over this deployment's (month x location) partitions."""

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        deps=[dg.AssetDep("raw_air_quality", partition_mapping=days_of_month)],
        check_specs=_checks("air_quality_hourly", blocking=False),
        group_name="frames",
        kinds={"pandas", "parquet"},
        automation_condition=dg.AutomationCondition.eager(),
        metadata={"dagster/column_schema": _column_schema(schemas.AirQualityHourlySchema)},
        description="OpenWeatherMap records as a typed frame: one row per (location, UTC hour).",
    )
    def air_quality_hourly(
        context: dg.AssetExecutionContext, deployment: DeploymentResource, raw_store: RawStore
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        frame = _parse_partitions(context, raw_store, "raw_air_quality", "air")
        yield from _emit(
            "air_quality_hourly", frame, schemas.AirQualityHourlySchema, deployment.targets
        )

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        deps=[dg.AssetDep("raw_weather", partition_mapping=days_of_month)],
        check_specs=_checks("weather_hourly", blocking=False),
        group_name="frames",
        kinds={"pandas", "parquet"},
        automation_condition=dg.AutomationCondition.eager(),
        metadata={"dagster/column_schema": _column_schema(schemas.WeatherHourlySchema)},
        description="Visual Crossing hourly records as a typed frame, keyed by epoch (DST-safe).",
    )
    def weather_hourly(
        context: dg.AssetExecutionContext, raw_store: RawStore
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        frame = _parse_partitions(context, raw_store, "raw_weather", "weather")
        yield from _emit(
            "weather_hourly", frame, schemas.WeatherHourlySchema, ["temp", "humidity", "pressure"]
        )

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        ins={
            "air": dg.AssetIn("air_quality_hourly", partition_mapping=neighbouring_months),
            "weather": dg.AssetIn("weather_hourly", partition_mapping=neighbouring_months),
        },
        check_specs=_checks("hourly_observations", blocking=True),
        group_name="frames",
        kinds={"pandas", "parquet"},
        metadata={"dagster/column_schema": _column_schema(schemas.HourlyObservationsSchema)},
        automation_condition=dg.AutomationCondition.eager(),
        description=(
            "Air quality and weather joined per location on a full hourly grid; short gaps "
            "interpolated, long gaps left missing and counted, outliers removed by a documented "
            "rule. Incremental: month M is computed from months M-1..M+1 only, so an hourly "
            "update reads three months, never the whole history."
        ),
    )
    def hourly_observations(
        context: dg.AssetExecutionContext,
        config: ObservationsConfig,
        deployment: DeploymentResource,
        air: pd.DataFrame,
        weather: pd.DataFrame,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        reach = influence_hours(config.interpolation_limit_hours)
        if config.interpolation_limit_hours < 0 or reach > 24:
            raise dg.Failure(
                f"interpolation_limit_hours={config.interpolation_limit_hours} lets cleaning reach "
                f"{reach} h; at most 24 h is supported"
            )
        merged = merge_hourly(air, weather)
        cleaned, stats = clean_observations(
            merged, interpolation_limit_hours=config.interpolation_limit_hours
        )
        # keep this run's own months; the neighbouring months were context only
        own = {"|".join(split_key(k)) for k in context.partition_keys}
        row_keys = cleaned[TIME].dt.strftime("%Y-%m-01") + "|" + cleaned["location"].astype(str)
        frame = cleaned.loc[row_keys.isin(own).to_numpy()].reset_index(drop=True)
        context.log.info(
            f"hourly_observations: {len(frame)} rows; cleaning over the loaded span (with the "
            f"neighbouring months): {stats.interpolated_total} values interpolated, "
            f"{stats.outliers_total} outliers removed, {stats.unfilled_gaps_total} gaps left "
            f"missing (longest {stats.longest_gap} h)"
        )
        targets = deployment.targets
        watch = [p for p in POLLUTANTS if p in targets] + ["temp", "humidity"]
        output_meta = frame_metadata(frame, watch)
        output_meta["cleaning"] = dg.MetadataValue.json(stats.as_metadata())
        yield dg.Output(frame, metadata=output_meta)
        yield schema_check_result("hourly_observations", schemas.HourlyObservationsSchema, frame)
        yield completeness_result("hourly_observations", frame, targets, COMPLETENESS_THRESHOLD)

    return [air_quality_hourly, weather_hourly, hourly_observations]
