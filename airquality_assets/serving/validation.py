"""Parse and validate a /predict request body before anything reaches the model.

The service must never hand a malformed body to Keras/JAX (a wrong shape there is a 500 and
can poison a worker), so everything the model relies on is checked here, in plain Python,
and *every* problem is collected into one :class:`ValidationError` so a client fixes its
request in one round trip. This module knows nothing of BentoML or HTTP frameworks; it
only maps problems to status codes.

Body shapes accepted::

    {"locations": [{"location": "beijing", "observations": [{...}, ... lookback items]}]}
    {"location": "beijing", "observations": [...]}          # single location, name optional

Each observation holds ``time`` (ISO 8601, UTC, on the hour, consecutive) plus exactly the
raw observation fields the model's features need (see :func:`required_fields`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION, POLLUTANTS, TIME
from airquality_assets.transforms.features import CALENDAR_FEATURES, WIND_FEATURES

MAX_LOCATIONS = 64
MAX_BODY_BYTES = 1_000_000
DEFAULT_LOCATION = "default"

# Value ranges checked per field (inclusive). Concentrations use POLLUTANTS below.
_RANGES: dict[str, tuple[float, float]] = {
    "humidity": (0.0, 100.0),
    "windspeed": (0.0, math.inf),
    "winddir": (0.0, 360.0),
    "precip": (0.0, math.inf),
    "cloudcover": (0.0, 100.0),
    "is_rain": (0.0, 1.0),
    "is_snow": (0.0, 1.0),
}
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (a JSON-path-like field) and why.

    ``code`` is a short fixed category (``missing_field``, ``not_finite``, ...) used as a
    Prometheus label, where the free-text ``reason`` would explode cardinality.
    """

    field: str
    reason: str
    code: str = "invalid"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "code": self.code}


class ValidationError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with.

    ``field``/``reason`` describe the first problem (convenient for logs and simple
    clients); ``problems`` lists all of them.
    """

    def __init__(
        self,
        field: str,
        reason: str,
        status: int = 422,
        problems: Sequence[Problem] | None = None,
        code: str = "invalid",
    ) -> None:
        self.problems: list[Problem] = (
            list(problems) if problems else [Problem(field, reason, code)]
        )
        self.field = self.problems[0].field
        self.reason = self.problems[0].reason
        self.status = status
        extra = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.field}: {self.reason}{extra}")

    def to_body(self) -> dict[str, Any]:
        """JSON error body: ``{"error": ..., "details": [{"field", "reason"}, ...]}``."""
        return {"error": str(self), "details": [p.to_dict() for p in self.problems]}


@dataclass
class ValidatedRequest:
    """A request that passed validation: all locations' hours, stacked in request order.

    ``columns`` maps each raw field to a float64 array of ``len(locations) * lookback``
    values and ``times`` holds the matching UTC hours as ``datetime64[s]``. ``frame``
    builds the equivalent pandas frame (``location``, tz-aware ``time``, fields) for
    ``feature_matrix``; it is built lazily because pandas construction costs more than all
    of validation and the service's hot path does not need it.
    """

    locations: list[str]
    times: np.ndarray
    columns: dict[str, np.ndarray]
    lookback: int
    last_times: list[datetime] = field(default_factory=list)

    @property
    def frame(self) -> pd.DataFrame:
        data: dict[str, Any] = {
            LOCATION: np.repeat(np.asarray(self.locations, dtype=object), self.lookback),
            TIME: pd.DatetimeIndex(self.times).tz_localize("UTC"),
        }
        data.update(self.columns)
        return pd.DataFrame(data)


def required_fields(feature_names: Iterable[str]) -> list[str]:
    """Raw observation fields a request must carry for these model features.

    Calendar encodings come from ``time``; wind u/v from ``windspeed`` and ``winddir``;
    every other feature is an observation column of the same name.
    """
    fields: list[str] = []
    for name in feature_names:
        if name in CALENDAR_FEATURES:
            continue
        needed = ("windspeed", "winddir") if name in WIND_FEATURES else (name,)
        for column in needed:
            if column not in fields:
                fields.append(column)
    return fields


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, mapping every decoding failure to a 400 ``ValidationError``.

    The NaN/Infinity literals Python's json module accepts are decoded to floats and
    rejected later, per field, by :func:`validate_request` (so the message names the field).
    """
    if not body or not body.strip():
        raise ValidationError("body", "empty request body", 400, code="empty_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "body", f"not UTF-8: {exc.reason}", 400, code="malformed_json"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "body",
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            400,
            code="malformed_json",
        ) from None
    except RecursionError:
        raise ValidationError(
            "body", "JSON nested too deeply", 400, code="malformed_json"
        ) from None


