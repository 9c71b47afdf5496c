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
    Problem,
    RequestError,
    RequestSpec,
    example_body,
    parse_request,
    request_model,
    required_fields,
)
from airquality_assets.transforms.features import default_feature_names, feature_matrix
from airquality_assets.transforms.forecast_inputs import future_feature_names

from .conftest import (
    FORECAST_FIELDS,
    FORECAST_HOURS,
    FORECAST_TARGETS,
    LOOKBACK,
    TARGETS,
    make_body,
    make_forecast_body,
)

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
        ("time", "2014-12-30T04:00:00", "time_format"),
        ("time", "2014-12-30T04:00:00+01:00", "not_utc"),
        ("time", "2014-12-30T04:15:00Z", "not_on_the_hour"),
        ("time", "30/12/2014 04:00", "time_format"),
        ("time", 1419912000, "string_type"),
        # accepted by pydantic's own parser, not by the documented format
        ("time", "1419912000", "time_format"),  # epoch seconds as a string
        ("time", "1419912000000", "time_format"),  # epoch milliseconds
        ("time", "2014-12-30T04:00:00-00:00", "not_utc"),  # RFC 3339: offset unknown
        ("time", "2014-12-30T04:00:00+0000", "time_format"),
        ("time", "2014-12-30 04:00:00Z", "time_format"),
        ("time", "2014-12-30t04:00:00Z", "time_format"),
        ("time", "2014-12-30T04:00:00z", "time_format"),
        ("time", "2014-12-30T04:00Z", "time_format"),
        ("time", "2014-12-30T04:00:00.000000001Z", "not_on_the_hour"),  # 1 ns off the hour
        ("time", "2014-12-30T04:00:00.5+00:00", "not_on_the_hour"),
    ],
)
def test_every_field_is_typed_and_bounded(field: str, value: Any, code: str) -> None:
    error = refused(with_value(field, value))
    assert error.status == 422
    assert error.problems[0].field == f"locations[1].observations[4].{field}"
    assert error.problems[0].code == code


@pytest.mark.parametrize(
    "stamp", ["2014-12-30T04:00:00Z", "2014-12-30T04:00:00+00:00", "2014-12-30T04:00:00.000Z"]
)
def test_the_documented_timestamps_are_accepted(stamp: str) -> None:
    body = make_body(("beijing",))
    for h, hour in enumerate(body["locations"][0]["observations"]):
        hour["time"] = stamp.replace("T04", f"T{h:02d}").replace("12-30", "12-29")
    request = parse_request(json.dumps(body).encode(), SPEC)
    assert str(request.times[4]) == "2014-12-29T04:00:00"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("is_rain", 0.5, "not_a_flag"),
        ("is_snow", 0.25, "not_a_flag"),
        ("dew", 60.0, "dew_above_temp"),  # the fixture's temp is at most 30
    ],
)
def test_implausible_hours_are_refused(field: str, value: Any, code: str) -> None:
    error = refused(with_value(field, value))
    assert (error.status, error.problems[0].code) == (422, code)
    assert error.problems[0].field == "locations[1].observations[4]"
    assert field in error.problems[0].reason


def test_dew_a_rounding_step_above_temp_is_kept_more_is_refused() -> None:
    body = with_value("temp", 10.0)
    body["locations"][1]["observations"][4]["dew"] = 11.0  # the bundled data holds one such
    parse_request(json.dumps(body).encode(), SPEC)
    body["locations"][1]["observations"][4]["dew"] = 11.5
    error = refused(body)
    assert (error.status, error.problems[0].code) == (422, "dew_above_temp")
    assert error.problems[0].field == "locations[1].observations[4]"
    assert "11.5" in error.problems[0].reason and "10.0" in error.problems[0].reason


def test_duplicate_keys_are_refused_not_read_as_the_last() -> None:
    body = json.dumps(make_body(("beijing",)))
    first = body.index('"pm10"')
    doubled = body[:first] + '"pm10": 1.0, ' + body[first:]  # same object, key twice
    error = refused(doubled.encode())
    assert (error.status, error.problems[0].code) == (422, "duplicate_key")
    assert '"pm10"' in error.problems[0].reason
    top = refused(b'{"locations": [], ' + body[1:].encode())
    assert top.problems[0].code == "duplicate_key"


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


# --- A model that reads the weather forecast of its target hours -------------------------

FORECAST_SPEC = RequestSpec.for_features(
    default_feature_names(list(FORECAST_TARGETS)),
    LOOKBACK,
    future_feature_names=future_feature_names(),
    horizons=range(1, FORECAST_HOURS + 1),
)


def refused_forecast(body: Any) -> Problem:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RequestError) as info:
        parse_request(raw, FORECAST_SPEC)
    assert info.value.status == 422
    return info.value.problems[0]


def with_forecast_value(field: str, value: Any, index: int = 3) -> dict[str, Any]:
    body = make_forecast_body(("beijing", "delhi"))
    body["locations"][1]["forecast"][index][field] = value
    return body


