"""Deployment settings, read from the environment once, at definitions load.

Everything that differs between the demo, CI and production is chosen here by environment
variables, never by editing code: which sources (replay or live APIs), which locations, the
partition date range, where files go and which training profile runs. Only the entry points
(``definitions.py``, the demo, scripts) call :meth:`Settings.from_env`; everything else is
handed a :class:`Settings` or the ``deployment`` resource built from it.

=============================  =====================================  ======================
variable                       meaning                                default
=============================  =====================================  ======================
``AIRQUALITY_DATA_DIR``        raw files, frames, tensors, MLflow     ``<project>/.data``
``AIRQUALITY_SOURCE``          ``replay`` (bundled data) or ``live``  ``replay``
``AIRQUALITY_LOCATIONS``       ``name:lat:lon`` comma-separated       the bundled station
``AIRQUALITY_START_DATE``      first day (its month is the first      2010-01-01 (replay)
                               partition, UTC)
``AIRQUALITY_END_DATE``        end of partitions, exclusive           2015-01-01 (replay)
``AIRQUALITY_REPLAY_NOW``      the replay source's clock (UTC)        2014-12-31T00:00:00Z
``AIRQUALITY_TARGETS``         target pollutants, comma-separated     ``pm2_5``
``AIRQUALITY_PROFILE``         training profile ``demo`` or ``full``  ``demo``
``AIRQUALITY_EXPERIMENT``      MLflow experiment name                 airquality-forecast
``AIRQUALITY_MODEL_NAME``      MLflow registered model name           airquality-lstm
``MLFLOW_TRACKING_URI``        MLflow tracking server                 SQLite in the data dir
``AIRQUALITY_STORAGE_URL``     raw bodies, frames, tensors, step      the data dir
                               outputs and MLflow artifacts on an
                               object store (``s3://bucket/prefix``)
``AIRQUALITY_EXECUTOR``        training steps: ``local`` processes   ``local``
                               or ``k8s`` (a pod per step)
``BENTOML_HOME``               BentoML model and bento store          ``<data dir>/bentoml``
``AIRQUALITY_MLFLOW_UI_URL``   MLflow UI that Dagster links point to  http://127.0.0.1:5000
``AIRQUALITY_DAGSTER_UI_URL``  Dagster UI for MLflow tags and alerts  http://127.0.0.1:3000
``AIRQUALITY_PUSHGATEWAY_URL`` Prometheus Pushgateway for metrics     none (metadata only)
``AIRQUALITY_ALERT_URLS``      Apprise URLs for check alerts          none (Dagster log only)
=============================  =====================================  ======================

Live clients and load tests (see :class:`ClientSettings`): ``OPENWEATHER_BASE_URL``,
``VISUAL_CROSSING_BASE_URL``, ``AIRQUALITY_HTTP_TIMEOUT_S``, ``AIRQUALITY_HTTP_MAX_RETRIES``,
``OPENWEATHER_MIN_INTERVAL_S``, ``VISUAL_CROSSING_DAILY_RECORD_BUDGET`` (``none``: no
budget), ``AIRQUALITY_CIRCUIT_BREAKER_FAILURES`` (0: off) and
``AIRQUALITY_REPLAY_LOCATIONS=N`` (the bundled station served under N location names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from airquality_assets.clock import REPLAY_DEFAULT_NOW, Clock, to_utc
from airquality_assets.ml.package import DEFAULT_MODEL_NAME
from airquality_assets.ml.tracking import default_artifact_location, default_tracking_uri
from airquality_assets.sources.base import Location
from airquality_assets.sources.replay import BEIJING, replay_locations

REPLAY_FIRST_DATE = date(2010, 1, 1)
REPLAY_END_DATE = date(2015, 1, 1)
PROFILES = ("demo", "full")
EXECUTORS = ("local", "k8s")


def project_root() -> Path:
    """The source checkout holding this package (where ``pyproject.toml`` lives)."""
    return Path(__file__).resolve().parent.parent


def parse_locations(text: str) -> list[Location]:
    """Parse ``"name:lat:lon,name:lat:lon"``; names become partition keys, so must be unique."""
    locations: list[Location] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            name, lat, lon = (piece.strip() for piece in item.split(":"))
            location = Location(name=name, latitude=float(lat), longitude=float(lon))
        except ValueError as exc:
            raise ValueError(
                f"AIRQUALITY_LOCATIONS item {item!r} is not 'name:latitude:longitude'"
            ) from exc
        if not -90 <= location.latitude <= 90 or not -180 <= location.longitude <= 180:
            raise ValueError(f"AIRQUALITY_LOCATIONS item {item!r} has coordinates out of range")
        locations.append(location)
    names = [loc.name for loc in locations]
    if not locations or len(set(names)) != len(names):
        raise ValueError(f"AIRQUALITY_LOCATIONS must list unique locations, got {text!r}")
    return locations


def format_locations(locations: list[Location]) -> str:
    """The inverse of :func:`parse_locations`."""
    return ",".join(f"{loc.name}:{loc.latitude}:{loc.longitude}" for loc in locations)


def _parse_date(text: str, variable: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{variable}={text!r} is not a YYYY-MM-DD date") from exc


OPENWEATHER_DEFAULT_BASE_URL = "https://api.openweathermap.org"
VISUAL_CROSSING_DEFAULT_BASE_URL = (
    "https://weather.visualcrossing.com/VisualCrossingWebServices/rest/services/timeline"
)


@dataclass(frozen=True)
class ClientSettings:
    """Where the live clients point and how hard they try (defaults: the public APIs on
    their free plans)."""

    openweather_base_url: str = OPENWEATHER_DEFAULT_BASE_URL
    visual_crossing_base_url: str = VISUAL_CROSSING_DEFAULT_BASE_URL
    timeout_s: float = 30.0
    max_retries: int = 4
    openweather_min_interval_s: float = 1.0  # free plan: 60 calls/minute
    visual_crossing_daily_records: int | None = 1000  # free plan
    circuit_breaker_failures: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientSettings:
        budget = env.get("VISUAL_CROSSING_DAILY_RECORD_BUDGET", "1000").strip().lower()
        return cls(
            openweather_base_url=env.get("OPENWEATHER_BASE_URL") or OPENWEATHER_DEFAULT_BASE_URL,
            visual_crossing_base_url=(
                env.get("VISUAL_CROSSING_BASE_URL") or VISUAL_CROSSING_DEFAULT_BASE_URL
            ),
            timeout_s=_number(env, "AIRQUALITY_HTTP_TIMEOUT_S", 30.0, float),
            max_retries=_number(env, "AIRQUALITY_HTTP_MAX_RETRIES", 4, int),
            openweather_min_interval_s=_number(env, "OPENWEATHER_MIN_INTERVAL_S", 1.0, float),
            visual_crossing_daily_records=(
                None
                if budget in {"none", ""}
                else _number(env, "VISUAL_CROSSING_DAILY_RECORD_BUDGET", 1000, int)
            ),
            circuit_breaker_failures=_number(env, "AIRQUALITY_CIRCUIT_BREAKER_FAILURES", 5, int),
        )


def _number(env: Mapping[str, str], variable: str, default, kind):
    text = env.get(variable, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError as exc:
        raise ValueError(f"{variable}={text!r} is not a {kind.__name__}") from exc
    if value < 0:
        raise ValueError(f"{variable}={text!r} must be >= 0")
    return value


def _locations_from_env(env: Mapping[str, str], source: str) -> list[Location]:
    text = env.get("AIRQUALITY_LOCATIONS", "")
    count = env.get("AIRQUALITY_REPLAY_LOCATIONS", "").strip()
    if count:
        if text or source != "replay":
            raise ValueError(
                "AIRQUALITY_REPLAY_LOCATIONS is a replay load-test mode: unset "
                "AIRQUALITY_LOCATIONS and use AIRQUALITY_SOURCE=replay"
            )
        return replay_locations(_number(env, "AIRQUALITY_REPLAY_LOCATIONS", 1, int))
    return parse_locations(text) if text else [BEIJING]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    source: str = "replay"
    locations: list[Location] = field(default_factory=lambda: [BEIJING])
    start_date: date = REPLAY_FIRST_DATE
    end_date: date | None = REPLAY_END_DATE
    replay_now: datetime = REPLAY_DEFAULT_NOW
    targets: list[str] = field(default_factory=lambda: ["pm2_5"])
    profile: str = "demo"
    experiment_name: str = "airquality-forecast"
    model_name: str = DEFAULT_MODEL_NAME
    #: None: SQLite under the data directory (:func:`ml.tracking.default_tracking_uri`).
    tracking_uri: str | None = None
    #: None: the BentoML store under the data directory.
    bentoml_home_dir: Path | None = None
    clients: ClientSettings = field(default_factory=ClientSettings)
    #: Base addresses of the two UIs, for the links between them (``ml.links``).
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"
    #: Prometheus Pushgateway; None: metrics only in asset metadata.
    pushgateway_url: str | None = None
    #: Apprise URLs for check alerts (the resource reads them again as an EnvVar: secrets).
    alert_urls: tuple[str, ...] = ()
    #: None: stored files under the data directory; else an object-store URL (s3://...).
    storage_url: str | None = None
    #: Where training steps run: "local" (in process / subprocesses) or "k8s" (a pod each).
    executor: str = "local"

    @property
    def location_names(self) -> list[str]:
        return [loc.name for loc in self.locations]

    def location(self, name: str) -> Location:
        for loc in self.locations:
            if loc.name == name:
                return loc
        raise KeyError(f"unknown location {name!r}; configured: {self.location_names}")

    @property
    def clock(self) -> Clock:
        """The configured source's clock: the replay instant, or the wall clock when live."""
        return Clock(replay_now=self.replay_now if self.source == "replay" else None)

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri(self.data_dir)

    @property
    def bentoml_home(self) -> Path:
        return self.bentoml_home_dir or self.data_dir / "bentoml"

    @property
    def storage_root(self) -> str:
        """Where the IO managers and the raw store keep files: the data dir or a URL."""
        return self.storage_url or str(self.data_dir)

    @property
    def artifact_location(self) -> str:
        """Root of the MLflow experiment's artifacts (under the storage URL if one is set)."""
        if self.storage_url:
            return f"{self.storage_url}/mlartifacts/{self.experiment_name}"
        return f"{default_artifact_location(self.data_dir)}/{self.experiment_name}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate the environment (``os.environ`` unless given); fails clearly."""
        env = os.environ if environ is None else environ
        source = env.get("AIRQUALITY_SOURCE", "replay").strip().lower()
        if source not in {"replay", "live"}:
            raise ValueError(f"AIRQUALITY_SOURCE must be 'replay' or 'live', got {source!r}")
        data_dir = Path(env.get("AIRQUALITY_DATA_DIR") or project_root() / ".data")
        default_end = REPLAY_END_DATE.isoformat() if source == "replay" else ""
        end_text = env.get("AIRQUALITY_END_DATE", default_end).strip()
        targets = [t.strip() for t in env.get("AIRQUALITY_TARGETS", "pm2_5").split(",")]
        profile = env.get("AIRQUALITY_PROFILE", "demo").strip()
        if profile not in PROFILES:
            raise ValueError(f"AIRQUALITY_PROFILE must be 'demo' or 'full', got {profile!r}")
        bentoml_home = env.get("BENTOML_HOME")
        storage_url = env.get("AIRQUALITY_STORAGE_URL", "").strip().rstrip("/")
        if storage_url and "://" not in storage_url:
            raise ValueError(
                f"AIRQUALITY_STORAGE_URL must be a URL such as s3://bucket/prefix, got "
                f"{storage_url!r} (a local directory is AIRQUALITY_DATA_DIR)"
            )
        executor = env.get("AIRQUALITY_EXECUTOR", "local").strip().lower()
        if executor not in EXECUTORS:
            raise ValueError(f"AIRQUALITY_EXECUTOR must be 'local' or 'k8s', got {executor!r}")
        return cls(
            data_dir=data_dir.resolve(),
            source=source,
            locations=_locations_from_env(env, source),
            start_date=_parse_date(
                env.get("AIRQUALITY_START_DATE", REPLAY_FIRST_DATE.isoformat()),
                "AIRQUALITY_START_DATE",
            ),
            end_date=_parse_date(end_text, "AIRQUALITY_END_DATE") if end_text else None,
            replay_now=to_utc(env.get("AIRQUALITY_REPLAY_NOW", REPLAY_DEFAULT_NOW.isoformat())),
            targets=[t for t in targets if t],
            profile=profile,
            experiment_name=env.get("AIRQUALITY_EXPERIMENT", "airquality-forecast"),
            model_name=env.get("AIRQUALITY_MODEL_NAME", DEFAULT_MODEL_NAME),
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            bentoml_home_dir=Path(bentoml_home) if bentoml_home else None,
            clients=ClientSettings.from_env(env),
            mlflow_ui_url=env.get("AIRQUALITY_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
            dagster_ui_url=env.get("AIRQUALITY_DAGSTER_UI_URL") or "http://127.0.0.1:3000",
            pushgateway_url=env.get("AIRQUALITY_PUSHGATEWAY_URL", "").strip() or None,
            alert_urls=tuple(
                u.strip() for u in env.get("AIRQUALITY_ALERT_URLS", "").split(",") if u.strip()
            ),
            storage_url=storage_url or None,
            executor=executor,
        )