def _parse_time(value: Any) -> tuple[datetime | None, str | None]:
    """Parse an ISO 8601 UTC timestamp on the whole hour; return (time, problem)."""
    if not isinstance(value, str):
        return None, f"must be an ISO 8601 string, got {type(value).__name__}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, f"not an ISO 8601 timestamp: {value[:40]!r}"
    offset = parsed.utcoffset()
    if offset is None:
        return None, f"timestamp {value!r} has no time zone; send UTC ('Z' or '+00:00')"
    if offset != timedelta(0):
        return None, f"timestamp {value!r} is not UTC; send UTC ('Z' or '+00:00')"
    if parsed.minute or parsed.second or parsed.microsecond:
        return None, f"timestamp {value!r} is not on the whole hour"
    return parsed.astimezone(UTC), None


_MISSING = object()


def _bounds(name: str) -> tuple[float, float]:
    """Inclusive accepted range for a numeric field (concentrations: non-negative)."""
    if name in POLLUTANTS:
        return 0.0, math.inf
    return _RANGES.get(name, (-math.inf, math.inf))


def _number_problem(name: str, value: Any) -> tuple[str, str]:
    """(reason, code) why ``value`` is not acceptable for ``name`` (called once it failed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {type(value).__name__}", "not_a_number"
    if isinstance(value, int) and abs(value) >= 1e300:
        return "number too large", "out_of_range"
    if not math.isfinite(value):
        return f"must be finite, got {value}", "not_finite"
    if name in POLLUTANTS and value < 0:
        return f"negative concentration {value} ug/m3", "negative_concentration"
    low, high = _bounds(name)
    return f"{value} outside [{low:g}, {high:g}]", "out_of_range"


def _validate_location(
    entry: Any,
    prefix: str,
    fields: Sequence[str],
    lookback: int,
    problems: list[Problem],
) -> tuple[list[datetime], dict[str, list[float]]] | None:
    """Check one location's observations; append problems; return parsed columns if clean."""
    start = len(problems)
    observations = entry.get("observations") if isinstance(entry, Mapping) else None
    obs_path = f"{prefix}observations"
    if observations is None:
        problems.append(
            Problem(obs_path, "missing; expected a list of hourly observations", "missing_field")
        )
        return None
    if not isinstance(observations, list):
        problems.append(
            Problem(obs_path, f"must be a list, got {type(observations).__name__}", "wrong_type")
        )
        return None
    if len(observations) != lookback:
        problems.append(
            Problem(
                obs_path,
                f"expected exactly {lookback} hourly observations, got {len(observations)}",
                "wrong_length",
            )
        )
        return None

    allowed = {TIME, *fields}
    bounds = [(name, *_bounds(name)) for name in fields]
    times: list[datetime | None] = []
    columns: dict[str, list[float]] = {name: [] for name in fields}
    for i, obs in enumerate(observations):
        path = f"{obs_path}[{i}]"
        if not isinstance(obs, Mapping):
            problems.append(
                Problem(path, f"must be an object, got {type(obs).__name__}", "wrong_type")
            )
            times.append(None)
            continue
        for key in obs.keys() - allowed:
            problems.append(Problem(f"{path}.{key}", "unknown field", "unknown_field"))
        if TIME in obs:
            parsed, why = _parse_time(obs[TIME])
            if why:
                problems.append(Problem(f"{path}.{TIME}", why, "bad_timestamp"))
            times.append(parsed)
        else:
            problems.append(Problem(f"{path}.{TIME}", "missing field", "missing_field"))
            times.append(None)
        for name, low, high in bounds:
            value = obs.get(name, _MISSING)
            kind = type(value)
            # Fast path (the common case): a finite float/int inside the field's range.
            # ``type() is`` deliberately excludes bool, a subclass of int.
            if (
                (kind is float or (kind is int and -1e300 < value < 1e300))
                and low <= value <= high
                and value - value == 0
            ):
                columns[name].append(float(value))
                continue
            if value is _MISSING:
                problems.append(Problem(f"{path}.{name}", "missing field", "missing_field"))
            else:
                problems.append(Problem(f"{path}.{name}", *_number_problem(name, value)))

    if all(t is not None for t in times):
        for i in range(1, len(times)):
            if times[i] - times[i - 1] != _HOUR:  # type: ignore[operator]
                problems.append(
                    Problem(
                        f"{obs_path}[{i}].{TIME}",
                        f"not consecutive: expected {(times[i - 1] + _HOUR).isoformat()}, "  # type: ignore[operator]
                        f"got {times[i].isoformat()}",  # type: ignore[union-attr]
                        "bad_timestamp",
                    )
                )
    if len(problems) > start:
        return None
    return times, columns  # type: ignore[return-value]


