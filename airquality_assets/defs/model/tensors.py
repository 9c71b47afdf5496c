"""``sequence_tensors``: the hourly feature matrix and valid window ends per split."""

import dataclasses
from collections.abc import Iterator
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from airquality_assets.catalog import MODEL_GROUP
from airquality_assets.columns import ISSUE_TIME, TIME
from airquality_assets.defs.model.lineage import RAW_ASSETS, record_metadata
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.defs.versions import latest_partition_versions
from airquality_assets.ml.lineage import data_record
from airquality_assets.settings import Settings
from airquality_assets.sources.forecast_errors import ForecastErrorModel
from airquality_assets.transforms.features import EmptyFeatureError, MissingFeatureError
from airquality_assets.transforms.forecast_calibration import calibrate_error_model
from airquality_assets.transforms.forecast_inputs import with_stand_ins
from airquality_assets.transforms.windowing import (
    SPLITS,
    EmptySplitError,
    InsufficientDataError,
    SequenceTensors,
    SplitSpec,
    build_sequence_tensors,
    capped_test_days,
    relative_split,
    tensor_summary,
    windows,
)


class SequenceConfig(dg.Config):
    lookback_hours: int = 24
    """Hours of history each window sees."""
    max_horizon_hours: int = 24
    """Forecast every hour from 1 to this (1 is the minimum)."""
    test_days: int | None = None
    """Test = the last days of data up to the clock (the promotion gate scores both models
    on it; neither trained on it). None: the deployment's ``test_days`` (90), capped at a
    fifth of the data's span."""
    validation_days: int = 60
    """Validation = the days before the test period; training = everything earlier."""
    train_days: int | None = None
    """Limit training to this many days before validation (None: all earlier data)."""
    train_end: str | None = None
    """Fixed split instead: last day (UTC, inclusive) of training (with ``validation_end``).
    Unset under the deployment's ``split=fixed``: 2012-12-31 (and 2013-12-31)."""
    validation_end: str | None = None
    """Fixed split: last day of validation; the test period is everything after."""
    features: list[str] | None = None
    """Feature columns in order; None = targets, default weather, calendar encodings."""
    weather_forecasts: bool = True
    """Give every window the weather forecast issued at or before its end for its target
    hours (the model's second input). False: observations only, as before forecasts."""


def _check_finite(tensors: SequenceTensors) -> dg.AssetCheckResult:
    """Every split non-empty and every window cut from it finite (no NaN/inf)."""
    problems: dict[str, str] = {}
    counts: dict[str, int] = {}
    for split in SPLITS:
        ends = tensors.ends.get(split, np.empty(0))
        counts[split] = len(ends)
        if len(ends) == 0:
            problems[split] = "empty"
            continue
        x, y = windows(tensors, split)
        future_ok = tensors.future is None or np.isfinite(tensors.future[ends]).all()
        if not (np.isfinite(x).all() and np.isfinite(y).all() and future_ok):
            problems[split] = "NaN or inf in windows"
    return dg.AssetCheckResult(
        check_name="finite_non_empty_splits",
        passed=not problems,
        metadata={"windows": dg.MetadataValue.json(counts), "problems": str(problems or "none")},
    )


def _error_model(
    context: dg.AssetExecutionContext,
    settings: Settings,
    issued: pd.DataFrame,
    observations: pd.DataFrame,
) -> tuple[ForecastErrorModel, dict[str, Any]]:
    """The error model for stand-in issues: the configured one, or in live once stored
    forecasts can be checked against what was observed, the one calibrated from them
    (against ``hourly_observations``: its few interpolated hours of at most 3 h count as
    observed)."""
    configured = ForecastErrorModel(scale=settings.forecast_error_scale)
    if settings.source != "live" or issued.empty:
        return configured, {"error_scale": configured.scale, "calibrated": False}
    calibration = calibrate_error_model(issued, observations, base=configured, min_pairs=500)
    if calibration is None:
        context.log.info("too few stored forecast hours observed yet to calibrate the error model")
        return configured, {"error_scale": configured.scale, "calibrated": False}
    model = calibration.model()
    context.log.info(
        f"error model calibrated from {sum(calibration.pairs.values())} forecast hours: "
        f"scale {calibration.scale:.3g} (configured {configured.scale:g})"
    )
    origin = {"error_scale": model.scale, "calibrated": True, "pairs": calibration.pairs}
    return model, origin


