"""Raw pulls: one (UTC month, location) partition, bodies stored exactly as returned.

A month is one request where the API allows it (see :mod:`airquality_assets.sources.spans`):
a closed month is pulled whole; the month in progress only from its newest stored hours to
the source's clock, so the hourly schedule asks for a few hours per location. Any range of
months and locations runs as ONE run (single-run backfill policy).

Partition status tells the truth: when some partitions of a run fail, every partition that
was stored gets its own materialization event and the step then fails, so Dagster shows the
stored ones materialized and only the failed ones failed; re-running those makes the range
whole. A per-source circuit breaker stops the step after N consecutive failed pulls.
A closed month already stored whole is not pulled again (a re-run of a stored range costs
nothing; the Visual Crossing budget is billed per hour record) unless the run asks with
``refetch_closed_months: true`` (:class:`RawPullConfig`); the hourly schedule asks for it, so
the month that just closed is pulled again while its last hours are within the refetch
window. The metadata says which partitions were skipped as already stored.
Every request a live client retries (429, 5xx, a timeout, a bad body) is a warning in the
run's log (status or error, attempt, wait) and counted in its partition's metadata
(``retries``, ``retry_wait_seconds``; the run's totals under ``run``).

Forecasts (``raw_weather_forecast``, ``raw_air_pollution_forecast``) use the same (month,
location) partitions, one body per issue (every ``AIRQUALITY_FORECAST_ISSUE_HOURS`` from
00 UTC) named by its issue hour and stored under its issue's month. A stored issue is never
fetched again. The replay source serves every issue its clock has reached (a closed month:
all of them, the history a model trains on); a live API only its current forecast, so a
live pull stores the issue due now and nothing older (no archive).
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

import dagster as dg
import pandas as pd

from airquality_assets.catalog import INGESTION_GROUP
from airquality_assets.defs.partitions import DataPartitions, single_run, split_key
from airquality_assets.defs.resources import (
    AirPollutionSourceResource,
    DeploymentResource,
    RawStore,
    WeatherSourceResource,
)
from airquality_assets.defs.versions import versioned_materialization
from airquality_assets.quality import RawBodyVerdict, raw_body_verdict
from airquality_assets.settings import Settings
from airquality_assets.sources.base import Location, NotAvailableError, RawResponse, SourceError
from airquality_assets.sources.breaker import CircuitBreaker, CircuitOpenError
from airquality_assets.sources.http import ApiClient, RetryEvent
from airquality_assets.sources.spans import (
    HOUR,
    PullSpan,
    due_issue,
    month_bounds,
    month_issues,
    month_pull_span,
)
from airquality_assets.transforms.parsing import parse_air_pollution, parse_weather

PROGRESS_EVERY = 100
MAX_LISTED_FAILURES = 5
RAW_BODY_CHECK = "body_parses_within_window"
RAW_WEATHER_FORECAST = "raw_weather_forecast"
RAW_AIR_POLLUTION_FORECAST = "raw_air_pollution_forecast"
_PARSERS = {"raw_air_quality": parse_air_pollution, "raw_weather": parse_weather}


def _raw_body_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RAW_BODY_CHECK,
        asset=asset,
        description=(
            "Every body pulled in the run parses, its records are counted, and none lies "
            "outside its partition's UTC month"
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


Fetch = Callable[[Location, PullSpan], tuple[PullSpan, RawResponse]]


class RawPullConfig(dg.Config):
    refetch_closed_months: bool = False
    """Pull a closed month again even if it is stored whole (late records, a re-parse of a
    changed API answer); off by default, so a re-run of a stored range bills nothing."""


@dataclass
class RetryLog:
    """Each request a live client retried, as a warning in the run's log, counted per
    partition: urllib3 retries quietly, and a run that lost minutes to 429s and timeouts
    should say so where its operator looks (the Dagster run log and the metadata)."""

    log: Any  # the run's logger (``context.log``)
    asset_name: str
    partition: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    wait_s: Counter[str] = field(default_factory=Counter)

    def watch(self, client: object) -> None:
        """Have ``client`` report its retries here (a replay source never retries)."""
        if isinstance(client, ApiClient):
            client.on_retry = self

    def __call__(self, event: RetryEvent) -> None:
        self.counts[self.partition] += 1
        self.wait_s[self.partition] += event.wait_s
        self.log.warning(f"{self.asset_name} {self.partition}: {event}")

    def of(self, partition_key: str) -> dict[str, object]:
        """The partition's figures for its metadata."""
        return {
            "retries": self.counts[partition_key],
            "retry_wait_seconds": round(self.wait_s[partition_key], 3),
        }

    def totals(self) -> dict[str, object]:
        return {
            "retries": sum(self.counts.values()),
            "retry_wait_seconds": round(sum(self.wait_s.values()), 3),
        }


