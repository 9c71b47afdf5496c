"""Predictor: jitted forward equals Keras, is thread-safe, and the response is well formed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airquality_assets.serving.predictor import Predictor, bucket_for
from airquality_assets.serving.request import RequestSpec, ValidatedRequest, parse_request
from airquality_assets.transforms.features import feature_array, feature_matrix

from .conftest import HORIZONS, LOOKBACK, TARGETS, make_body


@pytest.fixture(scope="module")
def predictor(package_dir: Path) -> Predictor:
    predictor = Predictor.from_package(package_dir, buckets=(1, 2, 4, 8))
    assert not predictor.ready
    predictor.warm_up()
    assert predictor.ready
    return predictor


def test_bucket_for() -> None:
    assert [bucket_for(n) for n in (1, 2, 3, 5, 64, 65)] == [1, 2, 4, 8, 64, 64]


def validated(predictor: Predictor, *locations: str) -> ValidatedRequest:
    meta = predictor.metadata
    spec = RequestSpec.for_features(meta.feature_names, meta.lookback)
    return parse_request(json.dumps(make_body(locations)).encode(), spec)


def test_array_features_equal_frame_features_over_many_hours() -> None:
    """Serving (arrays) and training (frames) share one implementation; check it end to end
    across every hour and weekday, a leap day and calm hours."""
    times = pd.date_range("2016-02-27", periods=500, freq="h", tz="UTC")
    speed = np.where(np.arange(500) % 7 == 0, 0.0, 3.0)
    frame = pd.DataFrame({"time": times, "windspeed": speed, "winddir": 45.0})
    names = ["hour_sin", "hour_cos", "dow_sin", "dow_cos", "wind_u", "wind_v", "windspeed"]
    arrays = feature_array(
        times.tz_localize(None).to_numpy().astype("datetime64[s]"),
        {c: frame[c].to_numpy() for c in ("windspeed", "winddir")},
        names,
    )
    np.testing.assert_array_equal(arrays, feature_matrix(frame, names))


def test_forward_matches_keras_for_any_batch(predictor: Predictor) -> None:
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8, 11):  # 11 > largest bucket: chunked
        x = rng.uniform(0, 50, (batch, LOOKBACK, predictor.n_features)).astype(np.float32)
        expected = predictor.model.predict(x, verbose=0)
        np.testing.assert_allclose(predictor.forward(x), expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="does not match"):
        predictor.forward(np.zeros((1, LOOKBACK + 1, predictor.n_features), np.float32))


def test_forward_is_thread_safe(predictor: Predictor) -> None:
    rng = np.random.default_rng(1)
    inputs = [
        rng.uniform(0, 50, (int(n), LOOKBACK, predictor.n_features)).astype(np.float32)
        for n in rng.integers(1, 9, 48)
    ]
    serial = [predictor.forward(x) for x in inputs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(predictor.forward, inputs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_response_shape_times_and_bands(predictor: Predictor) -> None:
    request = validated(predictor, "beijing", "delhi")
    result = predictor.predict(request)
    assert result.values.shape == (2, len(HORIZONS), len(TARGETS))
    assert (result.values >= 0).all()
    body = result.body
    assert body["model"] == {"name": "airquality-lstm", "version": "7"}
    first = body["forecasts"][0]
    assert first["location"] == "beijing"
    assert first["times"][0] == "2014-12-31T00:00:00Z"  # last input hour 23:00 + 1 h
    assert first["times"][-1] == "2014-12-31T23:00:00Z"  # + 24 h
    assert set(first["pollutants"]) == set(TARGETS)
    assert first["pollutants"]["nh3"]["aqi"] is None  # no OWM scale for NH3
    pm = first["pollutants"]["pm2_5"]
    assert len(pm["values"]) == len(HORIZONS) and all(1 <= b <= 5 for b in pm["aqi"])
    worst = np.max([first["pollutants"][p]["aqi"] for p in ("pm2_5", "pm10", "no2", "o3")], 0)
    assert first["aqi"] == worst.tolist()
    direct = np.maximum(predictor.model.predict(predictor.features(request), verbose=0), 0)
    np.testing.assert_allclose(
        [f["pollutants"]["pm10"]["values"] for f in body["forecasts"]], direct[:, :, 1], atol=1e-4
    )
    described = predictor.describe()
    assert described["lookback"] == LOOKBACK and described["horizons"] == list(HORIZONS)
