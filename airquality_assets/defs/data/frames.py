"""Parsed, typed hourly frames and the merged, cleaned ``hourly_observations``.

Each asset validates its frame with its Pandera schema inside the step and reports the
result as an asset check, with every failure case in its metadata; the frame is still
stored for inspection. The checks on ``hourly_observations`` and ``weather_forecasts`` are
blocking (nothing trains on a bad frame); on the parsed frames they inform, because the merge
and cleaning downstream repair what they flag. Nothing is dropped silently.
"""

from collections.abc import Iterator, Sequence
from datetime import date, datetime

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from airquality_assets import markdown, schemas
from airquality_assets.catalog import FRAMES_GROUP
from airquality_assets.columns import ISSUE_TIME, LEAD, LOCATION, POLLUTANTS, TIME, WEATHER
from airquality_assets.defs.data.checks import completeness_result, schema_check_result
from airquality_assets.defs.data.ingestion import RAW_WEATHER_FORECAST
from airquality_assets.defs.io_managers import PARTITION_COLUMN
from airquality_assets.defs.metadata import (
    add_partition_metadata,
    month_key,
    partition_metadata,
)
from airquality_assets.defs.partitions import (
    DataPartitions,
    neighbouring_months,
    single_run,
    split_key,
)
from airquality_assets.defs.resources import DeploymentResource, RawStore
from airquality_assets.defs.versions import eager_on_data
from airquality_assets.sources.spans import HOUR, floor_hour, month_bounds
from airquality_assets.transforms.cleaning import clean_observations, influence_hours
from airquality_assets.transforms.completeness import measure_completeness, windows_hours
from airquality_assets.transforms.features import DEFAULT_WEATHER_FEATURES, input_columns
from airquality_assets.transforms.merging import AIR_VALUE_COLUMNS, VALUE_COLUMNS, merge_hourly
from airquality_assets.transforms.parsing import parse_many, parse_weather_forecasts

WEATHER_FORECASTS = "weather_forecasts"

COMPLETENESS_THRESHOLD = 0.20  # share of missing hours above which the check warns
#: The weather columns the completeness checks judge: what the default feature set reads.
#: A station that never reports one of them (while it reports the others) has it named once,
#: not judged; missing weather data still fail. Wind direction is left to ``windspeed``: it
#: has no value in calm and variable hours (22 % of the bundled station's), which is weather,
#: not a gap in the data.
WEATHER_WATCH: tuple[str, ...] = tuple(
    c for c in input_columns(DEFAULT_WEATHER_FEATURES) if c != "winddir"
)


def _column_schema(schema: type) -> dg.TableSchema:
    """The frame's columns as Dagster shows them, derived from the Pandera model (with its
    descriptions and units). Regex-declared optional columns (the cleaning audit columns)
    are patterns, not columns: they are left out here and named in the asset description."""
    dagster_type = pandera_schema_to_dagster_type(schema)
    table = dagster_type.metadata["schema"].schema  # type: ignore[index,union-attr]
    return dg.TableSchema(
        columns=[c for c in table.columns if not c.name.startswith("^")],
        constraints=table.constraints,
    )


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
            description=(
                f"At most {COMPLETENESS_THRESHOLD:.0%} of the expected hours missing in each "
                "column the model reads (targets, and the weather inputs of the default "
                "feature set), over the run and in every (month, location); a weather column "
                "a station never reports is named once, not judged"
            ),
        ),
    ]


