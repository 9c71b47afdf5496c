"""The operating loop's assets: issued forecasts, their scores, and drift.

* ``forecasts`` (day x location): the champion's next-24-h forecast issued for every whole
  hour of the day up to the clock, from the observations up to that hour (and, for a
  champion that reads them, the newest stored weather forecast issued at or before that
  hour). Appended to the forecast store, never rewritten: re-running a day keeps what an
  earlier model said.
  Daily partitions: one Dagster partition (two events) per location and day instead of 24
  hourly ones; the hourly schedule re-runs the current day, which issues only the new hours.
* ``forecast_accuracy``: the stored forecasts scored against what was then observed, per
  horizon, against persistence, over the last 24 h / 7 d / 30 d, with a chart.
* ``drift_report``: the last 7 days of observations against the champion's seasonal
  training reference, per location and feature; its check WARNs / ERRORs.

"Now" is the deployment's clock (the replay instant, or the wall clock when live), and only
observations at or before it are used: a replay deployment's frames may hold later hours.
"""

import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from airquality_assets import markdown
from airquality_assets.catalog import OPERATIONS_GROUP
from airquality_assets.columns import FORECAST_HOURS, LOCATION, TIME
from airquality_assets.defs.data.ingestion import RAW_AIR_POLLUTION_FORECAST
from airquality_assets.defs.loop.charts import chart_metadata, monitoring_folder, trend_points
from airquality_assets.defs.model.mlflow import MlflowResource
from airquality_assets.defs.partitions import DATE_DIMENSION, LOCATION_DIMENSION, split_key
from airquality_assets.defs.resources import DeploymentResource, OperationsResource, RawStore
from airquality_assets.ml.intervals import intervals_of
from airquality_assets.monitoring.accuracy import accuracy_verdict, interval_coverage
from airquality_assets.monitoring.alerts import INCONCLUSIVE
from airquality_assets.monitoring.forecast_preview import forecast_preview
from airquality_assets.monitoring.forecasting import (
    NO_WEATHER_FORECAST,
    SKIP_REASONS,
    ForecastStore,
    IssuingVerdict,
    inputs_missing_since,
    issue,
    issue_hours,
    issuing_verdict,
)
from airquality_assets.monitoring.metrics import PipelineMetrics
from airquality_assets.monitoring.provider_forecasts import provider_forecast_rows
from airquality_assets.monitoring.scoring import (
    WINDOWS,
    degradation,
    score,
    score_table_markdown,
)
from airquality_assets.settings import Settings
from airquality_assets.storage import months_touched, read_weather_forecasts, storage_location

DRIFT_WINDOW_HOURS = 24 * 7
SCORED_HORIZONS = (1, 6, 12, 24)
#: forecast_accuracy's headline figures its trend chart draws over the deployment clock.
TREND_COLUMNS = ("rmse_7d_mean", "persistence_rmse_7d_mean")

# Day D's forecasts need the observations of D and of the day before (the look-back), i.e.
# the months holding D-1 and D.
previous_day_months = dg.MultiPartitionMapping(
    {
        DATE_DIMENSION: dg.DimensionPartitionMapping(
            DATE_DIMENSION,
            dg.TimeWindowPartitionMapping(
                start_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        LOCATION_DIMENSION: dg.DimensionPartitionMapping(
            LOCATION_DIMENSION, dg.IdentityPartitionMapping()
        ),
    }
)


def _champion(mlflow: MlflowResource, name: str):
    """The registry's champion now (:func:`airquality_assets.ml.registry.read_champion`)."""
    from airquality_assets.ml.registry import read_champion

    return read_champion(mlflow.client(), name)


def _clock_now(deployment: DeploymentResource) -> datetime:
    return deployment.settings.clock.now()


def _upto(observations: pd.DataFrame, now: datetime) -> pd.DataFrame:
    return observations[observations[TIME] <= pd.Timestamp(now)]


def _weather_forecasts_for(
    settings: Settings, location: str, hours: pd.DatetimeIndex, max_horizon: int
) -> pd.DataFrame | None:
    """The stored ``weather_forecasts`` issues an hour of ``hours`` may read: from the
    oldest that still reaches its last horizon (leads are kept to FORECAST_HOURS) up to the
    last hour, never later. Read only for a champion that uses them, so a deployment whose
    champion reads observations only never needs the frame. ``None``: none stored."""
    start = hours.min() - pd.Timedelta(hours=max(0, FORECAST_HOURS - max_horizon))
    end = hours.max() + pd.Timedelta(hours=1)  # exclusive
    root = storage_location(settings.storage_root)
    return read_weather_forecasts(root, [location], start.to_pydatetime(), end.to_pydatetime())


def daily_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    """(UTC day x location) from the loop's first issue day: one issue day per partition."""
    end = settings.end_date.isoformat() if settings.end_date else None
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(
                start_date=settings.forecasts_start.isoformat(),
                end_date=end,
                end_offset=0 if end else 1,
            ),
            LOCATION_DIMENSION: dg.StaticPartitionsDefinition(settings.location_names),
        }
    )


