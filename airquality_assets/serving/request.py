"""The /predict contract: typed pydantic models built from the served model, bounded errors.

The request models are built at start-up from the model package's metadata (its features
decide which observation fields a request carries), so OpenAPI, the BentoML client and
validation all describe the model actually served, and a new champion with other features
needs no code change. Every field is bounded by :data:`airquality_assets.bounds.PHYSICAL_BOUNDS`.

A model that reads the weather forecast of its target hours (``future_feature_names`` in
its metadata) makes every location carry ``forecast`` too: the forecast weather of the
``max horizon`` hours after its last observation, one entry per hour (the hour after the
last observation first), with the raw fields those features derive from, bounded like the
observations. The service cannot fetch a forecast itself: the caller has one (the loop
reads the newest issued at or before the hour), and only the caller knows which.

Errors have one documented shape (``ErrorBody``)::

    {"error": "<first field>: <reason> (+N more)",
     "details": [{"field": "locations[0].observations[4].temp", "reason": "...", "code": "..."}],
     "problem_count": N, "truncated": false}

``code`` is pydantic's error type (``missing``, ``float_type``, ``less_than_equal``, ...) or
one of this module's (``unknown_field``, ``not_consecutive``, ``forecast_not_next``, ...);
``details`` lists at most :data:`MAX_DETAILS` problems. Validation stops at the first
invalid location and, inside it, at the first invalid observation or forecast hour (pydantic
``fail_fast``), and unknown keys are reported once per object: the cost of a hostile body
and the size of its answer stay bounded.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from airquality_assets.ml.package import ModelMetadata

MAX_DETAILS = 20
MAX_LOCATIONS = 64
MAX_LOCATION_NAME = 200
DEFAULT_LOCATION = "default"
_HOUR = timedelta(hours=1)
#: Fields that are 0 or 1 (precipitation seen or not), whatever their bounds allow between.
FLAG_FIELDS = ("is_rain", "is_snow")
#: A dew point above the temperature is physically impossible; stations round both, and the
#: bundled Visual Crossing hours hold one with dew 1.0 above temp, so up to this is kept.
DEW_ABOVE_TEMP_TOLERANCE = 1.0
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


def forecast_hours_for(horizons: Sequence[int]) -> int:
    """Hours of forecast weather a model reading one needs: its horizons must be ``1..H``.

    The forecast input is indexed by target hour (entry ``h-1`` is the hour ``h`` after the
    last observation), so a model with gaps in its horizons has no hour-by-hour contract.
    """
    hours = [int(h) for h in horizons]
    if not hours or hours != list(range(1, len(hours) + 1)):
        raise ValueError(
            f"a model reading the weather forecast must forecast hours 1..H, got {hours}"
        )
    return len(hours)


@dataclass(frozen=True)
class RequestSpec:
    """What a request must hold for one model: its raw fields, lookback and location cap,
    and for a model reading the weather forecast the forecast's raw fields and hours."""

    fields: tuple[str, ...]
    lookback: int
    max_locations: int = MAX_LOCATIONS
    forecast_fields: tuple[str, ...] = ()
    forecast_hours: int = 0  # 0: the model reads observations only

    @property
    def reads_forecast(self) -> bool:
        return self.forecast_hours > 0

    @classmethod
    def for_features(
        cls,
        feature_names: Sequence[str],
        lookback: int,
        max_locations: int = MAX_LOCATIONS,
        *,
        future_feature_names: Sequence[str] = (),
        horizons: Sequence[int] = (),
    ) -> RequestSpec:
        fields = tuple(required_fields(feature_names))
        forecast_fields = tuple(required_fields(future_feature_names))
        every = dict.fromkeys((*fields, *forecast_fields))
        unbounded = [f for f in every if f not in PHYSICAL_BOUNDS]
        if unbounded:
            raise ValueError(f"no physical bounds for model input field(s) {unbounded}")
        hours = forecast_hours_for(horizons) if future_feature_names else 0
        return cls(fields, lookback, max_locations, forecast_fields, hours)

    @classmethod
    def for_model(cls, metadata: ModelMetadata, max_locations: int = MAX_LOCATIONS) -> RequestSpec:
        """The contract of a model package's metadata (``feature_names``, ``lookback``,
        ``future_feature_names``, ``horizons``)."""
        return cls.for_features(
            metadata.feature_names,
            metadata.lookback,
            max_locations,
            future_feature_names=metadata.future_feature_names,
            horizons=metadata.horizons,
        )

    def describe(self) -> str:
        """One line for logs and refusals: what a request of this contract carries."""
        text = f"fields {list(self.fields)}, lookback {self.lookback}"
        if self.reads_forecast:
            text += f", forecast {list(self.forecast_fields)} for {self.forecast_hours} h"
        return text


