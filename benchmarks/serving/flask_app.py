"""Reference baseline: Flask + gunicorn, ``model.predict`` per request (the usual recipe).

Run by ``run.py`` as ``gunicorn -w <cores> --worker-class sync benchmarks.serving.flask_app:app``
with ``AIRQUALITY_PACKAGE`` pointing at a model package. It computes features with the same
shared ``feature_matrix`` and answers the same JSON shape closely enough for a fair cost
comparison, but does no request validation (that is the point of the comparison: the Bento
service must beat it *with* full validation).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from flask import Flask, jsonify, request

import airquality_assets  # noqa: F401  (KERAS_BACKEND=jax)
from airquality_assets.ml.package import load_package
from airquality_assets.transforms.features import feature_matrix

app = Flask(__name__)
MODEL, META = load_package(os.environ["AIRQUALITY_PACKAGE"])


@app.post("/predict")
def predict() -> object:
    body = request.get_json()
    out = []
    for location in body["locations"]:
        frame = pd.DataFrame(location["observations"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        x = feature_matrix(frame, META.feature_names)[None]
        y = np.maximum(MODEL.predict(x, verbose=0)[0], 0.0)
        out.append(
            {
                "location": location["location"],
                "pollutants": {
                    p: {"values": y[:, j].round(4).tolist()}
                    for j, p in enumerate(META.target_pollutants)
                },
            }
        )
    return jsonify({"model": {"version": META.model_version}, "forecasts": out})