def forecasts_asset(settings: Settings) -> dg.AssetsDefinition:
    """``forecasts`` over the deployment's (day x location) partitions."""
    partitions = daily_partitions(settings)

    @dg.asset(
        partitions_def=partitions,
        ins={
            "observations": dg.AssetIn("hourly_observations", partition_mapping=previous_day_months)
        },
        # Read from the store only when the champion reads weather forecasts (see
        # _weather_forecasts_for); declared so the lineage shows it.
        deps=[dg.AssetDep("weather_forecasts", partition_mapping=previous_day_months)],
        group_name=OPERATIONS_GROUP,
        kinds={"keras", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                "forecasts_issued",
                asset="forecasts",
                partitions_def=partitions,  # one verdict per (day, location), as the asset
                description=(
                    "ERROR when fewer than 90 % of the day's due forecasts were issued "
                    "(forecasting stopped), WARN when some are missing or were issued with a "
                    "missing input filled from its last reading (degraded); names the missing "
                    "input and since when"
                ),
            )
        ],
        description=(
            "The champion's next-24-h forecast issued for every whole hour of the day up to "
            "the clock, from the observations up to that hour (a missing weather input "
            "filled from its last reading, for up to 48 h, and named) and, for a champion "
            "that reads them, the newest weather forecast issued at or before that hour "
            "(never filled); stored with issue time, computing time, target time, horizon, "
            "model name and version. Appended, never rewritten."
        ),
    )
    def forecasts(
        context: dg.AssetExecutionContext,
        deployment: DeploymentResource,
        mlflow: MlflowResource,
        observations: pd.DataFrame,
    ) -> dg.MaterializeResult:
        settings = deployment.settings
        day_text, location = split_key(context.partition_key)
        day = date.fromisoformat(day_text)
        now = _clock_now(deployment)
        store = ForecastStore(settings.storage_root)
        stored = store.read_day(location, day)
        done = set(pd.to_datetime(stored["issued_at"], utc=True))
        due = issue_hours(day, now)
        todo = due[~due.isin(done)]
        metadata: dict[str, Any] = {
            "clock": now.isoformat(),
            "issue_hours_due": len(due),
            "already_issued": len(due) - len(todo),
        }
        if len(due) == 0:
            verdict = issuing_verdict(due, stored, {})
            return dg.MaterializeResult(
                metadata={**metadata, "issued": 0}, check_results=[_issued_check(verdict)]
            )
        from airquality_assets.ml.registry import champion_forward

        try:
            champion = _champion(mlflow, settings.model_name)
            meta = champion.package_metadata()
        except Exception as exc:
            raise dg.Failure(f"no champion to forecast with: {exc}") from exc
        obs = _upto(observations[observations[LOCATION] == location], now)
        future_names = list(meta.future_feature_names)
        weather = (
            _weather_forecasts_for(settings, location, due, max(meta.horizons))
            if future_names
            else None
        )
        started = time.perf_counter()
        frame, report = issue(
            obs,
            location,
            todo,
            champion_forward(champion),
            meta.feature_names,
            meta.target_pollutants,
            meta.lookback,
            meta.horizons,
            champion.name,
            champion.version,
            future_feature_names=future_names,
            weather_forecasts=weather,
            computed_at=now,
            intervals=intervals_of(meta.extra),
        )
        added, kept = store.append(location, day, frame)
        issued_hours = frame["issued_at"].nunique() if len(frame) else 0
        skipped = report.skipped
        # The cause over the whole day (earlier runs issued some hours): no forward pass.
        missing_since = inputs_missing_since(
            obs,
            meta.feature_names,
            meta.target_pollutants,
            meta.lookback,
            due,
            meta.horizons,
            location,
            future_feature_names=future_names,
            weather_forecasts=weather,
        )
        verdict = issuing_verdict(due, store.read_day(location, day), missing_since)
        reasons = "; ".join(f"{len(h)} ({SKIP_REASONS[r]})" for r, h in skipped.items())
        context.log.info(
            f"{location} {day}: issued {issued_hours} hourly forecast(s) with "
            f"{champion.name} v{champion.version} in {time.perf_counter() - started:.2f} s; "
            f"hour(s) skipped: {reasons or 'none'}; inputs filled {report.filled or 'nowhere'}; "
            f"{verdict.description}"
        )
        if NO_WEATHER_FORECAST in skipped:
            hours_without = skipped[NO_WEATHER_FORECAST]
            context.log.warning(
                f"{location} {day}: no stored weather forecast issued at or before "
                f"{len(hours_without)} issue hour(s) (first {hours_without[0]}) reaches their "
                f"horizons; {champion.name} v{champion.version} reads one, so they are skipped"
            )
        if future_names:
            metadata["weather_forecast_issues_read"] = (
                0 if weather is None else int(weather["issue_time"].nunique())
            )
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "issued": issued_hours,
                "rows_added": added,
                "rows_kept_as_issued": kept,
                "skipped_hours": dg.MetadataValue.json(skipped),
                **{f"skipped_{reason}": len(skipped.get(reason, [])) for reason in SKIP_REASONS},
                "filled_inputs": dg.MetadataValue.json(report.filled),
                "issued_with_filled_inputs": report.filled_hours,
                "missing_since": dg.MetadataValue.json(missing_since),
                "computed_at": now.isoformat(),
                "model": f"{champion.name} v{champion.version}",
                "path": dg.MetadataValue.path(str(store.path(location, day))),
                "preview": dg.MetadataValue.md(forecast_preview(store.read_day(location, day))),
            },
            check_results=[_issued_check(verdict)],
        )

    return forecasts