def _failure_text(
    asset_name: str, failures: list[str], total: int, stored: int, failed: int | None = None
) -> str:
    """``failed`` partitions (default: one per listed failure; a forecast partition can list
    several failed issues) of ``total``, and the first failures."""
    listed = "\n".join(f"  - {f}" for f in failures[:MAX_LISTED_FAILURES])
    more = len(failures) - MAX_LISTED_FAILURES
    failed = len(failures) if failed is None else failed
    return (
        f"{asset_name}: {failed} of {total} partition pull(s) failed ({stored} stored "
        f"and materialized; re-run the failed ones):\n{listed}"
        + (f"\n  ... and {more} more (see the failures metadata)" if more > 0 else "")
    )


def _not_pulled(
    raw_store: RawStore,
    asset_name: str,
    location: str,
    month: date,
    span: PullSpan | None,
    refetch_closed_months: bool,
) -> dict[str, object] | None:
    """The metadata of a partition with nothing to pull, or None to pull it: a month after
    the clock (nothing exists yet), or a closed month stored whole (unless asked again)."""
    if span is None:
        return {"hours_requested": 0}
    closed = span.last_hour == month_bounds(month)[1] - HOUR
    if (
        closed
        and not refetch_closed_months
        and raw_store.stored_whole_month(asset_name, location, month)
    ):
        return {"already_stored": True, "span": str(span)}
    return None


