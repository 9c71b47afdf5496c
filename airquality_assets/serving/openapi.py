"""The service's OpenAPI document as OpenAPI 3.0 that a validator accepts, stating the
rules the server enforces.

BentoML 1.4 declares ``openapi: 3.0.2`` but copies pydantic's JSON Schema (2020-12) into
it: ``{"type": "null"}`` in ``anyOf`` for optional fields, numeric ``exclusiveMinimum``,
integer response codes. :func:`as_openapi_30` rewrites those into their 3.0 spelling
(``nullable``, boolean exclusive bounds, string codes). :func:`state_rules` then writes
down what validation enforces beyond types and bounds: unknown keys refused
(``additionalProperties: false``), the one accepted timestamp spelling (a ``pattern``), the
0/1 flags, dew point against temperature, duplicate keys, and the size and time limits of
heads and bodies; and it lists ``GET /metadata`` beside the API method's ``POST``.
Pure functions on the JSON document: the service applies them to BentoML's spec.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: The accepted timestamp spelling (serving.request): whole hour, UTC, upper-case T and Z.
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:00:00(\.0{1,9})?(Z|\+00:00)$"
HOUR_SCHEMAS = ("Observation", "ForecastHour")
CLOSED_SCHEMAS = (*HOUR_SCHEMAS, "LocationObservations", "PredictInput")


def _null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {str(k): _convert(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and any(_null(o) for o in options):
            rest = [o for o in options if not _null(o)]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif len(rest) == 1:
                out["allOf"] = rest
            else:
                out[key] = rest
            out["nullable"] = True
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain], out[bound] = value, True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):  # a schema's examples: 3.0 has one example
        examples = out.pop("examples")
        if examples:
            out.setdefault("example", examples[0])
    return out


def as_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with JSON Schema 2020-12 constructs rewritten as OpenAPI 3.0 ones."""
    converted = _convert(document)
    converted["openapi"] = "3.0.3"
    return converted


@dataclass(frozen=True)
class Limits:
    """What the server enforces around a request's content (ServiceConfig, RequestSpec)."""

    max_body_bytes: int
    body_timeout_s: float
    max_header_bytes: int
    header_timeout_s: float
    max_locations: int
    dew_tolerance: float


def state_rules(document: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """``document`` (OpenAPI 3.0) with the server's rules written into schemas and text."""
    doc = copy.deepcopy(document)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in CLOSED_SCHEMAS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    for name in HOUR_SCHEMAS:
        hour = schemas.get(name)
        if hour is None:
            continue
        props = hour["properties"]
        props["time"] = {
            "type": "string",
            "format": "date-time",
            "pattern": TIME_PATTERN,
            "description": "UTC, on the whole hour, spelled YYYY-MM-DDTHH:00:00 then 'Z' or "
            "'+00:00' (a zero fraction allowed); other spellings, offsets or epoch numbers "
            "are refused (time_format, not_utc, not_on_the_hour)",
        }
        for flag in ("is_rain", "is_snow"):
            if flag in props:
                props[flag]["enum"] = [0, 1]
                props[flag]["description"] = "1: seen this hour, 0: not (not_a_flag otherwise)"
        if "dew" in props and "temp" in props:
            props["dew"]["description"] = (
                f"dew point, degrees C; more than {limits.dew_tolerance:g} above temp is "
                "refused (dew_above_temp)"
            )
    rules = (
        f"Bodies: JSON objects of at most {limits.max_body_bytes} bytes (413 above, checked "
        f"on Content-Length), complete within {limits.body_timeout_s:g} s (408), "
        f"Content-Type application/json (415); at most {limits.max_locations} locations, "
        "unique names; unknown keys and duplicate keys in any object are refused (422, "
        "unknown_field, duplicate_key). Request line and headers: at most "
        f"{limits.max_header_bytes} bytes (431) and complete within "
        f"{limits.header_timeout_s:g} s (408); the connection is closed after either. "
        "Every refusal has the ErrorBody shape."
    )
    info = doc.setdefault("info", {})
    info["description"] = (
        "Air-quality forecasts from the champion LSTM. " + rules + "\n\n" + "Swagger UI: /"
    )
    post = doc.get("paths", {}).get("/predict", {}).get("post")
    if post is not None:
        post["description"] = (post.get("description", "") + "\n\n" + rules).strip()
        error = {"content": {"application/json": {"schema": {"$ref": _ref("ErrorBody")}}}}
        post["responses"]["431"] = {"description": "Request line and headers too large", **error}
    metadata = doc.get("paths", {}).get("/metadata")
    if metadata is not None and "post" in metadata and "get" not in metadata:
        get = copy.deepcopy(metadata["post"])
        get.pop("requestBody", None)
        get["operationId"] = get.get("operationId", "metadata") + "_get"
        get["summary"] = "The served model (the same answer as POST)"
        metadata["get"] = get
    return doc


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"