def provider_scores(
    settings: Settings,
    raw_store: RawStore,
    observations: pd.DataFrame,
    now: datetime,
    horizons: Sequence[int],
) -> dict[str, Any]:
    """OWM's own forecast scored beside the champion (same windows, horizons and persistence
    pairs) as metadata; in replay, which has no stand-in for it, says so."""
    if settings.source == "replay":
        return {"openweathermap_forecast": "not available in replay"}
    start = now - timedelta(days=32)
    rows = []
    for loc in settings.location_names:
        issues = [
            (t, body)
            for month in months_touched(start, now)
            for t, body in raw_store.issue_bodies(RAW_AIR_POLLUTION_FORECAST, loc, month)
            if start <= t <= now
        ]
        rows.append(provider_forecast_rows(issues, loc, settings.targets, observations, horizons))
    frame = pd.concat([r for r in rows if len(r)] or rows[:1], ignore_index=True)
    scores = score(frame, observations, now)
    week = scores[(scores["window"] == "7d") & (scores["status"] == "ok")]
    return {
        "openweathermap_forecast": (
            f"{frame['issued_at'].nunique()} issue(s) scored" if len(frame) else "none stored"
        ),
        "openweathermap_rmse_7d_mean": float(week["rmse"].mean()) if len(week) else float("nan"),
        "openweathermap_scores": dg.MetadataValue.md(score_table_markdown(scores, SCORED_HORIZONS)),
    }