def validate_request(
    body: Any,
    feature_names: Sequence[str],
    lookback: int,
    *,
    max_locations: int = MAX_LOCATIONS,
) -> ValidatedRequest:
    """Validate a decoded JSON body; raise :class:`ValidationError` listing every problem."""
    if not isinstance(body, Mapping):
        raise ValidationError(
            "body", f"must be a JSON object, got {type(body).__name__}", 400, code="wrong_type"
        )
    if not body:
        raise ValidationError(
            "body", "empty object; expected 'locations' or 'observations'", code="empty_body"
        )

    if "locations" in body:
        unexpected = sorted(set(body) - {"locations"})
        entries = body["locations"]
        prefix_of = "locations[{}].".format
        if not isinstance(entries, list):
            raise ValidationError(
                "locations", f"must be a list, got {type(entries).__name__}", code="wrong_type"
            )
        if not entries:
            raise ValidationError(
                "locations", "empty list; send at least one location", code="empty_body"
            )
        if len(entries) > max_locations:
            raise ValidationError(
                "locations",
                f"too many locations: {len(entries)} > limit {max_locations}",
                code="too_many_locations",
            )
    elif "observations" in body:
        unexpected = sorted(set(body) - {"observations", LOCATION})
        entries = [body]
        prefix_of = "".format
    else:
        raise ValidationError(
            "body", "expected a 'locations' list or an 'observations' list", code="missing_field"
        )

    problems = [Problem(key, "unknown field", "unknown_field") for key in unexpected]
    fields = required_fields(feature_names)
    names: list[str] = []
    parsed: list[tuple[list[datetime], dict[str, list[float]]]] = []
    for index, entry in enumerate(entries):
        prefix = prefix_of(index)
        if not isinstance(entry, Mapping):
            problems.append(
                Problem(prefix.rstrip(".") or "body", "must be an object", "wrong_type")
            )
            continue
        for key in entry:
            if key not in ("location", "observations"):
                problems.append(Problem(f"{prefix}{key}", "unknown field", "unknown_field"))
        name = entry.get(LOCATION, DEFAULT_LOCATION if not prefix else f"location-{index}")
        if not isinstance(name, str) or not name or len(name) > 200:
            problems.append(
                Problem(f"{prefix}{LOCATION}", "must be a non-empty string", "wrong_type")
            )
        elif name in names:
            problems.append(
                Problem(f"{prefix}{LOCATION}", f"duplicate location {name!r}", "duplicate")
            )
        names.append(name if isinstance(name, str) else "")
        result = _validate_location(entry, prefix, fields, lookback, problems)
        if result is not None:
            parsed.append(result)
    if problems:
        raise ValidationError(problems[0].field, problems[0].reason, 422, problems)

    times = [t for loc_times, _ in parsed for t in loc_times]
    count = len(times)
    columns = {
        name: np.fromiter(
            (v for _, loc_columns in parsed for v in loc_columns[name]), np.float64, count
        )
        for name in fields
    }
    return ValidatedRequest(
        locations=names,
        times=np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[s]"),
        columns=columns,
        lookback=lookback,
        last_times=[loc_times[-1] for loc_times, _ in parsed],
    )
