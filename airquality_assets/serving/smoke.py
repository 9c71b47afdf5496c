"""One real request through a model's contract and predictor: can this model serve?

A registry status of READY says the files exist. Only an answer says the rest: that the
request contract builds from the model's metadata (every field bounded; a model reading the
weather forecast forecasts hours 1..H), that the model reads the inputs that contract gives
it (observations, and the forecast block when it has one), and that what comes back is one
finite forecast per horizon and pollutant. The model checks ask this of the registry's
champion and of the model the bento packs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airquality_assets.ml.package import ModelMetadata
from airquality_assets.serving.predictor import Predictor
from airquality_assets.serving.request import RequestSpec, example_body, parse_request


@dataclass(frozen=True)
class SmokeAnswer:
    """What one example request got: a problem (None: served), and what it carried."""

    problem: str | None
    forecast_hours: int = 0
    inputs: int = 0
    first_hour: dict[str, float] = field(default_factory=dict)  # ug/m3 per pollutant

    def as_metadata(self) -> dict[str, Any]:
        return {
            "smoke_request": "answered" if self.problem is None else "failed",
            "smoke_model_inputs": self.inputs,
            "smoke_forecast_hours": self.forecast_hours,
            "smoke_first_hour_ug_m3": json.dumps(self.first_hour, sort_keys=True),
        }


def answer_example(model: Any, metadata: ModelMetadata) -> SmokeAnswer:
    """Validate :func:`~airquality_assets.serving.request.example_body` for ``metadata``'s
    contract, answer it with a :class:`Predictor` (one bucket) and check the answer."""
    hours, n_inputs = 0, 0
    try:
        spec = RequestSpec.for_model(metadata)
        hours = spec.forecast_hours
        request = parse_request(json.dumps(example_body(spec)).encode(), spec)
        predictor = Predictor(model, metadata, buckets=(1,))
        n_inputs = len(predictor.input_shapes)
        raw = np.asarray(predictor.forward(*predictor.inputs(request)))
        expected = (1, len(metadata.horizons), len(metadata.target_pollutants))
        if raw.shape != expected:
            problem = f"the answer has shape {raw.shape}, expected {expected}"
            return SmokeAnswer(problem, hours, n_inputs)
        values = predictor.respond(request, raw).values
    except Exception as exc:  # any failure to serve is the answer, not a crash of the check
        problem = f"an example request fails: {type(exc).__name__}: {exc}"
        return SmokeAnswer(problem, hours, n_inputs)
    if not np.isfinite(values).all():
        return SmokeAnswer("the answer to an example request is not finite", hours, n_inputs)
    targets = metadata.target_pollutants
    first = {p: round(float(values[0, 0, j]), 3) for j, p in enumerate(targets)}
    return SmokeAnswer(None, hours, n_inputs, first)