def coverage_metadata(coverage: pd.DataFrame) -> dict[str, Any]:
    """The 7-day interval coverage: overall and per horizon (in horizon order)."""
    if coverage.empty:
        return {"interval_coverage_7d": "no forecast with an interval scored yet"}
    shown = coverage[coverage["horizon"].isin(SCORED_HORIZONS)]
    rows = "\n".join(
        f"| {r.pollutant} | {r.horizon} | {r.n} | {r.coverage:.1%} |" for r in shown.itertuples()
    )
    return {
        "interval_coverage_7d": round(float(coverage["covered"].sum() / coverage["n"].sum()), 3),
        "interval_coverage_by_horizon": dg.MetadataValue.md(
            "| pollutant | horizon | pairs | coverage |\n|---|---:|---:|---:|\n" + rows
        ),
    }


def _issued_check(verdict: IssuingVerdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="forecasts_issued",
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity(verdict.severity),
        metadata={
            "status": verdict.status,
            "due": verdict.due,
            "issued": verdict.issued,
            "issued_with_filled_inputs": verdict.filled,
        },
        description=verdict.description,
    )


def _week_reference(
    mlflow: MlflowResource, champion: Any, forecasts: pd.DataFrame, now: datetime
) -> dict[int, float]:
    """The strictest test RMSE among the champion and the versions that issued the week's
    forecasts (:mod:`airquality_assets.monitoring.reference`): a promotion never resolves
    a degradation the old champion's forecasts still show."""
    from airquality_assets.ml.registry import read_version
    from airquality_assets.monitoring.reference import strictest_reference, window_issuers

    references = [champion.test_rmse_by_horizon()]
    for name, version in window_issuers(forecasts, now, WINDOWS["7d"]):
        if (name, version) != (champion.name, str(champion.version)):
            try:
                references.append(
                    read_version(mlflow.client(), name, version).test_rmse_by_horizon()
                )
            except Exception:  # a version deleted from the registry: its bar is gone
                continue
    return strictest_reference(references)


