"""The /predict contract: typed pydantic models built from the served model, bounded errors.

The request models are built at start-up from the model package's metadata (its features
decide which observation fields a request carries), so OpenAPI, the BentoML client and
validation all describe the model actually served, and a new champion with other features
needs no code change. Every field is bounded by :data:`airquality_assets.bounds.PHYSICAL_BOUNDS`.

Errors have one documented shape (``ErrorBody``)::

    {"error": "<first field>: <reason> (+N more)",
     "details": [{"field": "locations[0].observations[4].temp", "reason": "...", "code": "..."}],
     "problem_count": N, "truncated": false}

``code`` is pydantic's error type (``missing``, ``float_type``, ``less_than_equal``, ...) or
one of this module's (``unknown_field``, ``not_consecutive``, ...); ``details`` lists at most
:data:`MAX_DETAILS` problems. Validation stops at the first invalid location and, inside it,
at the first invalid observation (pydantic ``fail_fast``), and unknown keys are reported once
per object: the cost of a hostile body and the size of its answer stay bounded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from airquality_assets.bounds import PHYSICAL_BOUNDS, TIME_BOUNDS
from airquality_assets.columns import TIME
from airquality_assets.transforms.features import CALENDAR_FEATURES, WIND_FEATURES

MAX_DETAILS = 20
MAX_LOCATIONS = 64
MAX_LOCATION_NAME = 200
DEFAULT_LOCATION = "default"
_HOUR = timedelta(hours=1)
_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (a JSON path) and why."""

    field: str
    reason: str
    code: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "code": self.code}


class RequestError(Exception):
    """A refused request: HTTP status, the first :data:`MAX_DETAILS` problems and the count."""

    def __init__(self, status: int, problems: Sequence[Problem], count: int | None = None):
        self.status = status
        self.problems = list(problems[:MAX_DETAILS])
        self.count = max(count or 0, len(problems))
        first = self.problems[0]
        more = f" (+{self.count - 1} more)" if self.count > 1 else ""
        super().__init__(f"{first.field}: {first.reason}{more}")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses the validation process boundary
        return (RequestError, (self.status, self.problems, self.count))

    @classmethod
    def one(cls, status: int, field: str, reason: str, code: str) -> RequestError:
        return cls(status, [Problem(field, reason, code)])

    def to_body(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "details": [p.to_dict() for p in self.problems],
            "problem_count": self.count,
            "truncated": self.count > len(self.problems),
        }


class ProblemOut(BaseModel):
    field: str
    reason: str
    code: str


class ErrorBody(BaseModel):
    """Every 4xx answer of /predict and /metadata."""

    error: str
    details: list[ProblemOut]
    problem_count: int
    truncated: bool


def required_fields(feature_names: Iterable[str]) -> list[str]:
    """Raw observation fields a request carries for these model features.

    Calendar encodings come from ``time``; wind u/v from ``windspeed`` and ``winddir``;
    every other feature is an observation column of the same name.
    """
    fields: list[str] = []
    for name in feature_names:
        if name in CALENDAR_FEATURES:
            continue
        for column in ("windspeed", "winddir") if name in WIND_FEATURES else (name,):
            if column not in fields:
                fields.append(column)
    return fields


@dataclass(frozen=True)
class RequestSpec:
    """What a request must hold for one model: its raw fields, lookback and location cap."""

    fields: tuple[str, ...]
    lookback: int
    max_locations: int = MAX_LOCATIONS

    @classmethod
    def for_features(
        cls, feature_names: Sequence[str], lookback: int, max_locations: int = MAX_LOCATIONS
    ) -> RequestSpec:
        fields = tuple(required_fields(feature_names))
        unbounded = [f for f in fields if f not in PHYSICAL_BOUNDS]
        if unbounded:
            raise ValueError(f"no physical bounds for model input field(s) {unbounded}")
        return cls(fields, lookback, max_locations)


@dataclass
class ValidatedRequest:
    """A request that passed validation, as arrays stacked in request order.

    ``columns`` maps each raw field to float64 values (``len(locations) * lookback``) and
    ``times`` holds the matching UTC hours as ``datetime64[s]``.
    """

    locations: list[str]
    times: np.ndarray
    columns: dict[str, np.ndarray]
    lookback: int
    last_times: list[datetime] = field(default_factory=list)