def _parse_partitions(
    context: dg.AssetExecutionContext,
    raw_store: RawStore,
    raw_asset: str,
    kind: str,
    now: datetime,
) -> pd.DataFrame:
    """Parse the stored bodies of the run's (month, location) partitions, per location in
    span order (a later pull wins a duplicate hour), into one typed frame.

    Hours after the source's clock are left out: Visual Crossing answers the rest of the day
    in progress with forecasts, which are kept in the raw body but are not observations."""
    months_by_location: dict[str, list[date]] = {}
    for partition_key in context.partition_keys:
        month, location = split_key(partition_key)
        months_by_location.setdefault(location, []).append(date.fromisoformat(month))
    frames, missing, parsed = [], [], 0
    for location, months in months_by_location.items():
        bodies = []
        for month in sorted(months):
            stored = raw_store.month_bodies(raw_asset, location, month)
            if not stored:
                missing.append(f"{month:%Y-%m}|{location}")
            bodies.extend(stored)
        if not bodies:
            raise dg.Failure(
                f"no {raw_asset} partitions stored for {location} in "
                f"{context.partition_key_range}; materialize {raw_asset} for those months first"
            )
        parsed += len(bodies)
        frame = parse_many(bodies, location, kind=kind)  # type: ignore[arg-type]
        dropped = frame.attrs.get("duplicates_dropped", 0)
        if dropped:  # overlapping pulls of the month in progress: expected, the newest wins
            context.log.info(f"{raw_asset} {location}: {dropped} duplicate hour(s) dropped")
        frames.append(frame)
    if missing:
        context.log.warning(
            f"{len(missing)} partition(s) of {raw_asset} not stored yet (e.g. {missing[:3]}); "
            "their hours count as missing"
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    future = (frame[TIME] > pd.Timestamp(floor_hour(now))).to_numpy()
    if future.any():
        frame = frame.loc[~future].reset_index(drop=True)
        context.log.info(
            f"{raw_asset}: {int(future.sum())} hour(s) after the source's clock left out "
            "(forecasts, kept in the raw bodies)"
        )
    context.log.info(f"parsed {parsed} {raw_asset} bodies into {len(frame)} rows")
    return frame


def expected_hours_by_location(
    partition_keys: Sequence[str], now: datetime
) -> dict[str, pd.DatetimeIndex]:
    """The hours the (month, location) partitions should hold: every hour of each month up
    to the source's clock (its current hour included), per location."""
    limit = floor_hour(now) + HOUR
    windows: dict[str, list[tuple[datetime, datetime]]] = {}
    for key in partition_keys:
        month, location = split_key(key)
        first, following = month_bounds(date.fromisoformat(month))
        windows.setdefault(location, []).append((first, min(following, limit)))
    return {location: windows_hours(spans) for location, spans in windows.items()}


def _emit(
    context: dg.AssetExecutionContext,
    asset: str,
    frame: pd.DataFrame,
    schema: type,
    columns: Sequence[str],
    watch: Sequence[str],
    now: datetime,
    excusable: Sequence[str] = (),
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    keys = context.partition_keys
    completeness = measure_completeness(frame, expected_hours_by_location(keys, now), columns)
    add_partition_metadata(context, partition_metadata(frame, keys, completeness, watch))
    yield dg.Output(frame)
    yield schema_check_result(asset, schema, frame)
    yield completeness_result(asset, completeness, watch, COMPLETENESS_THRESHOLD, excusable)


def _parse_forecasts(
    context: dg.AssetExecutionContext, raw_store: RawStore
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Every stored issue of the run's partitions as one long frame, and the issue count per
    partition key. A partition without issues (a live deployment's months before it pulled
    forecasts, a month after the clock) gives no rows; it is logged, not a failure."""
    frames, issues, empty = [], {}, []
    by_location: dict[str, list[tuple[str, date]]] = {}
    for key in context.partition_keys:
        month, location = split_key(key)
        by_location.setdefault(location, []).append((str(key), date.fromisoformat(month)))
    for location, months in by_location.items():
        bodies = []
        for key, month in sorted(months, key=lambda item: item[1]):
            stored = raw_store.issue_bodies(RAW_WEATHER_FORECAST, location, month)
            issues[key] = len(stored)
            if not stored:
                empty.append(key)
            bodies.extend(stored)
        frames.append(parse_weather_forecasts(bodies, location))
    if empty:
        context.log.warning(
            f"{len(empty)} partition(s) have no stored {RAW_WEATHER_FORECAST} issue "
            f"(e.g. {empty[:3]}): no rows for them"
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    context.log.info(f"parsed {sum(issues.values())} forecast issues into {len(frame)} rows")
    return frame, issues


def _forecast_partition_metadata(
    frame: pd.DataFrame, issues: dict[str, int]
) -> dict[str, dict[str, object]]:
    """Per partition: issues, rows, first/last issue, the longest lead, a preview."""
    label = frame[ISSUE_TIME].dt.strftime("%Y-%m-01") + "|" + frame[LOCATION].astype(str)
    groups = {str(k): g for k, g in frame.groupby(label.to_numpy(), sort=False)}
    out: dict[str, dict[str, object]] = {}
    for key, count in issues.items():
        rows = groups.get(key, frame.iloc[0:0])
        meta: dict[str, object] = {"dagster/row_count": len(rows), "issues": count}
        if len(rows):
            meta["first_issue"] = str(rows[ISSUE_TIME].min())
            meta["last_issue"] = str(rows[ISSUE_TIME].max())
            meta["max_lead"] = int(rows[LEAD].max())
            meta["missing_temp"] = int(rows["temp"].isna().sum())
        preview = rows.head(8)
        shown = preview.columns[preview.notna().any().to_numpy()][:12]
        meta["preview"] = dg.MetadataValue.md(
            markdown.table(list(shown), preview[shown].itertuples(index=False))
        )
        out[key] = meta
    return out


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
        deps=["raw_air_quality"],  # the same (month, location) partition
        check_specs=_checks("air_quality_hourly", blocking=False),
        group_name=FRAMES_GROUP,
        kinds={"pandas", "parquet"},
        automation_condition=eager_on_data(),
        metadata={"dagster/column_schema": _column_schema(schemas.AirQualityHourlySchema)},
        description="OpenWeatherMap records as a typed frame: one row per (location, UTC hour).",
    )
    def air_quality_hourly(
        context: dg.AssetExecutionContext, deployment: DeploymentResource, raw_store: RawStore
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        now = deployment.clock().now()
        frame = _parse_partitions(context, raw_store, "raw_air_quality", "air", now)
        yield from _emit(
            context,
            "air_quality_hourly",
            frame,
            schemas.AirQualityHourlySchema,
            AIR_VALUE_COLUMNS,
            deployment.settings.targets,
            now,
        )

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        deps=["raw_weather"],
        check_specs=_checks("weather_hourly", blocking=False),
        group_name=FRAMES_GROUP,
        kinds={"pandas", "parquet"},
        automation_condition=eager_on_data(),
        metadata={"dagster/column_schema": _column_schema(schemas.WeatherHourlySchema)},
        description="Visual Crossing hourly records as a typed frame, keyed by epoch (DST-safe).",
    )
    def weather_hourly(
        context: dg.AssetExecutionContext, deployment: DeploymentResource, raw_store: RawStore
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        now = deployment.clock().now()
        frame = _parse_partitions(context, raw_store, "raw_weather", "weather", now)
        yield from _emit(
            context,
            "weather_hourly",
            frame,
            schemas.WeatherHourlySchema,
            WEATHER,
            WEATHER_WATCH,
            now,
            excusable=WEATHER_WATCH,
        )

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        ins={
            "air": dg.AssetIn("air_quality_hourly", partition_mapping=neighbouring_months),
            "weather": dg.AssetIn("weather_hourly", partition_mapping=neighbouring_months),
        },
        check_specs=_checks("hourly_observations", blocking=True),
        group_name=FRAMES_GROUP,
        kinds={"pandas", "parquet"},
        metadata={"dagster/column_schema": _column_schema(schemas.HourlyObservationsSchema)},
        automation_condition=eager_on_data(),
        description=(
            "Air quality and weather joined per location on a full hourly grid; short gaps "
            "interpolated, long gaps left missing and counted, outliers removed by a documented "
            "rule. Incremental: month M is computed from months M-1..M+1 only, so an hourly "
            "update reads three months, never the whole history. Beside the columns listed, "
            "a cleaned column may have audit columns `<column>_interpolated` (bool: the value "
            "was interpolated) and `<column>_spike` (the value the spike rule removed)."
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
            merged, interpolation_limit_hours=config.interpolation_limit_hours, by_month=True
        )
        # keep this run's own months; the neighbouring months were context only
        keys = context.partition_keys
        own = {"|".join(split_key(k)) for k in keys}
        row_keys = cleaned[TIME].dt.strftime("%Y-%m-01") + "|" + cleaned["location"].astype(str)
        frame = cleaned.loc[row_keys.isin(own).to_numpy()].reset_index(drop=True)
        context.log.info(
            f"hourly_observations: {len(frame)} rows; cleaning over the loaded span (with the "
            f"neighbouring months): {stats.summary()}"
        )
        targets = deployment.settings.targets
        watch = [p for p in POLLUTANTS if p in targets] + list(WEATHER_WATCH)
        expected = expected_hours_by_location(keys, deployment.clock().now())
        completeness = measure_completeness(frame, expected, VALUE_COLUMNS)
        by_partition = partition_metadata(frame, keys, completeness, watch)
        for key, meta in by_partition.items():
            month_stats = stats.by_month.get(month_key(key))
            if month_stats is not None:  # this partition's own cleaning, gaps cut at its edges
                meta["interpolated"] = month_stats.interpolated_total
                meta["outliers_removed"] = month_stats.outliers_total
                meta["unfilled_gaps"] = month_stats.unfilled_gaps_total
                meta["cleaning"] = dg.MetadataValue.json(month_stats.as_metadata())
        add_partition_metadata(context, by_partition)
        yield dg.Output(frame)
        yield schema_check_result("hourly_observations", schemas.HourlyObservationsSchema, frame)
        # what the model reads: the targets and the weather inputs (not only the targets)
        yield completeness_result(
            "hourly_observations", completeness, watch, COMPLETENESS_THRESHOLD, WEATHER_WATCH
        )

    @dg.asset(
        name=WEATHER_FORECASTS,
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        deps=[RAW_WEATHER_FORECAST],  # the same (month, location) partition: its issues
        check_specs=[
            dg.AssetCheckSpec(
                "schema",
                asset=WEATHER_FORECASTS,
                description="Pandera schema: dtypes, ranges, unique (location, issue_time, "
                "time), lead = (time - issue_time) / 1 h, leads 1..48",
                blocking=True,  # models train on these, as on hourly_observations
            )
        ],
        group_name=FRAMES_GROUP,
        kinds={"pandas", "parquet"},
        automation_condition=eager_on_data(),
        metadata={
            "dagster/column_schema": _column_schema(schemas.WeatherForecastsSchema),
            PARTITION_COLUMN: ISSUE_TIME,
        },
        description=(
            "Weather forecasts as issued, one row per (location, issue, target hour) for "
            "leads 1..48 h, with weather_hourly's columns and units; a partition holds the "
            "issues of its month (targets may reach into the next). In replay they are "
            "stand-ins: the bundled observations plus a seeded error model."
        ),
    )
    def weather_forecasts(
        context: dg.AssetExecutionContext, raw_store: RawStore
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        frame, issues = _parse_forecasts(context, raw_store)
        add_partition_metadata(context, _forecast_partition_metadata(frame, issues))
        yield dg.Output(frame)
        yield schema_check_result(WEATHER_FORECASTS, schemas.WeatherForecastsSchema, frame)

    return [air_quality_hourly, weather_hourly, hourly_observations, weather_forecasts]