@dg.asset(
    deps=["forecasts"],
    group_name=OPERATIONS_GROUP,
    kinds={"pandas"},
    check_specs=[
        dg.AssetCheckSpec(
            "accuracy_within_limits",
            asset="forecast_accuracy",
            description=(
                "ERROR when the 7-day RMSE is above 1.5x the champion's test RMSE at a "
                "matched horizon (degraded: the retrain trigger); WARN when the champion is "
                "significantly worse than persistence over the week (Diebold-Mariano, "
                "p < 0.01) or when too few pairs can be scored although forecasting has run "
                "for more than a week"
            ),
        )
    ],
    description=(
        "The stored forecasts scored against what was observed: RMSE/MAE per horizon and "
        "against persistence over the last 24 h, 7 days and 30 days, and OpenWeatherMap's own "
        "forecast scored the same way where it is stored (live mode); the chart shows the "
        "last 7 days of observations with the forecasts issued 1, 6 and 24 h earlier."
    ),
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    operations: OperationsResource,
    mlflow: MlflowResource,
    raw_store: RawStore,
    hourly_observations: pd.DataFrame,
) -> dg.MaterializeResult:
    from airquality_assets.monitoring.chart import accuracy_chart, trend_chart

    settings = deployment.settings
    now = _clock_now(deployment)
    obs = _upto(hourly_observations, now)
    store = ForecastStore(settings.storage_root)
    forecasts = store.read(now - timedelta(days=32), now, settings.location_names)
    scores = score(forecasts, obs, now)
    champion = _champion(mlflow, settings.model_name)
    test_rmse = _week_reference(mlflow, champion, forecasts, now)
    factor = operations.accuracy_factor
    exceeded, ratios = degradation(scores, test_rmse, factor=factor)
    metrics = PipelineMetrics()
    for r in scores[scores["status"] == "ok"].itertuples(index=False):
        labels = dict(
            location=r.location, pollutant=r.pollutant, horizon=str(r.horizon), window=r.window
        )
        metrics.set("forecast_rmse", r.rmse, **labels, model="champion")
        metrics.set("forecast_rmse", r.persistence_rmse, **labels, model="persistence")
        metrics.set("forecast_scored_pairs", r.n, **labels)
    metrics.push(operations.pushgateway_url or None, job="forecast_accuracy")
    week = scores[(scores["window"] == "7d") & (scores["status"] == "ok")]
    rmse_7d = float(week["rmse"].mean()) if len(week) else float("nan")
    persistence_7d = float(week["persistence_rmse"].mean()) if len(week) else float("nan")
    pngs = {
        f"chart_{loc}_{p}": (
            f"{loc} {p}: observed vs forecast",
            accuracy_chart(obs, forecasts, loc, p, now),
        )
        for loc in settings.location_names
        for p in settings.targets
    }
    headline = {
        "clock": now.isoformat(),
        "rmse_7d_mean": round(rmse_7d, 2),
        "persistence_rmse_7d_mean": round(persistence_7d, 2),
    }
    trend = trend_points(context.instance, "forecast_accuracy", TREND_COLUMNS, headline)
    pngs["trend_rmse_7d"] = (
        "7-day RMSE over the deployment clock",
        trend_chart(trend, "7-day mean RMSE, champion vs persistence", "µg/m³"),
    )
    charts = chart_metadata(mlflow, champion.run_id, monitoring_folder(now), pngs)
    verdict = accuracy_verdict(scores, forecasts, obs, now, test_rmse, factor)
    context.log.info(
        f"7-day RMSE {rmse_7d:.1f} vs persistence {persistence_7d:.1f}; ratio to test RMSE "
        f"by horizon {ratios}; degradation beyond {factor}x: {exceeded}; {verdict.description}"
    )
    versus = verdict.versus_persistence
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(
                check_name="accuracy_within_limits",
                passed=verdict.passed,
                severity=dg.AssetCheckSeverity(verdict.severity),
                metadata={
                    "status": verdict.status,
                    INCONCLUSIVE: verdict.inconclusive,
                    "p_worse_than_persistence": versus.p_a_worse if versus else float("nan"),
                    "ratio_to_test_rmse_7d": dg.MetadataValue.json(
                        {str(k): v for k, v in verdict.ratios.items()}
                    ),
                },
                description=verdict.description,
            )
        ],
        metadata={
            **headline,
            "forecasts_scored": len(forecasts),
            "scores": dg.MetadataValue.md(score_table_markdown(scores, SCORED_HORIZONS)),
            "ratio_to_test_rmse_7d": dg.MetadataValue.json({str(k): v for k, v in ratios.items()}),
            "ratio_by_horizon": dg.MetadataValue.md(
                markdown.by_horizon(ratios, "7-day RMSE / test RMSE")
            ),
            "degraded": bool(exceeded),
            "accuracy_factor": factor,
            "champion_version": champion.version,
            **coverage_metadata(interval_coverage(forecasts, obs, now, WINDOWS["7d"])),
            **provider_scores(settings, raw_store, obs, now, champion.package_metadata().horizons),
            **charts,
        },
    )


