"""The service's settings: read from the environment once, at start-up, into one object.

``bento/service.py`` calls :meth:`ServiceConfig.from_env` once; everything else receives the
object. Each field declares its variable (:mod:`airquality_assets.envconfig`; the table is
``docs/reference/environment.md``). Only pydantic (and the standard library) is imported
here, so the XLA flags it decides can still be set before JAX loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from airquality_assets.envconfig import Problem, env_field, from_env
from airquality_assets.ml.package import DEFAULT_MODEL_NAME
from airquality_assets.serving.request import MAX_LOCATIONS

#: The one declaration of the model name, shared with the pipeline's settings (the same
#: variable names the model in MLflow and in the BentoML store).
ModelName = Annotated[
    str,
    env_field(
        env="AIRQUALITY_MODEL_NAME",
        help="MLflow registered model and BentoML model name (trained, promoted, served)",
        keep_blank=True,
        min_length=1,
    ),
]


def _field(default, **kwargs):
    """A service field: every set variable is validated as given, an empty one included
    (``AIRQUALITY_API_TOKEN=`` is refused rather than read as "auth off")."""
    return env_field(default, keep_blank=True, **kwargs)


class ConfigError(ValueError):
    """A setting the service refuses to start with; names the variable."""


class ServiceConfig(BaseModel):
    """Every knob of the service. ``api_token`` None means auth is off (logged at start)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_name: ModelName = DEFAULT_MODEL_NAME
    model_version: str = _field(
        "latest",
        env="AIRQUALITY_MODEL_VERSION",
        help="BentoML model version to serve",
        min_length=1,
    )
    api_token: SecretStr | None = _field(
        None,
        env="AIRQUALITY_API_TOKEN",
        help="bearer token for `/predict`, `/metadata` and `/forecast`; unset: auth off (logged "
        "at start)",
        default_doc="unset (auth off)",
    )
    # One worker: on 2 shared cores one worker plus micro-batching beat 2 workers on p99.
    workers: int = _field(1, env="AIRQUALITY_WORKERS", help="service workers", ge=1, le=64)
    max_body_bytes: int = _field(
        1_000_000, env="AIRQUALITY_MAX_BODY_BYTES", help="request body limit (413 above)", ge=1_000
    )
    max_locations: int = _field(
        MAX_LOCATIONS,
        env="AIRQUALITY_MAX_LOCATIONS",
        help="locations per request",
        ge=1,
        le=1024,
    )
    # A body not complete within this many seconds is the client's fault: 408, not a 504.
    body_timeout_s: float = _field(
        10.0,
        env="AIRQUALITY_BODY_TIMEOUT_S",
        help="seconds for a request body to arrive (408 after)",
        gt=0,
        le=25,
    )
    # uvicorn (as BentoML runs it) caps neither: a 4 MB header was accepted and slowloris
    # clients held connections forever (serving.http_limits).
    max_header_bytes: int = _field(
        16_384,
        env="AIRQUALITY_MAX_HEADER_BYTES",
        help="request line and headers limit (431 above, connection closed)",
        ge=1_024,
        le=1_048_576,
    )
    header_timeout_s: float = _field(
        10.0,
        env="AIRQUALITY_HEADER_TIMEOUT_S",
        help="seconds for a request's line and headers to arrive (408 after, connection closed)",
        gt=0,
        le=60,
    )
    batching: bool = _field(
        True,
        env="AIRQUALITY_BATCHING",
        help="merge concurrent requests into one forward pass",
    )
    # XLA CPU threads per worker (0: XLA's default); workers x threads should fit the cores.
    xla_threads: int = _field(
        1,
        env="AIRQUALITY_XLA_THREADS",
        help="XLA CPU threads per worker (0: XLA's default)",
        ge=0,
    )
    access_log: bool = _field(False, env="AIRQUALITY_ACCESS_LOG", help="BentoML access log")
    # How often each worker checks the store for a newly promoted champion (0: never);
    # only when serving ":latest" (serving.reload).
    reload_poll_s: float = _field(
        15.0,
        env="AIRQUALITY_RELOAD_POLL_SECONDS",
        help="seconds between checks for a newly promoted champion in the store (0: never; "
        "only when serving `latest`)",
        ge=0,
    )

    # The loop issues every hour (at :10, for the hour just past): a newest forecast older
    # than a few hours means it has stopped, and `GET /forecast` says so rather than
    # serving it as current.
    forecast_max_age_hours: float = _field(
        3.0,
        env="AIRQUALITY_FORECAST_MAX_AGE_HOURS",
        help="`GET /forecast` answers 503 when a location's newest stored forecast was issued "
        "more than this many hours before the deployment's clock",
        gt=0,
    )

    @field_validator("api_token")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "is set but empty: set a token to require it, or unset the variable to "
                "serve without authentication"
            )
        return value

    @property
    def model_tag(self) -> str:
        return f"{self.model_name}:{self.model_version}"

    @property
    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceConfig:
        """Build from ``AIRQUALITY_*`` variables; :class:`ConfigError` names the bad one."""
        return from_env(cls, env, _refusal)


def _refusal(problems: list[Problem]) -> ConfigError:
    listed = "; ".join(f"{p.env} {p.message}" if p.env else p.message for p in problems)
    return ConfigError(f"invalid service settings: {listed}")