@dataclass
class ValidatedRequest:
    """A request that passed validation, as arrays stacked in request order.

    ``columns`` maps each raw field to float64 values (``len(locations) * lookback``) and
    ``times`` holds the matching UTC hours as ``datetime64[s]``. For a model reading the
    weather forecast, ``forecast_columns``/``forecast_times`` hold the forecast hours the
    same way (``len(locations) * forecast_hours``); otherwise they are empty.
    """

    locations: list[str]
    times: np.ndarray
    columns: dict[str, np.ndarray]
    lookback: int
    last_times: list[datetime] = field(default_factory=list)
    forecast_times: np.ndarray = field(default_factory=lambda: np.empty(0, "M8[s]"))
    forecast_columns: dict[str, np.ndarray] = field(default_factory=dict)
    forecast_hours: int = 0


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


#: The one accepted spelling: ``YYYY-MM-DDTHH:MM:SS``, optional zero fraction, ``Z`` or
#: ``+00:00``. Pydantic alone also takes epoch numbers as strings, a space or a lower-case
#: ``t``/``z``, ``-00:00``, ``+0000`` and rounds nanoseconds away.
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be an ISO 8601 string")
    match = _STAMP.fullmatch(value)
    if match is None:
        raise PydanticCustomError(
            "time_format",
            "must be an ISO 8601 UTC time like 2014-12-30T00:00:00Z (upper-case T and Z, "
            "or +00:00)",
        )
    fraction, offset = match.groups()
    if offset not in ("Z", "+00:00"):  # "-00:00" means "offset unknown" (RFC 3339)
        raise PydanticCustomError("not_utc", "timestamp is not UTC; send 'Z' or '+00:00'")
    if fraction and fraction.strip(".0"):
        raise PydanticCustomError("not_on_the_hour", "timestamp is not on the whole hour")
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


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def example_body(spec: RequestSpec) -> dict[str, Any]:
    """A valid body of plausible constant values (the OpenAPI example, the model checks)."""
    start = datetime(2014, 12, 30)
    observation = {name: _typical(name) for name in spec.fields}
    location: dict[str, Any] = {
        "location": "beijing",
        "observations": [
            {TIME: _stamp(start + h * _HOUR), **observation} for h in range(spec.lookback)
        ],
    }
    if spec.reads_forecast:
        hour = {name: _typical(name) for name in spec.forecast_fields}
        first = start + spec.lookback * _HOUR
        location["forecast"] = [
            {TIME: _stamp(first + h * _HOUR), **hour} for h in range(spec.forecast_hours)
        ]
    return {"locations": [location]}


def _hourly(moments: Sequence[datetime], what: str) -> None:
    for i in range(1, len(moments)):
        if moments[i] - moments[i - 1] != _HOUR:
            raise PydanticCustomError(
                "not_consecutive",
                "{what}[{i}].time is {got}, expected {expected} (hourly, ascending)",
                {
                    "what": what,
                    "i": i,
                    "got": moments[i].isoformat(),
                    "expected": (moments[i - 1] + _HOUR).isoformat(),
                },
            )


def _bounded_fields(names: Iterable[str]) -> dict[str, Any]:
    return {
        name: (
            float,
            Field(strict=True, ge=PHYSICAL_BOUNDS[name][0], le=PHYSICAL_BOUNDS[name][1]),
        )
        for name in names
    }


def _hour_model(name: str, doc: str, fields: Sequence[str]) -> type[BaseModel]:
    """One hour's pydantic model: UTC ``time`` on the hour, then ``fields``, nothing else."""
    allowed = frozenset((TIME, *fields))

    def keys(data: Any) -> Any:
        _refuse_unknown(data, allowed)
        return data

    flags = [f for f in FLAG_FIELDS if f in fields]
    dew = "dew" in fields and "temp" in fields

    def plausible(hour: Any) -> Any:
        for flag in flags:
            if getattr(hour, flag) not in (0.0, 1.0):
                raise PydanticCustomError(
                    "not_a_flag",
                    "{flag} must be 0 or 1, got {got}",
                    {"flag": flag, "got": getattr(hour, flag)},
                )
        if dew and hour.dew > hour.temp + DEW_ABOVE_TEMP_TOLERANCE:
            raise PydanticCustomError(
                "dew_above_temp",
                "dew {dew} is above temp {temp}: a dew point cannot exceed the temperature",
                {"dew": hour.dew, "temp": hour.temp},
            )
        return hour

    return create_model(
        name,
        __config__=_CONFIG,
        __doc__=doc,
        __validators__={
            "keys": model_validator(mode="before")(staticmethod(keys)),
            "plausible": model_validator(mode="after")(plausible),
        },
        time=(UtcHour, ...),
        **_bounded_fields(fields),
    )