def _issued_by(
    context: dg.AssetExecutionContext,
    config: SequenceConfig,
    settings: Settings,
    weather_forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    now: pd.Timestamp,
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The forecasts the windows may read: issued by the clock, completed with stand-ins
    (observed weather + the error model) for the issue hours that have none, and where they
    came from (recorded with the model)."""
    if not config.weather_forecasts:
        return None, {}
    issued = weather_forecasts[weather_forecasts[ISSUE_TIME] <= now]
    model, origin = _error_model(context, settings, issued, observations)
    forecasts, sources = with_stand_ins(issued, observations, settings.forecast_issue_hours, model)
    context.log.info(
        f"weather forecasts: {sources.issued} issued, {sources.stand_in} stand-in issue(s) "
        f"(observed weather + the error model at scale {model.scale:.3g}) for hours without one"
    )
    return forecasts, {
        "kind": sources.kind,
        "issued": sources.issued,
        "stand_in": sources.stand_in,
        **origin,
    }


def _split(
    config: SequenceConfig, deployment_split: str, test_days: int, observations: pd.DataFrame
) -> SplitSpec:
    """The run's dates, else the deployment's fixed split, else the recent one: the last
    ``test_days`` (a fifth of the span at most) for test, ``validation_days`` before them."""
    if config.train_end and config.validation_end:
        return SplitSpec(train_end=config.train_end, validation_end=config.validation_end)
    if deployment_split == "fixed":
        return SplitSpec()
    first, newest = observations[TIME].min(), observations[TIME].max()
    days = capped_test_days(first, newest, config.test_days or test_days)
    return relative_split(newest, days, config.validation_days)


@dg.asset(
    io_manager_key="tensors_io_manager",
    group_name=MODEL_GROUP,
    kinds={"numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            "finite_non_empty_splits",
            asset="sequence_tensors",
            blocking=True,
            description="No NaN/inf in any window; train, validation and test all non-empty",
        )
    ],
    description=(
        "Look-back windows as an hourly matrix plus valid window end indices per "
        "chronological split; scalers fitted on the training period only. Windows never "
        "cross a gap or a location boundary and are cut as views when needed."
    ),
)
def sequence_tensors(
    context: dg.AssetExecutionContext,
    config: SequenceConfig,
    deployment: DeploymentResource,
    hourly_observations: pd.DataFrame,
    weather_forecasts: pd.DataFrame,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    # Only what has been observed by the clock: a replay deployment's frames may hold later
    # hours (the demo pulls the whole data set), and the live APIs never return the future.
    now = pd.Timestamp(deployment.settings.clock.now())
    observations = hourly_observations[hourly_observations[TIME] <= now]
    if observations.empty:
        raise dg.Failure(f"no hourly observations at or before the clock ({now})")
    split = _split(config, deployment.settings.split, deployment.settings.test_days, observations)
    if config.train_days:
        first = pd.Timestamp(split.train_end, tz="UTC") - pd.Timedelta(days=config.train_days)
        observations = observations[observations[TIME] > first]
    forecasts, origin = _issued_by(
        context, config, deployment.settings, weather_forecasts, observations, now
    )
    context.log.info(
        f"clock {now}; split: training to {split.train_end}, validation to "
        f"{split.validation_end}, test after"
    )
    try:
        tensors = build_sequence_tensors(
            observations,
            feature_names=config.features,
            targets=deployment.settings.targets,
            lookback=config.lookback_hours,
            horizons=range(1, config.max_horizon_hours + 1),
            split=split,
            forecasts=forecasts,
        )
        tensors = dataclasses.replace(tensors, forecast_origin=origin)
    except (InsufficientDataError, EmptySplitError, MissingFeatureError, EmptyFeatureError) as exc:
        raise dg.Failure(description=f"cannot build sequence tensors: {exc}") from exc
    summary = tensor_summary(tensors)
    if tensors.dropped_features:
        context.log.warning(
            "sequence_tensors: default weather feature(s) "
            f"{', '.join(tensors.dropped_features)} left out: no value in the training period"
        )
    context.log.info(f"sequence_tensors: {summary}")
    record = data_record(
        tensors,
        latest_partition_versions(context.instance, RAW_ASSETS),
        config.model_dump(),
        f"{deployment.settings.storage_root}/tensors/sequence_tensors",
    )
    yield dg.Output(
        tensors,
        data_version=dg.DataVersion(record.digest),  # same data, same tensors, same version
        metadata={
            **record_metadata(record),
            "summary": dg.MetadataValue.json(summary),
            "feature_names": ", ".join(tensors.feature_names),
            "dropped_features": ", ".join(tensors.dropped_features) or "none",
            "targets": ", ".join(tensors.target_names),
            "split_mode": tensors.split_mode,
            "weather_forecasts": origin.get("kind", "not used"),
            "forecast_origin": dg.MetadataValue.json(origin),
            **{f"{s}_windows": len(tensors.ends[s]) for s in SPLITS},
        },
    )
    yield _check_finite(tensors)
