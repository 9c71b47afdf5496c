"""BentoML's JSON Schema 2020-12 spellings become OpenAPI 3.0; the server's rules are stated."""

from __future__ import annotations

import json
import re

from openapi_spec_validator import OpenAPIV30SpecValidator

from airquality_assets.serving.openapi import TIME_PATTERN, Limits, as_openapi_30, state_rules

LIMITS = Limits(1_000_000, 10.0, 16_384, 10.0, 64, 1.0)


def _doc() -> dict:
    number = {"type": "number"}
    hour = {
        "type": "object",
        "required": ["time", "dew", "temp", "is_rain"],
        "properties": {
            "time": {"type": "string", "format": "date-time"},
            "dew": number,
            "temp": number,
            "is_rain": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
    return {
        "openapi": "3.0.2",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/predict": {
                "post": {
                    "responses": {
                        200: {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Answer"}
                                }
                            },
                        }
                    }
                }
            },
            "/metadata": {"post": {"responses": {200: {"description": "ok"}}}},
        },
        "components": {
            "schemas": {
                "Observation": hour,
                "ErrorBody": {"type": "object"},
                "Answer": {
                    "type": "object",
                    "properties": {
                        "aqi": {"anyOf": [{"type": "array", "items": number}, {"type": "null"}]},
                        "model": {
                            "anyOf": [{"$ref": "#/components/schemas/ErrorBody"}, {"type": "null"}]
                        },
                        "age": {"type": "number", "exclusiveMinimum": 0},
                        "kind": {"const": "forecast"},
                    },
                },
            }
        },
    }


def test_the_raw_document_is_not_valid_30_and_the_converted_one_is() -> None:
    served = json.loads(json.dumps(_doc()))  # as /docs.json sends it today: codes as strings
    assert list(OpenAPIV30SpecValidator(served).iter_errors())  # 3.1 spellings: invalid
    converted = as_openapi_30(_doc())
    assert list(OpenAPIV30SpecValidator(converted).iter_errors()) == []
    answer = converted["components"]["schemas"]["Answer"]["properties"]
    assert answer["aqi"] == {"type": "array", "items": {"type": "number"}, "nullable": True}
    assert answer["model"] == {
        "allOf": [{"$ref": "#/components/schemas/ErrorBody"}],
        "nullable": True,
    }
    assert answer["age"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert answer["kind"] == {"enum": ["forecast"]}


def test_the_rules_are_stated_and_the_document_stays_valid() -> None:
    doc = state_rules(as_openapi_30(_doc()), LIMITS)
    assert list(OpenAPIV30SpecValidator(doc).iter_errors()) == []
    hour = doc["components"]["schemas"]["Observation"]
    assert hour["additionalProperties"] is False
    assert hour["properties"]["is_rain"]["enum"] == [0, 1]
    assert "dew_above_temp" in hour["properties"]["dew"]["description"]
    assert "get" in doc["paths"]["/metadata"]
    assert "431" in doc["paths"]["/predict"]["post"]["responses"]
    assert "16384 bytes (431)" in doc["info"]["description"]


def test_the_time_pattern_is_the_parser_rule() -> None:
    accepted = ["2014-12-30T04:00:00Z", "2014-12-30T04:00:00+00:00", "2014-12-30T04:00:00.000Z"]
    refused = [
        "1419912000",
        "2014-12-30T04:00:00-00:00",
        "2014-12-30T04:00:00+0000",
        "2014-12-30 04:00:00Z",
        "2014-12-30t04:00:00z",
        "2014-12-30T04:00:00.000000001Z",
        "2014-12-30T04:15:00Z",
    ]
    assert all(re.fullmatch(TIME_PATTERN, s) for s in accepted)
    assert not any(re.fullmatch(TIME_PATTERN, s) for s in refused)
