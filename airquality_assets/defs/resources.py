"""Resources: the deployment's settings and clock, which sources, where files go.

``deployment`` carries the :class:`Settings` read once at definitions load, whole; assets,
checks and schedules take it as a parameter instead of reading the environment. A run can
override its ``replay_now`` (moves the replay clock) and ``profile`` (picks the training
grid). The other resources are built from the same value and take only what they need.

``AIRQUALITY_SOURCE=replay`` (the default) serves the bundled Beijing data through the same
interface and JSON shapes as the live APIs; ``AIRQUALITY_SOURCE=live`` uses OpenWeatherMap and
Visual Crossing with keys from ``OPENWEATHER_API_KEY`` / ``VISUAL_CROSSING_API_KEY``
(Dagster ``EnvVar``s: resolved at run time, never stored in run config or shown in logs).
"""

from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta

import dagster as dg
from typing_extensions import override

from airquality_assets.clock import Clock, to_utc
from airquality_assets.settings import (
    OPENWEATHER_API_KEY,
    OPENWEATHER_DEFAULT_BASE_URL,
    PROFILES,
    VISUAL_CROSSING_API_KEY,
    VISUAL_CROSSING_DEFAULT_BASE_URL,
    Settings,
)
from airquality_assets.sources.base import AirPollutionSource, WeatherSource
from airquality_assets.sources.breaker import CircuitBreaker
from airquality_assets.sources.spans import PullSpan
from airquality_assets.storage import (
    StoragePath,
    raw_issue_bodies,
    raw_issue_time,
    raw_month_bodies,
    raw_month_digest,
    storage_location,
    store_raw_issue,
    store_raw_span,
    stored_issues,
    stored_through,
    stored_whole_month,
)


class DeploymentResource(dg.ConfigurableResource):
    """This deployment's :class:`Settings` as resource config, whole: ``.settings`` is the
    value parsed at definitions load, field for field.

    ``settings_json`` holds every setting but the secrets (:meth:`Settings.to_config`); the
    secret alert URLs travel as an ``EnvVar`` (resolved at run time, never shown in config).
    ``replay_now`` and ``profile`` are fields of their own so a run can move the clock or
    pick the training grid; a run's config replaces a resource's config as a whole, so it
    restates the rest (:meth:`run_config` gives it).
    """

    settings_json: str
    """The deployment's settings as JSON, as parsed at definitions load (not for editing)."""
    replay_now: str
    """The replay clock (ISO instant, UTC); ignored by a live deployment."""
    profile: str = "demo"
    """Training grid: ``demo`` (a few small candidates) or ``full``."""
    alert_urls: str = ""
    """``AIRQUALITY_ALERT_URLS`` as an ``EnvVar`` when set (Apprise URLs carry tokens)."""
    subscriber_alert_urls: str = ""
    """``AIRQUALITY_SUBSCRIBER_ALERT_URLS`` likewise."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "DeploymentResource":
        return cls(
            settings_json=settings.to_config(),
            replay_now=settings.replay_now.isoformat(),
            profile=settings.profile,
            alert_urls=_secret_alert_urls(settings),
            subscriber_alert_urls=_secret_subscriber_urls(settings),
        )

    @property
    def settings(self) -> Settings:
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        secrets = {}
        for name in ("alert_urls", "subscriber_alert_urls"):
            value = getattr(self, name)
            if isinstance(value, dg.EnvVar):  # outside a run: resolve it as a run would
                value = value.get_value() or ""
            secrets[name] = value
        return Settings.from_config(self.settings_json, ops=secrets).replace(
            replay_now=to_utc(self.replay_now), profile=self.profile
        )

    def clock(self) -> Clock:
        """The configured source's clock (replay instant, or wall time when live)."""
        return self.settings.clock

    def at(self, now: datetime) -> "DeploymentResource":
        """The same deployment with its replay clock at ``now``. Built through the
        constructor: Dagster resolves a resource from the config it was constructed with, so
        a ``model_copy`` would keep the old clock wherever Dagster initializes it."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**fields, "replay_now": to_utc(now).isoformat()})

    def run_config(self) -> dict[str, object]:
        """This resource's config for a run's ``resources.deployment.config`` (an ``EnvVar``
        stays a reference to its variable)."""
        return {
            name: {"env": value.env_var_name} if isinstance(value, dg.EnvVar) else value
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }


def _secret_subscriber_urls(settings: Settings) -> str:
    """The subscribers' alert URLs, as :func:`_secret_alert_urls`."""
    if settings.ops.subscriber_alert_urls:
        return dg.EnvVar("AIRQUALITY_SUBSCRIBER_ALERT_URLS")
    return ""


