"""The service's settings: read from the environment once, at start-up, into one object.

``bento/service.py`` calls :meth:`ServiceConfig.from_env` once; everything else receives the
object. Only pydantic (and the standard library) is imported here, so the XLA flags it
decides can still be set before JAX loads.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from airquality_assets.ml.package import DEFAULT_MODEL_NAME
from airquality_assets.serving.request import MAX_LOCATIONS

#: Environment variable per field; the table in docs/serving.md lists the same.
ENV_NAMES: dict[str, str] = {
    "model_name": "AIRQUALITY_MODEL_NAME",
    "model_version": "AIRQUALITY_MODEL_VERSION",
    "api_token": "AIRQUALITY_API_TOKEN",
    "workers": "AIRQUALITY_WORKERS",
    "max_body_bytes": "AIRQUALITY_MAX_BODY_BYTES",
    "max_locations": "AIRQUALITY_MAX_LOCATIONS",
    "body_timeout_s": "AIRQUALITY_BODY_TIMEOUT_S",
    "batching": "AIRQUALITY_BATCHING",
    "xla_threads": "AIRQUALITY_XLA_THREADS",
    "access_log": "AIRQUALITY_ACCESS_LOG",
    "reload_poll_s": "AIRQUALITY_RELOAD_POLL_SECONDS",
}


class ConfigError(ValueError):
    """A setting the service refuses to start with; names the variable."""


class ServiceConfig(BaseModel):
    """Every knob of the service. ``api_token`` None means auth is off (logged at start)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1)
    model_version: str = Field("latest", min_length=1)
    api_token: SecretStr | None = None
    # One worker: on 2 shared cores one worker plus micro-batching beat 2 workers on p99.
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(1_000_000, ge=1_000)
    max_locations: int = Field(MAX_LOCATIONS, ge=1, le=1024)
    # A body not complete within this many seconds is the client's fault: 408, not a 504.
    body_timeout_s: float = Field(10.0, gt=0, le=25)
    batching: bool = True
    # XLA CPU threads per worker (0: XLA's default); workers x threads should fit the cores.
    xla_threads: int = Field(1, ge=0)
    access_log: bool = False
    # How often each worker checks the store for a newly promoted champion (0: never);
    # only when serving ":latest" (serving.reload).
    reload_poll_s: float = Field(15.0, ge=0)

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
        values = {field: env[name] for field, name in ENV_NAMES.items() if name in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_NAMES[str(e['loc'][0])]} {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigError(f"invalid service settings: {problems}") from None
