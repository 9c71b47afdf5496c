"""Request validation: every problem class is reported with its field, reason and status."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from airquality_assets.serving.validation import (
    ValidationError,
    parse_json,
    required_fields,
    validate_request,
)
from airquality_assets.transforms.features import default_feature_names

from .conftest import LOOKBACK, TARGETS, make_body

FEATURES = default_feature_names(list(TARGETS))


def problems(body: Any, **kwargs: Any) -> tuple[int, list[dict[str, str]]]:
    with pytest.raises(ValidationError) as info:
        validate_request(body, FEATURES, LOOKBACK, **kwargs)
    return info.value.status, info.value.to_body()["details"]


def obs_body() -> dict[str, Any]:
    return make_body(("beijing", "delhi"))


def test_required_fields_derive_from_features() -> None:
    fields = required_fields(FEATURES)
    assert fields[: len(TARGETS)] == list(TARGETS)
    assert {"windspeed", "winddir", "temp", "is_rain"} <= set(fields)
    assert not {"wind_u", "hour_sin", "dow_cos"} & set(fields)


def test_valid_multi_and_single_location() -> None:
    body = obs_body()
    request = validate_request(body, FEATURES, LOOKBACK)
    assert request.locations == ["beijing", "delhi"]
    assert request.frame.shape[0] == 2 * LOOKBACK
    assert str(request.frame["time"].dt.tz) == "UTC"
    assert request.last_times[0].isoformat() == "2014-12-30T23:00:00+00:00"
    single = {"observations": body["locations"][0]["observations"]}
    assert validate_request(single, FEATURES, LOOKBACK).locations == ["default"]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda o: o.pop("temp"), "observations[2].temp", "missing field"),
        (lambda o: o.update(colour=1), "observations[2].colour", "unknown field"),
        (lambda o: o.update(temp="warm"), "observations[2].temp", "must be a number"),
        (lambda o: o.update(temp=True), "observations[2].temp", "must be a number"),
        (lambda o: o.update(temp=None), "observations[2].temp", "must be a number"),
        (lambda o: o.update(pm10=float("inf")), "observations[2].pm10", "finite"),
        (lambda o: o.update(pm2_5=-1.0), "observations[2].pm2_5", "negative concentration"),
        (lambda o: o.update(humidity=101), "observations[2].humidity", "outside [0, 100]"),
        (lambda o: o.update(humidity=-0.5), "observations[2].humidity", "outside [0, 100]"),
        (lambda o: o.update(time="yesterday"), "observations[2].time", "ISO 8601"),
        (lambda o: o.update(time="2014-12-30T02:00:00"), "observations[2].time", "time zone"),
        (lambda o: o.update(time="2014-12-30T02:00:00+01:00"), "observations[2].time", "UTC"),
        (lambda o: o.update(time="2014-12-30T02:30:00Z"), "observations[2].time", "whole hour"),
        (lambda o: o.update(time="2014-12-30T05:00:00Z"), "observations[2].time", "consecutive"),
    ],
)
def test_each_problem_names_field_and_reason(mutate: Any, field: str, reason: str) -> None:
    body = obs_body()
    mutate(body["locations"][1]["observations"][2])
    status, details = problems(body)
    assert status == 422
    assert any(d["field"] == f"locations[1].{field}" and reason in d["reason"] for d in details), (
        details
    )


def test_all_problems_are_collected() -> None:
    body = obs_body()
    body["locations"][0]["observations"][0]["pm2_5"] = -3
    body["locations"][1]["observations"][5].pop("dew")
    body["extra"] = 1
    _, details = problems(body)
    fields = {d["field"] for d in details}
    assert {
        "extra",
        "locations[0].observations[0].pm2_5",
        "locations[1].observations[5].dew",
    } <= fields


def test_wrong_number_of_hours_and_structure() -> None:
    body = obs_body()
    body["locations"][0]["observations"] = body["locations"][0]["observations"][:23]
    _, details = problems(body)
    assert details[0]["field"] == "locations[0].observations"
    assert "exactly 24" in details[0]["reason"] and "got 23" in details[0]["reason"]
    assert problems([1, 2])[0] == 400
    assert problems({})[1][0]["field"] == "body"
    assert problems({"locations": []})[1][0]["field"] == "locations"
    assert problems({"locations": "x"})[1][0]["reason"].startswith("must be a list")
    assert problems({"observations": [1] * LOOKBACK})[1][0]["reason"].startswith("must be an")
    dup = obs_body()
    dup["locations"][1]["location"] = "beijing"
    assert "duplicate" in problems(dup)[1][0]["reason"]


def test_too_many_locations() -> None:
    body = make_body(tuple(f"city{i}" for i in range(5)))
    status, details = problems(body, max_locations=4)
    assert status == 422 and "too many locations" in details[0]["reason"]


def test_parse_json_failures_are_400() -> None:
    for raw, reason in [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{bad", "malformed JSON"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100_000, "JSON"),
    ]:
        with pytest.raises(ValidationError) as info:
            parse_json(raw)
        assert info.value.status == 400 and reason in info.value.reason


def test_json_nan_literals_are_rejected_per_field() -> None:
    body = obs_body()
    text = json.dumps(body).replace(
        '"pm10": ' + json.dumps(body["locations"][0]["observations"][0]["pm10"]), '"pm10": NaN', 1
    )
    _, details = problems(parse_json(text.encode()))
    assert details[0]["field"] == "locations[0].observations[0].pm10"
    assert "finite" in details[0]["reason"]


def test_validation_does_not_mutate_input() -> None:
    body = obs_body()
    before = copy.deepcopy(body)
    validate_request(body, FEATURES, LOOKBACK)
    assert body == before
    huge = obs_body()
    huge["locations"][0]["observations"][0]["temp"] = 10**400
    assert "too large" in problems(huge)[1][0]["reason"]
    assert np.isfinite(validate_request(before, FEATURES, LOOKBACK).columns["temp"]).all()