def _secret_alert_urls(settings: Settings) -> str:
    """The alert URLs as a reference to their variable: validated at load, read at run time."""
    return dg.EnvVar("AIRQUALITY_ALERT_URLS") if settings.ops.alert_urls else ""


class _SourceResource(dg.ConfigurableResource, ABC):
    circuit_breaker_failures: int = 5
    """Consecutive failed pulls after which a step stops (0: never)."""

    def breaker(self, source_name: str) -> CircuitBreaker:
        """A fresh breaker for one step's pulls from this source."""
        return CircuitBreaker(source_name, self.circuit_breaker_failures)


class AirPollutionSourceResource(_SourceResource):
    """Where hourly air-pollution records come from; ``clock`` is the deployment's."""

    @abstractmethod
    def client(self, clock: Clock) -> AirPollutionSource: ...


class WeatherSourceResource(_SourceResource):
    """Where hourly weather records come from; ``clock`` is the deployment's."""

    @abstractmethod
    def client(self, clock: Clock) -> WeatherSource: ...


class OpenWeatherMapResource(AirPollutionSourceResource):
    """Live OpenWeatherMap Air Pollution API (history endpoint, a month per request)."""

    api_key: str
    base_url: str = OPENWEATHER_DEFAULT_BASE_URL
    timeout_s: float = 30.0
    max_retries: int = 4
    min_interval_s: float = 1.0  # free plan: 60 calls/minute
    forecast_issue_hours: int = 6
    """An issue can be pulled until the next one is due (``AIRQUALITY_FORECAST_ISSUE_HOURS``)."""

    @override
    def client(self, clock: Clock) -> AirPollutionSource:
        from airquality_assets.sources.openweathermap import OpenWeatherMapClient

        return OpenWeatherMapClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            min_interval_s=self.min_interval_s,
            forecast_max_age=timedelta(hours=self.forecast_issue_hours),
        )


class VisualCrossingResource(WeatherSourceResource):
    """Live Visual Crossing Timeline API (hourly, metric, UTC; one day = 24 records)."""

    api_key: str
    base_url: str = VISUAL_CROSSING_DEFAULT_BASE_URL
    timeout_s: float = 30.0
    max_retries: int = 4
    daily_record_budget: int | None = None
    """Records per UTC day (``VISUAL_CROSSING_DAILY_RECORD_BUDGET``, default 1000: the free
    plan); None: no budget. The default here is None, not 1000, on purpose: a resource
    configured at launch drops a None it is given and falls back to this default, so "no
    budget" must be the default for ``none`` to survive; the deployment always passes the
    setting."""
    forecast_issue_hours: int = 6
    """An issue can be pulled until the next one is due (``AIRQUALITY_FORECAST_ISSUE_HOURS``)."""

    @override
    def client(self, clock: Clock) -> WeatherSource:
        from airquality_assets.sources.visualcrossing import VisualCrossingClient

        return VisualCrossingClient(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            daily_record_budget=self.daily_record_budget,
            forecast_max_age=timedelta(hours=self.forecast_issue_hours),
        )


class _FaultConfig(dg.ConfigurableResource):
    fault: str = ""
    """Simulation only: ``recalibration``, ``stuck`` or ``fahrenheit`` (see
    ``monitoring/faults.py``) applied to every answer from ``fault_start`` on."""
    fault_start: str = ""

    def _fault(self):
        from airquality_assets.monitoring.faults import Fault

        return Fault(self.fault, to_utc(self.fault_start)) if self.fault else None


class ReplayAirPollutionResource(AirPollutionSourceResource, _FaultConfig):
    """Bundled real measurements served in the OpenWeatherMap JSON shape, at the clock's now."""

    @override
    def client(self, clock: Clock) -> AirPollutionSource:
        from airquality_assets.monitoring.faults import FaultyAirPollutionSource
        from airquality_assets.sources.replay import ReplayAirPollutionSource

        source = ReplayAirPollutionSource(now=clock.now())
        fault = self._fault()
        return FaultyAirPollutionSource(source, fault) if fault else source  # type: ignore[return-value]