def test_the_forecast_contract_follows_the_model() -> None:
    assert FORECAST_SPEC.forecast_fields == FORECAST_FIELDS
    assert FORECAST_SPEC.forecast_hours == FORECAST_HOURS and FORECAST_SPEC.reads_forecast
    assert not SPEC.reads_forecast and SPEC.forecast_fields == ()
    with pytest.raises(ValueError, match=r"hours 1\.\.H"):  # the block is indexed by hour
        RequestSpec.for_features(
            ["pm2_5"], LOOKBACK, future_feature_names=["temp"], horizons=[1, 2, 6]
        )
    with pytest.raises(ValueError, match="no physical bounds"):
        RequestSpec.for_features(
            ["pm2_5"], LOOKBACK, future_feature_names=["mystery"], horizons=[1]
        )


def test_a_valid_forecast_becomes_arrays_of_the_target_hours() -> None:
    body = make_forecast_body(("beijing", "delhi"))
    request = parse_request(json.dumps(body).encode(), FORECAST_SPEC)
    assert request.forecast_hours == FORECAST_HOURS
    assert len(request.forecast_times) == 2 * FORECAST_HOURS
    # the hour after the last observation (2014-12-30T23:00) first, per location
    assert str(request.forecast_times[0]) == "2014-12-31T00:00:00"
    assert str(request.forecast_times[FORECAST_HOURS]) == "2014-12-31T00:00:00"
    assert str(request.forecast_times[-1]) == f"2014-12-31T0{FORECAST_HOURS - 1}:00:00"
    assert set(request.forecast_columns) == set(FORECAST_FIELDS)
    winds = [f["winddir"] for entry in body["locations"] for f in entry["forecast"]]
    np.testing.assert_array_equal(request.forecast_columns["winddir"], winds)
    single = body["locations"][0]
    one = parse_request(json.dumps({k: single[k] for k in single if k != "location"}).encode(),
                        FORECAST_SPEC)  # fmt: skip
    assert one.locations == ["default"] and one.forecast_hours == FORECAST_HOURS
    # an observation-only model's contract is what it was: a forecast is an unknown field
    plain = make_body()
    plain["locations"][0]["forecast"] = body["locations"][0]["forecast"]
    problem = refused(plain).problems[0]
    assert (problem.field, problem.code) == ("locations[0]", "unknown_field")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("temp", "warm", "float_type"),
        ("temp", False, "float_type"),
        ("temp", None, "float_type"),
        ("humidity", 140.0, "less_than_equal"),
        ("humidity", -1.0, "greater_than_equal"),
        ("winddir", 361.0, "less_than_equal"),
        ("windspeed", -0.5, "greater_than_equal"),
        ("pressure", 1e308, "less_than_equal"),
        ("dew", -1e308, "greater_than_equal"),
        ("time", "2014-12-31T03:00:00", "time_format"),
        ("time", "2014-12-31T03:30:00Z", "not_on_the_hour"),
        ("time", "9999-12-31T23:00:00Z", "out_of_range"),
    ],
)
def test_every_forecast_field_is_typed_and_bounded(field: str, value: Any, code: str) -> None:
    problem = refused_forecast(with_forecast_value(field, value))
    assert (problem.field, problem.code) == (f"locations[1].forecast[3].{field}", code)


def test_forecast_structure_problems() -> None:
    body = make_forecast_body(("beijing", "delhi"))
    missing = copy.deepcopy(body)
    del missing["locations"][1]["forecast"]
    assert (refused_forecast(missing).field, refused_forecast(missing).code) == (
        "locations[1].forecast",
        "missing",
    )
    for hours, code in ((FORECAST_HOURS - 1, "too_short"), (FORECAST_HOURS + 1, "too_long")):
        wrong = copy.deepcopy(body)
        start = wrong["locations"][0]["forecast"][0]
        wrong["locations"][0]["forecast"] = [
            {**start, "time": f"2014-12-31T{h:02d}:00:00Z"} for h in range(hours)
        ]
        assert refused_forecast(wrong).code == code, hours
    not_a_list = copy.deepcopy(body)
    not_a_list["locations"][0]["forecast"] = {"time": "2014-12-31T00:00:00Z"}
    assert refused_forecast(not_a_list).code == "list_type"
    gap = refused_forecast(with_forecast_value("time", "2014-12-31T05:00:00Z"))
    assert (gap.field, gap.code) == ("locations[1]", "not_consecutive")
    assert "forecast[3].time" in gap.reason
    no_field = with_forecast_value("winddir", 0.0)
    del no_field["locations"][1]["forecast"][3]["winddir"]
    assert refused_forecast(no_field).field == "locations[1].forecast[3].winddir"
    for extra in ("pm2_5", "precip", "issue_time"):  # only what the model's inputs derive from
        unknown = refused_forecast(with_forecast_value(extra, 1.0))
        assert (unknown.field, unknown.code) == ("locations[1].forecast[3]", "unknown_field")
        assert f'"{extra}"' in unknown.reason
    typo = copy.deepcopy(body)
    typo["locations"][0]["forecasts"] = typo["locations"][0].pop("forecast")
    assert refused_forecast(typo).code == "unknown_field"


