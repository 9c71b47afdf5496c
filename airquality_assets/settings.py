"""Deployment settings, read from the environment once, at definitions load.

Everything that differs between the demo, CI and production is chosen here by environment
variables, never by editing code: which sources (replay or live APIs), which locations, the
partition date range, where files go and which training profile runs. Only the entry points
(``definitions.py``, the demo, scripts) call :meth:`Settings.from_env`; everything else is
handed a :class:`Settings` or the ``deployment`` resource built from it.

Each field declares its variable, default and meaning (:mod:`airquality_assets.envconfig`);
the table generated from those declarations, with the service's, is
``docs/reference/environment.md`` (``python -m airquality_assets.settings --markdown``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

from airquality_assets.clock import REPLAY_DEFAULT_NOW, Clock, to_utc
from airquality_assets.envconfig import (
    Problem,
    declared,
    env_field,
    from_env,
    markdown_table,
    secret_paths,
)
from airquality_assets.ml.package import DEFAULT_MODEL_NAME
from airquality_assets.ml.tracking import default_artifact_location, default_tracking_uri
from airquality_assets.serving.config import ModelName, ServiceConfig
from airquality_assets.sources.base import Location
from airquality_assets.sources.replay import BEIJING, replay_locations

REPLAY_FIRST_DATE = date(2010, 1, 1)
REPLAY_END_DATE = date(2015, 1, 1)
PROFILES = ("demo", "full")
EXECUTORS = ("local", "k8s")
SPLITS = ("recent", "fixed")

#: Secrets the live resources read as Dagster ``EnvVar``s at run time: never parsed into
#: settings, config or logs. Listed here so the reference table names them.
OPENWEATHER_API_KEY = "OPENWEATHER_API_KEY"
VISUAL_CROSSING_API_KEY = "VISUAL_CROSSING_API_KEY"
SECRET_VARIABLES: dict[str, str] = {
    OPENWEATHER_API_KEY: "OpenWeatherMap key (live source)",
    VISUAL_CROSSING_API_KEY: "Visual Crossing key (live source)",
}


def project_root() -> Path:
    """The source checkout holding this package (where ``pyproject.toml`` lives)."""
    return Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Where files go when ``AIRQUALITY_DATA_DIR`` is unset: the one place that says so."""
    return project_root() / ".data"


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