class ReplayWeatherResource(WeatherSourceResource, _FaultConfig):
    """Bundled real measurements served in the Visual Crossing JSON shape, at the clock's now;
    its forecasts are stand-ins: the observations plus the seeded error model."""

    forecast_error_scale: float = 1.0
    """The stand-in forecasts' error as a multiple of the measured figures
    (``AIRQUALITY_FORECAST_ERROR_SCALE``)."""
    forecast_error_seed: int = 0
    """Seed of the error model (with the location and issue time)."""

    @override
    def client(self, clock: Clock) -> WeatherSource:
        from airquality_assets.monitoring.faults import FaultyWeatherSource
        from airquality_assets.sources.forecast_errors import ForecastErrorModel
        from airquality_assets.sources.replay import ReplayWeatherSource

        model = ForecastErrorModel(scale=self.forecast_error_scale, seed=self.forecast_error_seed)
        source = ReplayWeatherSource(now=clock.now(), error_model=model)
        fault = self._fault()
        return FaultyWeatherSource(source, fault) if fault else source  # type: ignore[return-value]


class OperationsResource(dg.ConfigurableResource):
    """Where the operating loop reports to, and when it retrains."""

    pushgateway_url: str = ""
    """Prometheus Pushgateway (``AIRQUALITY_PUSHGATEWAY_URL``); empty: metadata only."""
    alert_urls: str = ""
    """Apprise URLs, comma-separated (``AIRQUALITY_ALERT_URLS``, read as an ``EnvVar``)."""
    ui_base_url: str = "http://127.0.0.1:3000"
    alert_attempts: int = 3
    """Delivery attempts per alert and tick (with backoff)."""
    alert_give_up_after_ticks: int = 3
    """Ticks on which an alert failed before it is given up explicitly (logged, counted)."""
    accuracy_factor: float = 1.5
    """Retrain when the 7-day RMSE exceeds this multiple of the champion's test RMSE."""
    cooldown_hours: int = 72
    """At most one retraining request per cool-down."""
    subscriber_alert_urls: str = ""
    """High-pollution alerts' Apprise URLs (``AIRQUALITY_SUBSCRIBER_ALERT_URLS``, an ``EnvVar``)."""
    pollution_alert_band: int = 4
    """OWM band that starts a high-pollution episode (``AIRQUALITY_POLLUTION_ALERT_BAND``)."""


class RawStore(dg.ConfigurableResource):
    """Raw response bodies: per (asset, location, UTC month), one file per request, named by
    the hours it covers, written atomically (see :mod:`airquality_assets.storage`).

    ``base_dir`` is a directory or an object-store URL (``s3://bucket/prefix``).
    """

    base_dir: str
    history_keep: int = 12
    """Superseded pulls kept per partition (``AIRQUALITY_RAW_HISTORY_KEEP``)."""

    @property
    def _root(self) -> StoragePath:
        return storage_location(self.base_dir)

    def write_span(self, asset: str, location: str, span: PullSpan, body: bytes) -> StoragePath:
        return store_raw_span(
            self._root,
            asset,
            location,
            span.first_hour,
            span.last_hour,
            body,
            history_keep=self.history_keep,
        )

    def digest(self, asset: str, location: str, month: date) -> str:
        """The partition's content hash: its Dagster data version."""
        return raw_month_digest(self._root, asset, location, month)

    def month_bodies(self, asset: str, location: str, month: date) -> list[bytes]:
        """Every stored body of the partition, oldest span first."""
        paths = raw_month_bodies(self._root, asset, location, month)
        return [path.read_bytes() for path in paths]

    def stored_through(self, asset: str, location: str, month: date) -> datetime | None:
        return stored_through(self._root, asset, location, month)

    def stored_whole_month(self, asset: str, location: str, month: date) -> bool:
        """Whether the partition holds a body of the whole month (a closed month's pull)."""
        return stored_whole_month(self._root, asset, location, month)

    def write_issue(
        self, asset: str, location: str, issued_at: datetime, body: bytes
    ) -> StoragePath:
        """Store one forecast body under its issue hour, atomically."""
        return store_raw_issue(self._root, asset, location, issued_at, body)

    def stored_issues(self, asset: str, location: str, month: date) -> set[datetime]:
        """The issue hours of a forecast partition already stored."""
        return stored_issues(self._root, asset, location, month)

    def issue_bodies(self, asset: str, location: str, month: date) -> list[tuple[datetime, bytes]]:
        """Every stored forecast body of the partition with its issue hour, oldest first."""
        paths = raw_issue_bodies(self._root, asset, location, month)
        return [(raw_issue_time(path), path.read_bytes()) for path in paths]