def shifted(body: dict[str, Any], hours: int) -> dict[str, Any]:
    """``body`` with its first location's forecast moved by ``hours`` (still hourly)."""
    moved = copy.deepcopy(body)
    for entry in moved["locations"][0]["forecast"]:
        at = pd.Timestamp(entry["time"]) + pd.Timedelta(hours=hours)
        entry["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moved


@pytest.mark.parametrize("hours", [-1, 1, -LOOKBACK, 24 * 365])
def test_a_forecast_must_start_the_hour_after_the_last_observation(hours: int) -> None:
    problem = refused_forecast(shifted(make_forecast_body(), hours))
    assert (problem.field, problem.code) == ("locations[0]", "forecast_not_next")
    assert "2014-12-31T00:00:00+00:00" in problem.reason  # what was expected


def test_hostile_forecasts_get_bounded_answers() -> None:
    body = make_forecast_body()
    hour = body["locations"][0]["forecast"][0]
    flood = copy.deepcopy(body)
    flood["locations"][0]["forecast"] = [hour] * 100_000
    raw = json.dumps(flood).encode()
    with pytest.raises(RequestError) as flooded:
        parse_request(raw, FORECAST_SPEC)
    error = flooded.value
    assert error.problems[0].code == "too_long" and len(json.dumps(error.to_body())) < 2_000
    junk = copy.deepcopy(body)
    junk["locations"][0]["forecast"][0].update({f"k{i}": 1 for i in range(60_000)})
    with pytest.raises(RequestError) as error:
        parse_request(json.dumps(junk).encode(), FORECAST_SPEC)
    assert error.value.count == 1 and error.value.problems[0].code == "unknown_field"
    assert "(+59997 more)" in error.value.problems[0].reason
    nested = copy.deepcopy(body)
    nested["locations"][0]["forecast"][2]["temp"] = [[[[1.0]]]] * 1000
    assert refused_forecast(nested).code == "float_type"
    many_bad = make_forecast_body(tuple(f"c{i}" for i in range(64)))
    for entry in many_bad["locations"]:
        for forecast in entry["forecast"]:
            forecast.update({name: "x" for name in FORECAST_FIELDS})
    with pytest.raises(RequestError) as bad:
        parse_request(json.dumps(many_bad).encode(), FORECAST_SPEC)
    rendered = bad.value.to_body()
    assert len(rendered["details"]) <= MAX_DETAILS and rendered["problem_count"] >= 1
    assert len(json.dumps(rendered)) < 5_000
    lone = json.dumps(body).encode().replace(b'"winddir"', b'"\\udc00"', 1)
    with pytest.raises(RequestError) as surrogate:
        parse_request(lone, FORECAST_SPEC)
    assert surrogate.value.status == 400 and surrogate.value.problems[0].code == "json_invalid"


def test_forecast_schema_bounds_and_example() -> None:
    schema = request_model(FORECAST_SPEC).model_json_schema()
    hour = schema["$defs"]["ForecastHour"]["properties"]
    assert set(hour) == {"time", *FORECAST_FIELDS}
    for name in FORECAST_FIELDS:
        assert (hour[name]["minimum"], hour[name]["maximum"]) == PHYSICAL_BOUNDS[name]
    forecast = schema["$defs"]["LocationObservations"]["properties"]["forecast"]
    assert forecast["minItems"] == forecast["maxItems"] == FORECAST_HOURS
    assert "forecast" in schema["$defs"]["LocationObservations"]["required"]
    example = example_body(FORECAST_SPEC)
    assert len(example["locations"][0]["forecast"]) == FORECAST_HOURS
    assert schema["example"] == example
    parse_request(json.dumps(example).encode(), FORECAST_SPEC)  # the OpenAPI example is valid
    assert "ForecastHour" not in json.dumps(request_model(SPEC).model_json_schema())


def test_serving_forecast_features_match_training_forecast_features() -> None:
    """The request's forecast gives exactly the block training reads from the
    ``weather_forecasts`` frame for a window ending at the last observation."""
    from airquality_assets.transforms.features import feature_array
    from airquality_assets.transforms.forecast_inputs import forecast_block

    body = make_forecast_body(("beijing",))
    body["locations"][0]["forecast"][1]["windspeed"] = 0.0  # a calm hour
    request = parse_request(json.dumps(body).encode(), FORECAST_SPEC)
    names = future_feature_names()
    served = feature_array(request.forecast_times, request.forecast_columns, names)
    last = pd.Timestamp("2014-12-30T23:00Z")
    frame = pd.DataFrame(body["locations"][0]["forecast"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["issue_time"] = last
    frame["lead"] = np.arange(1, FORECAST_HOURS + 1)
    frame["location"] = "beijing"
    block = forecast_block(
        frame, np.array([last.value // 10**9]), np.array([0]), ["beijing"], names, FORECAST_HOURS
    )
    np.testing.assert_array_equal(served, block[0])