@dg.asset(
    deps=["champion_model"],
    group_name=OPERATIONS_GROUP,
    kinds={"scipy"},
    check_specs=[
        dg.AssetCheckSpec(
            "drift_within_limits",
            asset="drift_report",
            description=(
                "WARN when a watched feature has 25 % of the week's hours outside the seasonal "
                "reference range; ERROR at 50 % (or 80 % of the last day), or a reading stuck "
                "24 h; still WARN while hours an earlier day flagged are in the week (resolved "
                "only when the week is clean)"
            ),
        )
    ],
    description=(
        "Per location, the last 7 days of hourly_observations against the champion's "
        "training data from the same weeks of the year (+-14 days): out-of-range share, "
        "stuck hours, PSI, KS and Wasserstein per feature."
    ),
)
def drift_report(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    operations: OperationsResource,
    mlflow: MlflowResource,
    hourly_observations: pd.DataFrame,
):
    # scipy.stats costs seconds to import: only runs that compute drift pay for it.
    from airquality_assets.monitoring import drift as drift_stats
    from airquality_assets.monitoring.chart import trend_chart
    from airquality_assets.monitoring.flags import recent_flags

    settings = deployment.settings
    now = _clock_now(deployment)
    champion = _champion(mlflow, settings.model_name)
    window_start = now - timedelta(hours=DRIFT_WINDOW_HOURS)
    results: dict[str, drift_stats.DriftResult] = {}
    flagged: dict[str, dict[str, int]] = {}
    metrics = PipelineMetrics()
    for location in settings.location_names:
        own = hourly_observations[hourly_observations[LOCATION] == location].sort_values(TIME)
        current = own[(own[TIME] > pd.Timestamp(window_start)) & (own[TIME] <= pd.Timestamp(now))]
        reference = drift_stats.seasonal_reference(
            own, window_start, now, champion.training_start(), champion.seen_until()
        )
        result = drift_stats.compare(current, reference, DRIFT_WINDOW_HOURS)
        results[location] = result
        flagged[location] = recent_flags(own, now, champion.training_start(), champion.seen_until())
        metrics.set("data_drift_status", drift_stats.STATUS_CODE[result.status], location=location)
        for f in result.features:
            for statistic in ("out_of_range", "psi", "ks_statistic", "wasserstein_sd"):
                metrics.set(
                    "data_drift_score",
                    float(getattr(f, statistic)),
                    location=location,
                    feature=f.feature,
                    statistic=statistic,
                )
    metrics.push(operations.pushgateway_url or None, job="drift")
    order = {
        drift_stats.NOT_ENOUGH_DATA: -1,
        drift_stats.OK: 0,
        drift_stats.WARN: 1,
        drift_stats.ERROR: 2,
    }
    worst = max(results.values(), key=lambda r: (order[r.status], np.nan_to_num(r.score)))
    score_value = max((r.score for r in results.values() if np.isfinite(r.score)), default=None)
    reasons = {loc: r.reason for loc, r in results.items()}
    headline = {
        "clock": now.isoformat(),
        "drift_score": round(score_value, 3) if score_value is not None else float("nan"),
    }
    trend = trend_points(context.instance, "drift_report", ["drift_score"], headline)
    png = trend_chart(trend, "drift score (out-of-range share of the week)", "share of hours")
    chart = ("drift score over the deployment clock", png)
    yield dg.Output(
        None,
        metadata={
            **headline,
            "status": worst.status,
            # the status's own words beside it: the score is the out-of-range share, while a
            # stuck sensor or the newest day alone can make the status an error
            "verdict": worst.reason,
            "reference": f"{champion.name} v{champion.version}: its training and validation "
            f"data {champion.training_start():%Y-%m-%d}..{champion.seen_until():%Y-%m-%d}, "
            "same weeks of the year",
            "reasons": dg.MetadataValue.json(reasons),
            **{
                f"table_{loc}": dg.MetadataValue.md(r.table_markdown())
                for loc, r in results.items()
            },
            **chart_metadata(
                mlflow, champion.run_id, monitoring_folder(now), {"trend_drift_score": chart}
            ),
        },
    )
    # Resolved only when the week is clean: hours an earlier evaluation flagged keep it open.
    recovering = {
        loc: "recovering: "
        + ", ".join(f"{n} h {why}" for why, n in counts.items())
        + " of the last 7 days flagged by the daily check; passes once they leave the window"
        for loc, counts in flagged.items()
        if counts and results[loc].status in (drift_stats.OK, drift_stats.NOT_ENOUGH_DATA)
    }
    passed = worst.status in (drift_stats.OK, drift_stats.NOT_ENOUGH_DATA) and not recovering
    failing = {**{k: v for k, v in reasons.items() if k not in recovering}, **recovering}
    yield dg.AssetCheckResult(
        check_name="drift_within_limits",
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR
        if worst.status == drift_stats.ERROR
        else dg.AssetCheckSeverity.WARN,
        metadata={
            "status": worst.status,
            "reasons": dg.MetadataValue.json(reasons),
            "flagged_hours_7d": dg.MetadataValue.json(flagged),
            # not enough data to judge: passes, but never resolves an open episode
            INCONCLUSIVE: passed and worst.status == drift_stats.NOT_ENOUGH_DATA,
        },
        description=None if passed else "; ".join(f"{k}: {v}" for k, v in failing.items()),
    )