def build_resources(settings: Settings) -> dict[str, object]:
    """The resource set of one deployment; sources chosen by ``AIRQUALITY_SOURCE``."""
    from airquality_assets.defs.io_managers import (
        PartitionedParquetIOManager,
        SequenceTensorsIOManager,
    )
    from airquality_assets.defs.model.mlflow import MlflowResource, mlflow_parent_run

    sources: dict[str, object]
    limits = settings.clients
    if settings.source == "live":
        # configure_at_launch: these values are defaults a run's config can override one
        # field at a time (e.g. timeout_s) without restating the key or the base URL.
        sources = {
            "air_pollution_source": OpenWeatherMapResource.configure_at_launch(
                api_key=dg.EnvVar(OPENWEATHER_API_KEY),
                base_url=limits.openweather_base_url,
                timeout_s=limits.timeout_s,
                max_retries=limits.max_retries,
                min_interval_s=limits.openweather_min_interval_s,
                forecast_issue_hours=settings.forecast_issue_hours,
                circuit_breaker_failures=limits.circuit_breaker_failures,
            ),
            "weather_source": VisualCrossingResource.configure_at_launch(
                api_key=dg.EnvVar(VISUAL_CROSSING_API_KEY),
                base_url=limits.visual_crossing_base_url,
                timeout_s=limits.timeout_s,
                max_retries=limits.max_retries,
                daily_record_budget=limits.visual_crossing_daily_records,
                forecast_issue_hours=settings.forecast_issue_hours,
                circuit_breaker_failures=limits.circuit_breaker_failures,
            ),
        }
    else:
        sources = {
            "air_pollution_source": ReplayAirPollutionResource.configure_at_launch(
                circuit_breaker_failures=limits.circuit_breaker_failures
            ),
            "weather_source": ReplayWeatherResource.configure_at_launch(
                circuit_breaker_failures=limits.circuit_breaker_failures,
                forecast_error_scale=settings.forecast_error_scale,
            ),
        }
    return {
        "deployment": DeploymentResource.from_settings(settings),
        "operations": OperationsResource(
            pushgateway_url=settings.ops.pushgateway_url or "",
            # Apprise URLs carry tokens: an EnvVar is resolved at run time, never shown.
            alert_urls=_secret_alert_urls(settings),
            ui_base_url=settings.ui.dagster_ui_url,
            subscriber_alert_urls=_secret_subscriber_urls(settings),
            pollution_alert_band=settings.ops.pollution_alert_band,
        ),
        **sources,
        # A directory, or an object store (AIRQUALITY_STORAGE_URL): the same code either way.
        "raw_store": RawStore(
            base_dir=settings.storage_root, history_keep=settings.raw_history_keep
        ),
        "io_manager": PartitionedParquetIOManager(base_dir=settings.storage_root),
        "tensors_io_manager": SequenceTensorsIOManager(base_dir=settings.storage_root),
        # Small Python values between steps (candidate summaries, evaluation reports); Dagster's
        # own IO manager, which takes a URL too (universal-pathlib).
        "pickle_io_manager": dg.FilesystemIOManager(
            base_dir=f"{settings.storage_root}/dagster_storage"
        ),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            experiment_name=settings.experiment_name,
            artifact_location=settings.artifact_location,
            ui_url=settings.ui.mlflow_ui_url,
            dagster_ui_url=settings.ui.dagster_ui_url,
        ),
        # dagster-mlflow: the Dagster run's parent MLflow run, on the experiment above.
        "mlflow_run": mlflow_parent_run,
    }