def _date(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError("is not a YYYY-MM-DD date") from exc
    return value


def _number(kind: type) -> BeforeValidator:
    """A non-negative ``kind`` (a count, a number of seconds), from text or a value."""

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError as exc:
                noun = "whole number" if kind is int else "number"
                raise ValueError(f"is not a {noun}") from exc
        if isinstance(value, int | float) and value < 0:
            raise ValueError("must be >= 0")
        return value

    return BeforeValidator(parse)


def _choice(name: str, choices: tuple[str, ...]) -> BeforeValidator:
    def parse(value: Any) -> Any:
        value = str(value).strip().lower()
        if value not in choices:
            allowed = " or ".join(repr(c) for c in choices)
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
        return value

    return BeforeValidator(parse)


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


NonNegativeInt = Annotated[int, _number(int)]
NonNegativeFloat = Annotated[float, _number(float)]
Date = Annotated[date, BeforeValidator(_date)]
OptionalDate = Annotated[date | None, BeforeValidator(_date)]
Csv = Annotated[list[str], BeforeValidator(_csv)]

OPENWEATHER_DEFAULT_BASE_URL = "https://api.openweathermap.org"
VISUAL_CROSSING_DEFAULT_BASE_URL = (
    "https://weather.visualcrossing.com/VisualCrossingWebServices/rest/services/timeline"
)

_FROZEN = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class ClientSettings(BaseModel):
    """Where the live clients point and how hard they try (defaults: the public APIs on
    their free plans)."""

    model_config = _FROZEN

    openweather_base_url: str = env_field(
        OPENWEATHER_DEFAULT_BASE_URL,
        env="OPENWEATHER_BASE_URL",
        help="OpenWeatherMap API base (a stub server in load tests)",
    )
    visual_crossing_base_url: str = env_field(
        VISUAL_CROSSING_DEFAULT_BASE_URL,
        env="VISUAL_CROSSING_BASE_URL",
        help="Visual Crossing Timeline API base",
    )
    timeout_s: NonNegativeFloat = env_field(
        30.0, env="AIRQUALITY_HTTP_TIMEOUT_S", help="seconds per live request (> 0)"
    )
    max_retries: NonNegativeInt = env_field(
        4,
        env="AIRQUALITY_HTTP_MAX_RETRIES",
        help="retries of 429/5xx, transport errors and bad 200 bodies, per request",
    )
    openweather_min_interval_s: NonNegativeFloat = env_field(
        1.0,
        env="OPENWEATHER_MIN_INTERVAL_S",
        help="seconds between OpenWeatherMap calls (free plan: 60 calls/minute)",
    )
    visual_crossing_daily_records: NonNegativeInt | None = env_field(
        1000,
        env="VISUAL_CROSSING_DAILY_RECORD_BUDGET",
        help="Visual Crossing records per day (free plan: 1000); `none` or empty: no budget",
        keep_blank=True,
    )
    circuit_breaker_failures: NonNegativeInt = env_field(
        5,
        env="AIRQUALITY_CIRCUIT_BREAKER_FAILURES",
        help="consecutive failed pulls of one source after which a step stops (0: never)",
    )

    @field_validator("visual_crossing_daily_records", mode="before")
    @classmethod
    def _no_budget(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", ""}:
            return None
        return value

    @field_validator("timeout_s")
    @classmethod
    def _some_time(cls, value: float) -> float:
        if value <= 0:  # requests would refuse it only when the first request is sent
            raise ValueError("must be > 0")
        return value


class UiLinks(BaseModel):
    """Base addresses of the two UIs, for the links between them (``ml.links``)."""

    model_config = _FROZEN

    mlflow_ui_url: str = env_field(
        "http://127.0.0.1:5000",
        env="AIRQUALITY_MLFLOW_UI_URL",
        help="the MLflow UI that Dagster's metadata links open",
    )
    dagster_ui_url: str = env_field(
        "http://127.0.0.1:3000",
        env="AIRQUALITY_DAGSTER_UI_URL",
        help="the Dagster UI that MLflow's `dagster.*_url` tags and check alerts point to",
    )


class OpsSettings(BaseModel):
    """Where the operating loop reports to."""

    model_config = _FROZEN

    pushgateway_url: str | None = env_field(
        None,
        env="AIRQUALITY_PUSHGATEWAY_URL",
        help="Prometheus Pushgateway for pipeline metrics; unset: metrics only in asset metadata",
    )
    #: Apprise URLs carry tokens: validated here, handed to resources as an ``EnvVar``.
    alert_urls: tuple[str, ...] = env_field(
        (),
        env="AIRQUALITY_ALERT_URLS",
        help="Apprise URLs for check alerts, comma-separated (a secret: read again at run "
        "time); unset: the Dagster log only",
        secret=True,
    )
    subscriber_alert_urls: tuple[str, ...] = env_field(
        (),
        env="AIRQUALITY_SUBSCRIBER_ALERT_URLS",
        help="Apprise URLs of the people subscribed to high-pollution alerts, comma-separated "
        "(a secret, apart from the operators' `AIRQUALITY_ALERT_URLS`); unset: the log only",
        secret=True,
    )
    pollution_alert_band: Annotated[int, _number(int)] = env_field(
        4,
        env="AIRQUALITY_POLLUTION_ALERT_BAND",
        help="OWM AQI band (1-5) a location's latest forecast must reach within 24 h to "
        "alert subscribers (4: Poor)",
    )

    @field_validator("pushgateway_url", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("pollution_alert_band")
    @classmethod
    def _band(cls, value: int) -> int:
        if not 1 <= value <= 5:
            raise ValueError("must be an OWM AQI band, 1-5")
        return value

    @field_validator("alert_urls", "subscriber_alert_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return tuple(_csv(value)) if isinstance(value, str) else value


class Settings(BaseModel):
    """One deployment: every field below, and nothing else, says how it runs."""

    model_config = _FROZEN

    data_dir: Path = env_field(
        env="AIRQUALITY_DATA_DIR",
        help="raw files, frames, tensors, MLflow and the BentoML store",
        default_factory=default_data_dir,
        default_doc="`<project>/.data`",
    )
    source: Annotated[str, _choice("AIRQUALITY_SOURCE", ("replay", "live"))] = env_field(
        "replay",
        env="AIRQUALITY_SOURCE",
        help="`replay` (the bundled Beijing data) or `live` (OpenWeatherMap + Visual Crossing)",
    )
    locations: list[Location] = env_field(
        env="AIRQUALITY_LOCATIONS",
        help="`name:lat:lon`, comma-separated; the names are partition keys",
        default_factory=lambda: [BEIJING],
        default_doc=f"`{format_locations([BEIJING])}`",
    )
    replay_locations: NonNegativeInt = env_field(
        0,
        env="AIRQUALITY_REPLAY_LOCATIONS",
        help="load-test mode: the bundled station served under N names `beijing-001`.. "
        "(replay only, not with `AIRQUALITY_LOCATIONS`); 0: off",
    )
    start_date: Date = env_field(
        REPLAY_FIRST_DATE,
        env="AIRQUALITY_START_DATE",
        help="first day (its month is the first partition, UTC)",
    )
    end_date: OptionalDate = env_field(
        REPLAY_END_DATE,
        env="AIRQUALITY_END_DATE",
        help="end of the partitions, exclusive; empty: none (up to today)",
        keep_blank=True,
        default_doc=f"`{REPLAY_END_DATE}` (replay); none (live)",
    )
    forecasts_start_date: OptionalDate = env_field(
        None,
        env="AIRQUALITY_FORECASTS_START_DATE",
        help="first day of the `forecasts` partitions (the loop's issue days; days before "
        "it could issue none would show as missing); empty: the day before the replay "
        "clock's (replay), `AIRQUALITY_START_DATE` (live)",
        keep_blank=True,
        default_doc="empty",
    )
    replay_now: datetime = env_field(
        REPLAY_DEFAULT_NOW,
        env="AIRQUALITY_REPLAY_NOW",
        help="the replay source's clock (UTC; a run can override it, see `deployment`)",
        default_doc=f"`{REPLAY_DEFAULT_NOW:%Y-%m-%dT%H:%M:%SZ}`",
    )
    forecast_issue_hours: Annotated[int, _number(int)] = env_field(
        6,
        env="AIRQUALITY_FORECAST_ISSUE_HOURS",
        help="hours between weather-forecast issues, counted from 00 UTC (a divisor of 24; "
        "6: 00/06/12/18 UTC, the cycles of the big weather models)",
    )
    forecast_error_scale: NonNegativeFloat = env_field(
        1.0,
        env="AIRQUALITY_FORECAST_ERROR_SCALE",
        help="replay: the stand-in forecasts' error as a multiple of the measured figures "
        "(0: forecasts equal the observations, the perfect-forecast bound)",
    )
    targets: Csv = env_field(
        env="AIRQUALITY_TARGETS",
        help="target pollutants, comma-separated",
        default_factory=lambda: ["pm2_5"],
    )
    interval_level: NonNegativeFloat = env_field(
        0.8,
        env="AIRQUALITY_INTERVAL_LEVEL",
        help="nominal coverage of the prediction intervals calibrated at training time "
        "(split conformal on validation residuals), between 0 and 1",
    )
    split: Annotated[str, _choice("AIRQUALITY_SPLIT", SPLITS)] = env_field(
        "recent",
        env="AIRQUALITY_SPLIT",
        help="`recent`: test = the last `AIRQUALITY_TEST_DAYS` days up to the clock, "
        "validation the 60 before, training everything earlier (moves with the clock); "
        "`fixed`: train 2010-2012, validation 2013, test 2014 onward (the bundled data's "
        "headline comparison; a run's `train_end`/`validation_end` config moves the dates)",
    )
    test_days: Annotated[int, _number(int)] = env_field(
        90,
        env="AIRQUALITY_TEST_DAYS",
        help="the `recent` split's test window in days, capped at a fifth of the data's "
        "span: long enough to tell models apart (a month of hourly windows rarely is)",
    )
    profile: Annotated[str, _choice("AIRQUALITY_PROFILE", PROFILES)] = env_field(
        "demo",
        env="AIRQUALITY_PROFILE",
        help="training grid: `demo` (a few small candidates) or `full` (a run can override it)",
    )
    executor: Annotated[str, _choice("AIRQUALITY_EXECUTOR", EXECUTORS)] = env_field(
        "local",
        env="AIRQUALITY_EXECUTOR",
        help="where training steps run: `local` processes or `k8s` (a pod per step)",
    )
    experiment_name: str = env_field(
        "airquality-forecast", env="AIRQUALITY_EXPERIMENT", help="MLflow experiment name"
    )
    model_name: ModelName = DEFAULT_MODEL_NAME
    #: None: SQLite under the data directory (:func:`ml.tracking.default_tracking_uri`).
    tracking_uri: str | None = env_field(
        None,
        env="MLFLOW_TRACKING_URI",
        help="MLflow tracking server",
        default_doc="SQLite in the data dir",
    )
    #: None: the BentoML store under the data directory.
    bentoml_home_dir: Path | None = env_field(
        None,
        env="BENTOML_HOME",
        help="BentoML model and bento store",
        default_doc="`<data dir>/bentoml`",
    )
    #: None: stored files under the data directory; else an object-store URL (s3://...).
    storage_url: str | None = env_field(
        None,
        env="AIRQUALITY_STORAGE_URL",
        help="an object store (`s3://bucket/prefix`) for raw bodies, frames, tensors, "
        "forecasts, step outputs and MLflow artifacts",
        default_doc="the data dir",
    )
    raw_history_keep: NonNegativeInt = env_field(
        12,
        env="AIRQUALITY_RAW_HISTORY_KEEP",
        help="superseded pulls kept per raw partition (month, location) under its "
        "`.history/` folder, newest first; a kept pull can be restored "
        "(`python -m airquality_assets.programs.restore_pull`); 0: none kept",
    )
    clients: ClientSettings = ClientSettings()
    ui: UiLinks = UiLinks()
    ops: OpsSettings = OpsSettings()

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("forecast_issue_hours")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if value < 1 or 24 % value:
            raise ValueError("must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)")
        return value

    @field_validator("interval_level")
    @classmethod
    def _a_level(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("must be between 0 and 1 (0.8: an 80 % interval)")
        return value

    @field_validator("test_days")
    @classmethod
    def _some_days(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("replay_now", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return to_utc(value.strip() if isinstance(value, str) else value)

    @field_validator("storage_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        url = value.strip().rstrip("/")
        if url and "://" not in url:
            raise ValueError(
                f"must be a URL such as s3://bucket/prefix, got {url!r} (a local directory "
                "is AIRQUALITY_DATA_DIR)"
            )
        return url or None

    @model_validator(mode="before")
    @classmethod
    def _source_defaults(cls, data: Any) -> Any:
        """A live deployment has no default end (its partitions run up to today), and the
        load-test mode names its locations."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        source = str(data.get("source", "replay")).strip().lower()
        if source == "live" and "end_date" not in data:
            data["end_date"] = None
        try:
            count = int(str(data.get("replay_locations") or 0).strip())
        except ValueError:
            return data  # the field's own validation names the variable
        if count > 0 and "locations" not in data:
            data["locations"] = replay_locations(count)
        return data

    @model_validator(mode="after")
    def _load_test_mode(self) -> Settings:
        if self.replay_locations and (
            self.source != "replay" or self.locations != replay_locations(self.replay_locations)
        ):
            raise ValueError(
                "AIRQUALITY_REPLAY_LOCATIONS is a replay load-test mode: unset "
                "AIRQUALITY_LOCATIONS and use AIRQUALITY_SOURCE=replay"
            )
        return self

    @field_validator("locations", mode="before")
    @classmethod
    def _parse_locations(cls, value: Any) -> Any:
        return parse_locations(value) if isinstance(value, str) else value

    @property
    def location_names(self) -> list[str]:
        return [loc.name for loc in self.locations]

    def location(self, name: str) -> Location:
        for loc in self.locations:
            if loc.name == name:
                return loc
        raise KeyError(f"unknown location {name!r}; configured: {self.location_names}")

    @property
    def forecasts_start(self) -> date:
        """The first issue day of the loop's ``forecasts`` partitions: a replay deployment's
        loop starts at its clock (the demo issues the day before it), so earlier days are
        not a wall of partitions that can never be issued."""
        if self.forecasts_start_date is not None:
            return self.forecasts_start_date
        if self.source == "replay":
            return max(self.start_date, (self.replay_now - timedelta(days=1)).date())
        return self.start_date

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
        """Where every stored file goes (IO managers, raw store, forecasts, checks): the one
        place that chooses between the data dir and the storage URL."""
        return self.storage_url or str(self.data_dir)

    @property
    def reports_dir(self) -> Path:
        """Local scratch for report images before they are logged to MLflow."""
        return self.data_dir / "reports"

    @property
    def artifact_location(self) -> str:
        """Root of the MLflow experiment's artifacts (under the storage URL if one is set)."""
        if self.storage_url:
            return f"{self.storage_url}/mlartifacts/{self.experiment_name}"
        return f"{default_artifact_location(self.data_dir)}/{self.experiment_name}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like the original (e.g. a moved clock)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def to_config(self) -> str:
        """Everything but the secrets, as JSON: what the ``deployment`` resource carries."""
        exclude: dict[str, Any] = {}
        for path in secret_paths(type(self)):
            node = exclude
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = True
        return self.model_dump_json(exclude=exclude)

    @classmethod
    def from_config(cls, text: str, **secrets: Any) -> Settings:
        """The inverse of :meth:`to_config`; ``secrets`` are sections' secret values, e.g.
        ``ops={"alert_urls": (...)}``."""
        data = cls.model_validate_json(text).model_dump()
        for section, values in secrets.items():
            data[section] = {**data[section], **values}
        return cls.model_validate(data)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate the environment (``os.environ`` unless given); fails clearly."""
        return from_env(cls, os.environ if environ is None else environ, _refusal)


def _refusal(problems: list[Problem]) -> ValueError:
    def say(problem: Problem) -> str:
        if problem.env is None or problem.message.startswith(problem.env):
            return problem.message
        return f"{problem.env}={problem.text!r} {problem.message}"

    return ValueError("; ".join(say(p) for p in problems))


def reference_markdown() -> str:
    """``docs/reference/environment.md``, generated from the declarations above."""
    shared = {d.env for d in declared(ServiceConfig)} & {d.env for d in declared(Settings)}
    pipeline = {env: "the pipeline" for env in shared}
    service = {env: "the service" for env in shared}
    secrets = "\n".join(
        f"| `{name}` | - | {meaning} |" for name, meaning in SECRET_VARIABLES.items()
    )
    return f"""# Environment variables

<!-- Generated by `python -m airquality_assets.settings --markdown` from the field
declarations in airquality_assets/settings.py and airquality_assets/serving/config.py;
edit those, then regenerate (a test compares this file with them). -->

Every setting is an environment variable, read once: by the Dagster definitions when they
load (`Settings` in `airquality_assets/settings.py`, handed to every resource) and by the
model service when it starts (`ServiceConfig` in `airquality_assets/serving/config.py`, and
`Settings` for where the loop stores forecasts and its clock, for `GET /forecast`).
For the pipeline an empty value counts as unset unless its meaning says otherwise; the
service refuses an empty value. `<project>` is the source checkout.

## Deployment

{markdown_table(Settings, service, section=Settings)}

## Live clients

{markdown_table(Settings, service, section=ClientSettings)}

## Links between the UIs

{markdown_table(Settings, service, section=UiLinks)}

## Operations

{markdown_table(Settings, service, section=OpsSettings)}

## Secrets

Read by the live resources at run time as Dagster `EnvVar`s; never in settings, run config
or logs.

| variable | default | meaning |
|---|---|---|
{secrets}

## Model service (`bento/service.py`)

{markdown_table(ServiceConfig, pipeline)}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--markdown", action="store_true", help="print docs/reference/environment.md"
    )
    parser.add_argument("--get", metavar="FIELD", help="print one parsed value (e.g. data_dir)")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(reference_markdown())
    elif args.get:
        value = getattr(Settings.from_env(), args.get)
        sys.stdout.write(f"{value}\n")
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