def _quoted(keys: Iterable[Any], limit: int = 3) -> str:
    """Client-supplied keys, JSON-escaped (no lone surrogates reach a log or a response)."""
    keys = list(keys)
    shown = ", ".join(json.dumps(str(k)[:40]) for k in keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _refuse_unknown(data: Any, allowed: frozenset[str]) -> None:
    if isinstance(data, dict) and not allowed.issuperset(data):
        unknown = [k for k in data if k not in allowed]
        raise PydanticCustomError(
            "unknown_field",
            "unknown field(s) {keys}; expected {expected}",
            {"keys": _quoted(unknown), "expected": ", ".join(sorted(allowed))},
        )


def _utc_hour(value: datetime) -> datetime:
    if value.utcoffset() != timedelta(0):
        raise PydanticCustomError("not_utc", "timestamp is not UTC; send 'Z' or '+00:00'")
    if value.minute or value.second or value.microsecond:
        raise PydanticCustomError("not_on_the_hour", "timestamp is not on the whole hour")
    low, high = TIME_BOUNDS
    if not low <= value < high:
        raise PydanticCustomError(
            "out_of_range",
            "timestamp outside [{low}, {high})",
            {"low": low.isoformat(), "high": high.isoformat()},
        )
    return value


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be an ISO 8601 string")
    return value


UtcHour = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_utc_hour)]


def _typical(name: str) -> float:
    """A plausible value for the OpenAPI example (middle of the range if not listed)."""
    typical = {
        "temp": 5.0,
        "dew": -5.0,
        "humidity": 50.0,
        "pressure": 1015.0,
        "winddir": 270.0,
        "is_rain": 0.0,
        "is_snow": 0.0,
    }
    low, high = PHYSICAL_BOUNDS[name]
    return typical.get(name, low + min(high - low, 100.0) * 0.2)


def example_body(spec: RequestSpec) -> dict[str, Any]:
    start = datetime(2014, 12, 30)
    observation = {name: _typical(name) for name in spec.fields}
    return {
        "locations": [
            {
                "location": "beijing",
                "observations": [
                    {TIME: (start + h * _HOUR).strftime("%Y-%m-%dT%H:%M:%SZ"), **observation}
                    for h in range(spec.lookback)
                ],
            }
        ]
    }


@functools.lru_cache(maxsize=8)
def request_model(spec: RequestSpec) -> type[BaseModel]:
    """The ``PredictRequest`` pydantic model for ``spec`` (cached: built once per model)."""
    obs_allowed = frozenset((TIME, *spec.fields))

    def observation_keys(data: Any) -> Any:
        _refuse_unknown(data, obs_allowed)
        return data

    bounded = {
        name: (
            float,
            Field(strict=True, ge=PHYSICAL_BOUNDS[name][0], le=PHYSICAL_BOUNDS[name][1]),
        )
        for name in spec.fields
    }
    observation = create_model(
        "Observation",
        __config__=_CONFIG,
        __doc__="One hour at one location: UTC time on the hour, then the model's raw inputs.",
        __validators__={"keys": model_validator(mode="before")(staticmethod(observation_keys))},
        time=(UtcHour, ...),
        **bounded,
    )

    class LocationObservations(BaseModel):
        """The last ``lookback`` consecutive hours observed at one location."""

        model_config = _CONFIG
        location: str = Field(min_length=1, max_length=MAX_LOCATION_NAME)
        observations: list[observation] = Field(  # type: ignore[valid-type]
            min_length=spec.lookback, max_length=spec.lookback, fail_fast=True
        )

        @model_validator(mode="before")
        @classmethod
        def _keys(cls, data: Any) -> Any:
            _refuse_unknown(data, frozenset(("location", "observations")))
            return data

        @model_validator(mode="after")
        def _consecutive(self) -> LocationObservations:
            times = [o.time for o in self.observations]
            for i in range(1, len(times)):
                if times[i] - times[i - 1] != _HOUR:
                    raise PydanticCustomError(
                        "not_consecutive",
                        "observations[{i}].time is {got}, expected {expected} (hourly, ascending)",
                        {
                            "i": i,
                            "got": times[i].isoformat(),
                            "expected": (times[i - 1] + _HOUR).isoformat(),
                        },
                    )
            return self

    class PredictRequest(BaseModel):
        """Locations to forecast, each with its last ``lookback`` consecutive UTC hours.

        One location may also be sent as ``{"location": ..., "observations": [...]}``.
        """

        model_config = ConfigDict(**_CONFIG, json_schema_extra={"example": example_body(spec)})
        locations: list[LocationObservations] = Field(
            min_length=1, max_length=spec.max_locations, fail_fast=True
        )

        @model_validator(mode="before")
        @classmethod
        def _shape(cls, data: Any) -> Any:
            if isinstance(data, dict) and "locations" not in data and "observations" in data:
                _refuse_unknown(data, frozenset(("location", "observations")))
                single = {"location": data.get("location", DEFAULT_LOCATION), **data}
                return {"locations": [single]}
            if isinstance(data, dict) and not data:
                raise PydanticCustomError("missing", "empty object; expected 'locations'")
            _refuse_unknown(data, frozenset(("locations",)))
            return data

        @model_validator(mode="after")
        def _unique(self) -> PredictRequest:
            seen: set[str] = set()
            for entry in self.locations:
                if entry.location in seen:
                    raise PydanticCustomError(
                        "duplicate_location",
                        "duplicate location {name}",
                        {"name": _quoted([entry.location])},
                    )
                seen.add(entry.location)
            return self

    return PredictRequest


