"""The smoke request the model checks send: answered by a servable model of either kind,
and a clear problem (never an exception) for one that cannot serve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from airquality_assets.ml.package import load_package
from airquality_assets.serving.smoke import answer_example
from airquality_assets.transforms.forecast_inputs import future_feature_names

from .conftest import FORECAST_HOURS, FORECAST_TARGETS, HORIZONS, TARGETS


def test_a_two_input_model_answers_a_request_with_a_forecast(forecast_package_dir: Path) -> None:
    model, metadata = load_package(forecast_package_dir)
    answer = answer_example(model, metadata)
    assert answer.problem is None
    assert (answer.inputs, answer.forecast_hours) == (2, FORECAST_HOURS)
    assert set(answer.first_hour) == set(FORECAST_TARGETS)
    assert answer.as_metadata()["smoke_request"] == "answered"


def test_an_observation_only_model_answers_as_before(package_dir: Path) -> None:
    model, metadata = load_package(package_dir)
    answer = answer_example(model, metadata)
    assert answer.problem is None and (answer.inputs, answer.forecast_hours) == (1, 0)
    assert set(answer.first_hour) == set(TARGETS)


def test_models_that_cannot_serve_are_reported(package_dir: Path) -> None:
    model, metadata = load_package(package_dir)
    claims_forecast = replace(metadata, future_feature_names=future_feature_names())
    answer = answer_example(model, claims_forecast)  # and its horizons are not 1..H
    assert answer.problem is not None and "hours 1..H" in answer.problem
    contiguous = replace(claims_forecast, horizons=list(range(1, 7)))
    answer = answer_example(model, contiguous)
    assert answer.problem is not None and "reads 1 input" in answer.problem
    unbounded = replace(metadata, feature_names=[*metadata.feature_names, "mystery"])
    assert "no physical bounds" in (answer_example(model, unbounded).problem or "")
    more_targets = replace(metadata, target_pollutants=[*TARGETS, "so2"])
    problem = answer_example(model, more_targets).problem or ""
    assert "shape" in problem and str(len(HORIZONS)) in problem


def test_a_non_finite_answer_is_a_problem(package_dir: Path, monkeypatch) -> None:
    from airquality_assets.serving import predictor as predictor_module

    model, metadata = load_package(package_dir)
    real = predictor_module.jit_forward

    def nan_forward(m):
        forward = real(m)
        return lambda *a: np.full_like(forward(*a), np.nan)

    monkeypatch.setattr(predictor_module, "jit_forward", nan_forward)
    assert answer_example(model, metadata).problem == (
        "the answer to an example request is not finite"
    )