def _pull_partitions(
    context: dg.AssetExecutionContext,
    asset_name: str,
    settings: Settings,
    breaker: CircuitBreaker,
    raw_store: RawStore,
    fetch: Fetch,
    retries: RetryLog,
    refetch_closed_months: bool = False,
) -> Iterator[dg.AssetCheckResult]:
    """Pull and store every partition of the run (a closed month stored whole only if
    ``refetch_closed_months``; otherwise it is recorded as ``already_stored``).

    All stored: one event per partition with its own span, records, bytes, URL, request time,
    retries and data version (the content hash of its stored bodies; the run's totals under
    ``run``), then the body check. Some failed: the same event for each stored partition,
    then a failure listing the failed ones (so only those show as failed). A 401 or an open
    circuit breaker stops at once.
    """
    keys = context.partition_keys
    now = settings.clock.now()
    stored: dict[str, dict[str, object]] = {}
    failures: list[str] = []
    parsed: dict[str, pd.DataFrame | Exception] = {}
    windows: dict[str, tuple[datetime, datetime]] = {}
    total_bytes = total_records = 0
    total_seconds = 0.0
    started = time.perf_counter()
    stop: str | None = None
    refetch = refetch_closed_months
    for index, partition_key in enumerate(keys, start=1):
        month_text, location_name = split_key(partition_key)
        month = date.fromisoformat(month_text)
        span = month_pull_span(
            month, now, raw_store.stored_through(asset_name, location_name, month)
        )
        skipped = _not_pulled(raw_store, asset_name, location_name, month, span, refetch)
        if skipped is not None:
            stored[partition_key] = skipped
            continue
        location = settings.location(location_name)
        retries.partition = partition_key
        try:
            stored_span, response = breaker.call(partial(fetch, location, span))
        except CircuitOpenError as exc:
            stop = str(exc)
            failures.append(f"{partition_key}: {exc.last_errors[-1]}")
            break
        except SourceError as exc:
            had = raw_store.stored_through(asset_name, location_name, month) is not None
            kept = " (previous bodies kept)" if had else ""
            context.log.error(f"{asset_name} {partition_key}: {exc}{kept}")
            failures.append(f"{partition_key}: {exc}")
            if exc.status == 401:
                stop = f"{asset_name}: authentication failed, stopping: {exc}"
                break
            continue
        raw_store.write_span(asset_name, location_name, stored_span, response.body)
        parsed[str(partition_key)] = _parse_or_error(asset_name, response.body, location_name)
        windows[str(partition_key)] = month_bounds(month)
        stored[partition_key] = {
            "already_stored": False,
            "span": str(stored_span),
            "records": response.record_count,
            "bytes": len(response.body),
            "url": response.url,
            "request_seconds": round(response.duration_s, 3),
            **retries.of(partition_key),
        }
        total_bytes += len(response.body)
        total_records += response.record_count
        total_seconds += response.duration_s
        if index % PROGRESS_EVERY == 0 or index == len(keys):
            context.log.info(
                f"{asset_name}: {index}/{len(keys)} partitions pulled, {total_records} records"
            )
    already_stored = sum(1 for meta in stored.values() if meta.get("already_stored") is True)
    if already_stored:
        context.log.info(
            f"{asset_name}: {already_stored} closed month(s) already stored whole, not pulled "
            "again (run config refetch_closed_months: true pulls them)"
        )
    if not failures:
        wall_seconds = round(time.perf_counter() - started, 3)
        run_metadata = {
            # the run's totals, one value (not a flat line per partition in the Plots tab)
            "run": dg.MetadataValue.json(
                {
                    "partitions": len(keys),
                    "already_stored": already_stored,
                    "records": total_records,
                    "bytes": total_bytes,
                    "request_seconds": round(total_seconds, 3),
                    "wall_seconds": wall_seconds,
                    **retries.totals(),
                }
            ),
            "wall_seconds": wall_seconds,  # the run's, read by the pipeline metrics
        }
        _log_versioned(context, raw_store, asset_name, stored, run_metadata)
        yield _raw_body_check_result(asset_name, raw_body_verdict(parsed, windows))
        return
    _log_versioned(context, raw_store, asset_name, stored, {})
    description = _failure_text(asset_name, failures, len(keys), len(stored))
    if stop is not None:
        description = f"{stop}\n{description}"
    raise dg.Failure(
        description=description,
        metadata={"failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures))},
    )


def _log_versioned(
    context: dg.AssetExecutionContext,
    raw_store: RawStore,
    asset_name: str,
    metadata_by_partition: dict[str, dict[str, Any]],
    run_metadata: dict[str, Any],
) -> None:
    """One materialization per partition, tagged with the content hash of what it holds."""
    for partition_key, metadata in metadata_by_partition.items():
        month_text, location_name = split_key(partition_key)
        version = raw_store.digest(asset_name, location_name, date.fromisoformat(month_text))
        context.log_event(
            versioned_materialization(
                context, asset_name, partition_key, version, {**metadata, **run_metadata}
            )
        )


ForecastFetch = Callable[[Location, datetime], RawResponse]


def issues_to_pull(month: date, now: datetime, every_hours: int, live: bool) -> list[datetime]:
    """The issues a pull of a month partition may ask for at ``now``: every issue of the
    month the clock has reached (replay), or only the one due now if it is in this month
    (live: the API has no archive)."""
    if not live:
        return month_issues(month, now, every_hours)
    due = due_issue(now, every_hours)
    return [due] if (due.year, due.month) == (month.year, month.month) else []


@dataclass
class _ForecastPull:
    """One run's forecast pulls: per-partition metadata, failures and why it stopped."""

    asset_name: str
    breaker: CircuitBreaker
    raw_store: RawStore
    fetch: ForecastFetch
    retries: RetryLog
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    unavailable: str | None = None
    stop: str | None = None
    totals: dict[str, float] = field(
        default_factory=lambda: {"issues": 0, "bytes": 0, "records": 0, "request_seconds": 0.0}
    )

    @property
    def halted(self) -> bool:
        return self.stop is not None or self.unavailable is not None

    def pull(
        self,
        context: dg.AssetExecutionContext,
        partition_key: str,
        location: Location,
        issues: list[datetime],
    ) -> None:
        """Fetch and store ``issues`` in order; stop at a missing source, an open breaker or
        a 401, skip past any other failed issue."""
        meta = self.metadata[partition_key]
        self.retries.partition = partition_key
        for issue in issues:
            try:
                response = self.breaker.call(partial(self.fetch, location, issue))
            except NotAvailableError as exc:
                self.unavailable = str(exc.reason)
                context.log.info(f"{self.asset_name}: {exc}; nothing stored")
                return
            except CircuitOpenError as exc:
                self.stop = str(exc)
                self._fail(partition_key, f"circuit open: {exc.last_errors[-1]}")
                return
            except SourceError as exc:
                label = f"issue {issue:%Y-%m-%dT%H}Z: {exc}"
                context.log.error(f"{self.asset_name} {partition_key} {label}")
                self._fail(partition_key, label)
                if exc.status == 401:
                    self.stop = f"{self.asset_name}: authentication failed, stopping: {exc}"
                    return
                continue
            self.raw_store.write_issue(self.asset_name, location.name, issue, response.body)
            meta["pulled"] += 1
            meta["bytes"] += len(response.body)
            meta["records"] += response.record_count
            meta["last_issue"] = f"{issue:%Y-%m-%dT%H}Z"
            meta.setdefault("url", response.url)
            self.totals["issues"] += 1
            self.totals["bytes"] += len(response.body)
            self.totals["records"] += response.record_count
            self.totals["request_seconds"] += response.duration_s

    def skip(self, partition_key: str, issues: int) -> None:
        """A partition the run stopped before: it is not materialized (nothing was pulled)."""
        self._fail(partition_key, f"{issues} issue(s) not pulled: the run stopped first")

    def _fail(self, partition_key: str, reason: str) -> None:
        self.failures.append(f"{partition_key} {reason}")
        self.failed.add(partition_key)


def _pull_forecasts(
    context: dg.AssetExecutionContext,
    asset_name: str,
    settings: Settings,
    breaker: CircuitBreaker,
    raw_store: RawStore,
    fetch: ForecastFetch,
    retries: RetryLog,
) -> None:
    """Pull and store the issues of every partition of the run that are not stored yet.

    Each partition's event says how many issues were due, already stored and pulled (with
    bytes and records); a source without forecasts (the replay air-pollution source) is
    recorded as ``available: false`` with its reason, nothing stored. Failures are reported
    as in :func:`_pull_partitions`: the bodies pulled stay stored and only the partitions
    with a failed issue show failed (a re-run pulls just their missing issues).
    """
    keys = context.partition_keys
    now = settings.clock.now()
    live = settings.source == "live"
    run = _ForecastPull(asset_name, breaker, raw_store, fetch, retries)
    started = time.perf_counter()
    for partition_key in keys:
        month_text, location_name = split_key(partition_key)
        month = date.fromisoformat(month_text)
        due = issues_to_pull(month, now, settings.forecast_issue_hours, live)
        stored = raw_store.stored_issues(asset_name, location_name, month)
        todo = [issue for issue in due if issue not in stored]
        run.metadata[partition_key] = {
            "issues_due": len(due),
            "already_stored": len(due) - len(todo),
            "pulled": 0,
            "bytes": 0,
            "records": 0,
            **retries.of(partition_key),
        }
        if todo and run.stop is not None:  # not pulled: it shows failed, a re-run pulls it
            run.skip(partition_key, len(todo))
        elif todo and not run.halted:
            run.pull(context, partition_key, settings.location(location_name), todo)
            run.metadata[partition_key].update(retries.of(partition_key))
    if run.unavailable is not None:
        for meta in run.metadata.values():
            meta.update(available=False, reason=run.unavailable)
    wall_seconds = round(time.perf_counter() - started, 3)
    context.log.info(
        f"{asset_name}: {run.totals['issues']} issue(s) pulled over {len(keys)} partition(s) "
        f"in {wall_seconds} s"
    )
    if not run.failures:
        run.totals["request_seconds"] = round(float(run.totals["request_seconds"]), 3)
        run_metadata = {
            "run": dg.MetadataValue.json(
                {"partitions": len(keys), **run.totals, **retries.totals()}
            ),
            "wall_seconds": wall_seconds,
            "available": run.unavailable is None,
        }
        _log_versioned(context, raw_store, asset_name, run.metadata, run_metadata)
        return
    kept = {k: meta for k, meta in run.metadata.items() if k not in run.failed}
    _log_versioned(context, raw_store, asset_name, kept, {})
    description = _failure_text(
        asset_name, run.failures, len(keys), len(keys) - len(run.failed), len(run.failed)
    )
    if run.stop is not None:
        description = f"{run.stop}\n{description}"
    raise dg.Failure(
        description=description,
        metadata={"failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in run.failures))},
    )


def ingestion_assets(partitions: DataPartitions) -> list[dg.AssetsDefinition]:
    """The raw-pull assets over this deployment's (month x location) partitions."""

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        output_required=False,  # each partition's event is logged with its data version
        group_name=INGESTION_GROUP,
        kinds={"python", "json"},
        check_specs=[_raw_body_check_spec("raw_air_quality")],
        description=(
            "Hourly air pollution per UTC month and location, as the OpenWeatherMap Air "
            "Pollution history endpoint returned it (one request per closed month; the month "
            "in progress adds its newest hours), or the replay source in the same JSON shape."
        ),
    )
    def raw_air_quality(
        context: dg.AssetExecutionContext,
        config: RawPullConfig,
        deployment: DeploymentResource,
        air_pollution_source: AirPollutionSourceResource,
        raw_store: RawStore,
    ) -> Iterator[dg.AssetCheckResult]:
        settings = deployment.settings
        client = air_pollution_source.client(settings.clock)

        def fetch(location: Location, span: PullSpan) -> tuple[PullSpan, RawResponse]:
            return span, client.history(location, span.first_hour, span.last_hour)

        breaker = air_pollution_source.breaker(client.source_name)
        retries = RetryLog(context.log, "raw_air_quality")
        retries.watch(client)
        yield from _pull_partitions(
            context,
            "raw_air_quality",
            settings,
            breaker,
            raw_store,
            fetch,
            retries,
            config.refetch_closed_months,
        )

    @dg.asset(
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        output_required=False,  # each partition's event is logged with its data version
        group_name=INGESTION_GROUP,
        kinds={"python", "json"},
        check_specs=[_raw_body_check_spec("raw_weather")],
        description=(
            "Hourly weather per UTC month and location, as the Visual Crossing Timeline API "
            "returned it (metric units, timezone=Z; whole UTC days, a closed month in one "
            "request), or the replay source in the same shape."
        ),
    )
    def raw_weather(
        context: dg.AssetExecutionContext,
        config: RawPullConfig,
        deployment: DeploymentResource,
        weather_source: WeatherSourceResource,
        raw_store: RawStore,
    ) -> Iterator[dg.AssetCheckResult]:
        settings = deployment.settings
        client = weather_source.client(settings.clock)

        def fetch(location: Location, span: PullSpan) -> tuple[PullSpan, RawResponse]:
            days = span.whole_days()
            return days, client.timeline(location, days.first_day, days.last_day)

        breaker = weather_source.breaker(client.source_name)
        retries = RetryLog(context.log, "raw_weather")
        retries.watch(client)
        yield from _pull_partitions(
            context,
            "raw_weather",
            settings,
            breaker,
            raw_store,
            fetch,
            retries,
            config.refetch_closed_months,
        )

    @dg.asset(
        name=RAW_WEATHER_FORECAST,
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        output_required=False,  # each partition's event is logged with its data version
        group_name=INGESTION_GROUP,
        kinds={"python", "json"},
        description=(
            "Hourly weather forecasts for the next 48 h, one body per issue (every "
            "AIRQUALITY_FORECAST_ISSUE_HOURS from 00 UTC), as the Visual Crossing Timeline "
            "API returned it (metric, timezone=Z, a forecast costs 1 record), stored under the "
            "month of its issue. Live: the issue due now only (no archive). Replay: every "
            "issue the clock has reached, stand-ins made from the bundled observations plus "
            "a seeded error model (see airquality_assets/sources/forecast_errors.py)."
        ),
    )
    def raw_weather_forecast(
        context: dg.AssetExecutionContext,
        deployment: DeploymentResource,
        weather_source: WeatherSourceResource,
        raw_store: RawStore,
    ) -> Iterator[dg.AssetCheckResult]:
        settings = deployment.settings
        client = weather_source.client(settings.clock)
        breaker = weather_source.breaker(client.source_name)
        retries = RetryLog(context.log, RAW_WEATHER_FORECAST)
        retries.watch(client)
        _pull_forecasts(
            context, RAW_WEATHER_FORECAST, settings, breaker, raw_store, client.forecast, retries
        )
        yield from ()  # a generator with no output: Dagster adds no event of its own

    @dg.asset(
        name=RAW_AIR_POLLUTION_FORECAST,
        partitions_def=partitions.monthly,
        backfill_policy=single_run,
        output_required=False,  # each partition's event is logged with its data version
        group_name=INGESTION_GROUP,
        kinds={"python", "json"},
        description=(
            "Hourly air-pollution forecasts (about 4 days), one body per issue, as the "
            "OpenWeatherMap /data/2.5/air_pollution/forecast endpoint returned it, stored "
            "like raw_weather_forecast. Live only: the replay source has no air-pollution "
            "forecast and none is invented (the metadata says so: available = false)."
        ),
    )
    def raw_air_pollution_forecast(
        context: dg.AssetExecutionContext,
        deployment: DeploymentResource,
        air_pollution_source: AirPollutionSourceResource,
        raw_store: RawStore,
    ) -> Iterator[dg.AssetCheckResult]:
        settings = deployment.settings
        client = air_pollution_source.client(settings.clock)
        breaker = air_pollution_source.breaker(client.source_name)
        retries = RetryLog(context.log, RAW_AIR_POLLUTION_FORECAST)
        retries.watch(client)
        _pull_forecasts(
            context,
            RAW_AIR_POLLUTION_FORECAST,
            settings,
            breaker,
            raw_store,
            client.forecast,
            retries,
        )
        yield from ()  # a generator with no output: Dagster adds no event of its own

    return [raw_air_quality, raw_weather, raw_weather_forecast, raw_air_pollution_forecast]