def _path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _problems(exc: ValidationError) -> RequestError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    problems = [Problem(_path(e["loc"]), e["msg"], e["type"]) for e in errors[:MAX_DETAILS]]
    syntax = errors[0]["type"] == "json_invalid" or (
        not errors[0]["loc"] and errors[0]["type"] == "model_type"
    )
    return RequestError(400 if syntax else 422, problems, exc.error_count())


def parse_request(body: bytes, spec: RequestSpec) -> ValidatedRequest:
    """Decode and validate a /predict body; raise :class:`RequestError` (400/422) if bad.

    400: not JSON, or not a JSON object; 422: a JSON object that breaks the contract.
    """
    if not body.strip():
        raise RequestError.one(400, "body", "empty request body", "empty_body")
    try:
        request = request_model(spec).model_validate_json(body)
    except ValidationError as exc:
        raise _problems(exc) from None
    entries = request.locations  # type: ignore[attr-defined]
    n = len(entries) * spec.lookback
    columns = {
        name: np.fromiter(
            (getattr(o, name) for e in entries for o in e.observations), np.float64, n
        )
        for name in spec.fields
    }
    starts = np.array([e.observations[0].time.replace(tzinfo=None) for e in entries], "M8[s]")
    hours = np.arange(spec.lookback).astype("m8[h]")
    return ValidatedRequest(
        locations=[e.location for e in entries],
        times=(starts[:, None] + hours).ravel().astype("M8[s]"),
        columns=columns,
        lookback=spec.lookback,
        last_times=[e.observations[-1].time for e in entries],
    )


class PollutantForecast(BaseModel):
    values: list[float | None] = Field(description="ug/m3 per horizon, clipped at 0")
    aqi: list[int] | None = Field(description="OWM band 1-5 per horizon; null: no scale")


class LocationForecast(BaseModel):
    location: str
    last_observation: str
    horizons: list[int]
    times: list[str]
    pollutants: dict[str, PollutantForecast]
    aqi: list[int] | None = Field(description="worst band across pollutants per horizon")


class ModelRef(BaseModel):
    name: str
    version: str


class Forecasts(BaseModel):
    """The /predict answer."""

    model_config = ConfigDict(protected_namespaces=())
    model: ModelRef
    units: str
    forecasts: list[LocationForecast]


class ServedModel(BaseModel):
    """The /metadata answer: what is served and what a request must carry."""

    model_config = ConfigDict(protected_namespaces=())
    model_name: str
    model_version: str
    bentoml_model: str
    training_window: dict[str, str]
    feature_names: list[str]
    required_fields: list[str]
    target_pollutants: list[str]
    lookback: int
    horizons: list[int]
    max_locations: int
    test_metrics: dict[str, Any]
