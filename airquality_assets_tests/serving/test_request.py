"""The /predict contract without a server: parsing, bounds, bounded errors, the models."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airquality_assets.bounds import PHYSICAL_BOUNDS
from airquality_assets.serving.request import (
    MAX_DETAILS,
    RequestError,
    RequestSpec,
    example_body,
    parse_request,
    request_model,
    required_fields,
)
from airquality_assets.transforms.features import default_feature_names, feature_matrix

from .conftest import LOOKBACK, TARGETS, make_body

SPEC = RequestSpec.for_features(default_feature_names(list(TARGETS)), LOOKBACK)


def refused(body: Any) -> RequestError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RequestError) as info:
        parse_request(raw, SPEC)
    return info.value


def with_value(field: str, value: Any, index: int = 4) -> dict[str, Any]:
    body = make_body(("beijing", "delhi"))
    body["locations"][1]["observations"][index][field] = value
    return body


def test_valid_body_becomes_arrays_in_request_order() -> None:
    body = make_body(("beijing", "delhi"))
    request = parse_request(json.dumps(body).encode(), SPEC)
    assert request.locations == ["beijing", "delhi"]
    assert request.times.dtype == np.dtype("M8[s]") and len(request.times) == 2 * LOOKBACK
    assert str(request.times[LOOKBACK]) == "2014-12-30T00:00:00"
    temps = [o["temp"] for entry in body["locations"] for o in entry["observations"]]
    np.testing.assert_array_equal(request.columns["temp"], temps)
    assert [t.isoformat() for t in request.last_times] == ["2014-12-30T23:00:00+00:00"] * 2


def test_single_location_shape_is_accepted() -> None:
    observations = make_body()["locations"][0]["observations"]
    request = parse_request(json.dumps({"observations": observations}).encode(), SPEC)
    assert request.locations == ["default"]


@pytest.mark.parametrize(
    ("body", "status", "field", "code"),
    [
        (b"", 400, "body", "empty_body"),
        (b'{"locations": [', 400, "body", "json_invalid"),
        (b"[[1, 2], [3]]", 400, "body", "model_type"),
        (b"{}", 422, "body", "missing"),
        (b"\xff\xfe", 400, "body", "json_invalid"),
        (b'{"locations": [{"location": "\\ud800"}]}', 400, "body", "json_invalid"),
        (b'{"\\udc00": 1}', 400, "body", "json_invalid"),
        (b'{"locations": NaN}', 422, "locations", "list_type"),
    ],
)
def test_malformed_documents(body: bytes, status: int, field: str, code: str) -> None:
    error = refused(body)
    assert (error.status, error.problems[0].field, error.problems[0].code) == (status, field, code)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("temp", "high", "float_type"),
        ("temp", True, "float_type"),
        ("pm2_5", -4.0, "greater_than_equal"),
        ("pm2_5", 1e6, "less_than_equal"),  # plausibility: was forecast before
        ("pm10", 3.5e38, "less_than_equal"),  # float32 overflow values
        ("pm10", 1e39, "less_than_equal"),
        ("dew", 1e308, "less_than_equal"),
        ("dew", -1e308, "greater_than_equal"),
        ("humidity", 140.0, "less_than_equal"),
        ("time", "9999-12-31T23:00:00Z", "out_of_range"),  # its answer overflowed: a 500
        ("time", "2014-12-30T04:00:00", "timezone_aware"),
        ("time", "2014-12-30T04:00:00+01:00", "not_utc"),
        ("time", "2014-12-30T04:15:00Z", "not_on_the_hour"),
        ("time", "30/12/2014 04:00", "datetime_from_date_parsing"),
        ("time", 1419912000, "string_type"),
    ],
)
def test_every_field_is_typed_and_bounded(field: str, value: Any, code: str) -> None:
    error = refused(with_value(field, value))
    assert error.status == 422
    assert error.problems[0].field == f"locations[1].observations[4].{field}"
    assert error.problems[0].code == code


def test_json_non_finite_literals_are_refused_per_field() -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        raw = json.dumps(with_value("dew", 1234.5)).encode().replace(b"1234.5", literal)
        error = refused(raw)
        assert error.problems[0].field == "locations[1].observations[4].dew", literal
        assert error.problems[0].code in ("finite_number", "less_than_equal"), literal


def test_structure_problems() -> None:
    body = make_body(("beijing", "delhi"))
    body["locations"][0]["observations"] = body["locations"][0]["observations"][:23]
    assert refused(body).problems[0].code == "too_short"
    missing = with_value("temp", None)
    del missing["locations"][1]["observations"][4]["temp"]
    assert refused(missing).problems[0].field == "locations[1].observations[4].temp"
    unknown = refused(with_value("ozone", 1.0)).problems[0]
    assert (unknown.field, unknown.code) == ("locations[1].observations[4]", "unknown_field")
    assert '"ozone"' in unknown.reason
    gap = refused(with_value("time", "2014-12-30T09:00:00Z")).problems[0]
    assert (gap.field, gap.code) == ("locations[1]", "not_consecutive")
    twice = refused(make_body(("beijing", "beijing"))).problems[0]
    assert twice.code == "duplicate_location"
    assert refused(make_body(tuple(f"c{i}" for i in range(65)))).problems[0].code == "too_long"


def test_error_body_is_bounded_and_escapes_client_text() -> None:
    junk = {f"k\udc00{i}" if i == 0 else f"k{i}": 1 for i in range(60_000)}
    raw = json.dumps(junk).encode()  # ensure_ascii: a valid JSON escape, lone surrogate key
    assert len(raw) > 700_000
    error = refused(raw)
    rendered = json.dumps(error.to_body(), ensure_ascii=True)
    assert len(rendered) < 2_000
    many_bad = make_body(tuple(f"c{i}" for i in range(64)))
    for entry in many_bad["locations"]:
        for observation in entry["observations"]:
            observation.update({name: "x" for name in SPEC.fields})
    error = refused(many_bad)
    body = error.to_body()
    assert len(body["details"]) <= MAX_DETAILS
    assert body["problem_count"] == error.count >= len(body["details"])
    assert body["truncated"] == (error.count > len(body["details"]))
    assert body["error"].startswith(body["details"][0]["field"])


def test_request_error_survives_the_process_boundary() -> None:
    error = refused(with_value("temp", "x"))
    again = pickle.loads(pickle.dumps(error))
    assert (again.status, again.to_body()) == (error.status, error.to_body())


def test_schema_bounds_every_field_from_the_one_definition() -> None:
    schema = request_model(SPEC).model_json_schema()
    observation = schema["$defs"]["Observation"]["properties"]
    assert set(observation) == {"time", *SPEC.fields}
    for name in SPEC.fields:
        assert (observation[name]["minimum"], observation[name]["maximum"]) == PHYSICAL_BOUNDS[name]
    assert schema["properties"]["locations"]["maxItems"] == SPEC.max_locations
    parse_request(json.dumps(example_body(SPEC)).encode(), SPEC)  # the OpenAPI example is valid


def test_required_fields_and_unbounded_features() -> None:
    assert required_fields(["pm2_5", "wind_u", "wind_v", "hour_sin"]) == [
        "pm2_5",
        "windspeed",
        "winddir",
    ]
    with pytest.raises(ValueError, match="no physical bounds"):
        RequestSpec.for_features(["pm2_5", "mystery"], LOOKBACK)


def test_serving_features_match_training_features() -> None:
    """The service's arrays give exactly the features training computes from a frame."""
    body = make_body(("beijing", "delhi"))
    request = parse_request(json.dumps(body).encode(), SPEC)
    names = default_feature_names(list(TARGETS))
    from airquality_assets.transforms.features import feature_array

    frame = pd.DataFrame([o for e in body["locations"] for o in e["observations"]])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    expected = feature_matrix(frame, names)
    np.testing.assert_array_equal(feature_array(request.times, request.columns, names), expected)
    calm = copy.deepcopy(body)
    calm["locations"][0]["observations"][0]["windspeed"] = 0.0
    request = parse_request(json.dumps(calm).encode(), SPEC)
    row = feature_array(request.times, request.columns, names)[0]
    assert row[names.index("wind_u")] == 0.0 and row[names.index("wind_v")] == 0.0