@functools.lru_cache(maxsize=8)
def request_model(spec: RequestSpec) -> type[BaseModel]:
    """The ``PredictRequest`` pydantic model for ``spec`` (cached: built once per model)."""
    observation = _hour_model(
        "Observation",
        "One hour at one location: UTC time on the hour, then the model's raw inputs.",
        spec.fields,
    )
    location_keys = frozenset(
        ("location", "observations", *(("forecast",) if spec.reads_forecast else ()))
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
            _refuse_unknown(data, location_keys)
            return data

        @model_validator(mode="after")
        def _consecutive(self) -> LocationObservations:
            _hourly([o.time for o in self.observations], "observations")
            forecast = getattr(self, "forecast", None)
            if forecast is not None:
                expected = self.observations[-1].time + _HOUR
                if forecast[0].time != expected:
                    raise PydanticCustomError(
                        "forecast_not_next",
                        "forecast[0].time is {got}, expected {expected} (the hour after the "
                        "last observation)",
                        {"got": forecast[0].time.isoformat(), "expected": expected.isoformat()},
                    )
                _hourly([f.time for f in forecast], "forecast")
            return self

    if spec.reads_forecast:
        forecast_hour = _hour_model(
            "ForecastHour",
            "One hour's weather forecast at one location: UTC time on the hour (a target "
            "hour), then the raw fields the model's forecast inputs derive from.",
            spec.forecast_fields,
        )
        LocationObservations = create_model(  # type: ignore[misc]
            "LocationObservations",
            __base__=LocationObservations,
            __doc__=(
                "The last ``lookback`` consecutive hours observed at one location, and the "
                "weather forecast of the next ``forecast_hours`` hours after the last one."
            ),
            forecast=(
                list[forecast_hour],  # type: ignore[valid-type]
                Field(
                    min_length=spec.forecast_hours,
                    max_length=spec.forecast_hours,
                    fail_fast=True,
                    description=(
                        f"The forecast weather of the {spec.forecast_hours} hours after the "
                        "last observation, hourly, the hour after it first"
                    ),
                ),
            ),
        )

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
                _refuse_unknown(data, location_keys)
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


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def _refuse_duplicate_keys(body: bytes) -> None:
    """JSON objects with a repeated key: refused, not silently read as the last value
    (pydantic's parser keeps the last; two readers of one body could disagree)."""
    try:
        json.loads(body, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        raise RequestError.one(
            422, "body", f"duplicate key {_quoted([exc.args[0]])} in a JSON object", "duplicate_key"
        ) from None
    except ValueError:  # pydantic accepted it, Python's parser did not (e.g. a lone surrogate)
        pass


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
    _refuse_duplicate_keys(body)  # only a body that validated pays for this second pass
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
    validated = ValidatedRequest(
        locations=[e.location for e in entries],
        times=(starts[:, None] + hours).ravel().astype("M8[s]"),
        columns=columns,
        lookback=spec.lookback,
        last_times=[e.observations[-1].time for e in entries],
    )
    if spec.reads_forecast:
        m = len(entries) * spec.forecast_hours
        validated.forecast_columns = {
            name: np.fromiter(
                (getattr(f, name) for e in entries for f in e.forecast), np.float64, m
            )
            for name in spec.forecast_fields
        }
        ahead = np.arange(1, spec.forecast_hours + 1).astype("m8[h]")
        validated.forecast_times = (starts[:, None] + hours[-1] + ahead).ravel().astype("M8[s]")
        validated.forecast_hours = spec.forecast_hours
    return validated


class PollutantForecast(BaseModel):
    values: list[float | None] = Field(description="ug/m3 per horizon, clipped at 0")
    aqi: list[int] | None = Field(description="OWM band 1-5 per horizon; null: no scale")
    lower: list[float | None] | None = Field(
        None, description="prediction interval's lower bound per horizon (ug/m3)"
    )
    upper: list[float | None] | None = Field(None, description="its upper bound per horizon")
    level: float | None = Field(None, description="the interval's nominal coverage, e.g. 0.8")


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
    future_feature_names: list[str] = Field(
        default_factory=list,
        description="the forecast inputs of each target hour; empty: observations only",
    )
    forecast_fields: list[str] = Field(
        default_factory=list, description="raw fields of each hour of a location's 'forecast'"
    )
    forecast_hours: int = Field(
        default=0, description="hours a location's 'forecast' holds; 0: none is read"
    )
