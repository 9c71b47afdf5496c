"""Predictor: jitted forward equals Keras, is thread-safe, and the response is well formed."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airquality_assets.serving.predictor import Predictor, bucket_for
from airquality_assets.serving.request import RequestSpec, ValidatedRequest, parse_request
from airquality_assets.transforms.features import feature_array, feature_matrix
from airquality_assets.transforms.forecast_inputs import future_feature_names

from .conftest import (
    FORECAST_FIELDS,
    FORECAST_HOURS,
    FORECAST_TARGETS,
    HORIZONS,
    LOOKBACK,
    TARGETS,
    make_body,
    make_forecast_body,
)


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


def test_the_interval_calibrated_at_training_is_returned_around_the_forecast(
    predictor: Predictor,
) -> None:
    """A package whose metadata carries intervals answers with lower/upper per horizon:
    the raw forward plus the stored offsets, clipped at 0 (no interval: no such keys)."""
    from airquality_assets.ml.intervals import Intervals

    n_h = len(HORIZONS)
    calibration = Intervals(
        0.8, list(TARGETS), list(HORIZONS), [[-8.0] * n_h] * len(TARGETS),
        [[float(h) for h in HORIZONS]] * len(TARGETS), n=300,
    )  # fmt: skip
    meta = replace(predictor.metadata, extra={"intervals": calibration.to_dict()})
    banded = Predictor(predictor.model, meta)
    request = validated(predictor, "beijing")
    raw = predictor.forward(*predictor.inputs(request))
    pm10 = banded.respond(request, raw).body["forecasts"][0]["pollutants"]["pm10"]
    np.testing.assert_allclose(pm10["lower"], np.maximum(raw[0, :, 1] - 8.0, 0.0), atol=1e-3)
    np.testing.assert_allclose(pm10["upper"], raw[0, :, 1] + np.asarray(HORIZONS), atol=1e-3)
    assert pm10["level"] == 0.8 and banded.describe()["intervals"]["n"] == 300
    plain = predictor.respond(request, raw).body["forecasts"][0]["pollutants"]["pm10"]
    assert "lower" not in plain and predictor.describe()["intervals"] is None


# --- A model that reads the weather forecast of its target hours -------------------------


@pytest.fixture(scope="module")
def forecast_predictor(forecast_package_dir: Path) -> Predictor:
    predictor = Predictor.from_package(forecast_package_dir, buckets=(1, 2, 4, 8))
    predictor.warm_up()
    return predictor


def two_inputs(predictor: Predictor, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 50, (batch, LOOKBACK, predictor.n_features)).astype(np.float32)
    future = rng.uniform(0, 30, (batch, FORECAST_HOURS, predictor.n_future)).astype(np.float32)
    return x, future


def forecast_request(predictor: Predictor, body: dict) -> ValidatedRequest:
    spec = RequestSpec.for_model(predictor.metadata)
    return parse_request(json.dumps(body).encode(), spec)


def test_two_input_predictor_warms_both_inputs_for_every_bucket(
    forecast_predictor: Predictor,
) -> None:
    assert forecast_predictor.ready and forecast_predictor._compiled == {1, 2, 4, 8}
    assert forecast_predictor.input_shapes == (
        (LOOKBACK, forecast_predictor.n_features),
        (FORECAST_HOURS, len(future_feature_names())),
    )


def test_two_input_forward_matches_keras_for_any_batch(forecast_predictor: Predictor) -> None:
    for batch in (1, 3, 8, 11):  # 3: padded; 11 > largest bucket: chunked and padded
        x, future = two_inputs(forecast_predictor, batch, batch)
        expected = forecast_predictor.model.predict([x, future], verbose=0)
        got = forecast_predictor.forward(x, future)
        assert got.shape == (batch, FORECAST_HOURS, len(FORECAST_TARGETS))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    x, future = two_inputs(forecast_predictor, 2, 0)
    with pytest.raises(ValueError, match="reads 2 input"):
        forecast_predictor.forward(x)
    with pytest.raises(ValueError, match="does not match"):
        forecast_predictor.forward(x, future[:, :-1])
    with pytest.raises(ValueError, match="batch size"):
        forecast_predictor.forward(x, future[:1])


def test_two_input_forward_is_thread_safe(forecast_predictor: Predictor) -> None:
    inputs = [two_inputs(forecast_predictor, 1 + i % 7, i) for i in range(48)]
    serial = [forecast_predictor.forward(*pair) for pair in inputs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda pair: forecast_predictor.forward(*pair), inputs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_request_with_a_forecast_is_answered_as_training_would(
    forecast_predictor: Predictor,
) -> None:
    """Both inputs as the training path builds them (frames, the forecast block issued at
    the last observation), the response from them; and the forecast changes the answer."""
    from airquality_assets.transforms.forecast_inputs import forecast_block

    body = make_forecast_body(("beijing", "delhi"))
    request = forecast_request(forecast_predictor, body)
    result = forecast_predictor.predict(request)
    meta = forecast_predictor.metadata
    frames, blocks = [], []
    for entry in body["locations"]:
        frame = pd.DataFrame(entry["observations"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frames.append(feature_matrix(frame, meta.feature_names))
        forecast = pd.DataFrame(entry["forecast"])
        forecast["time"] = pd.to_datetime(forecast["time"], utc=True)
        last = frame["time"].iloc[-1]
        forecast = forecast.assign(
            location="x", issue_time=last, lead=np.arange(1, FORECAST_HOURS + 1)
        )
        at = np.array([last.value // 10**9])
        names = meta.future_feature_names
        blocks.append(forecast_block(forecast, at, np.array([0]), ["x"], names, FORECAST_HOURS))
    x, future = np.stack(frames), np.concatenate(blocks)
    direct = np.maximum(forecast_predictor.model.predict([x, future], verbose=0), 0.0)
    np.testing.assert_allclose(result.values, direct, atol=1e-4)
    first = result.body["forecasts"][0]
    assert first["horizons"] == list(range(1, FORECAST_HOURS + 1))
    assert first["times"][0] == body["locations"][0]["forecast"][0]["time"]
    assert first["times"][-1] == body["locations"][0]["forecast"][-1]["time"]
    assert set(first["pollutants"]) == set(FORECAST_TARGETS)

    stormy = json.loads(json.dumps(body))
    for hour in stormy["locations"][0]["forecast"]:
        hour.update(temp=-30.0, dew=-35.0, windspeed=80.0, pressure=960.0)
    changed = forecast_predictor.predict(forecast_request(forecast_predictor, stormy)).values
    assert not np.allclose(changed[0], result.values[0], atol=1e-3)  # the forecast is read
    np.testing.assert_allclose(changed[1], result.values[1], atol=1e-5)  # per location


def test_metadata_and_model_must_agree_on_the_inputs(
    forecast_predictor: Predictor, package_dir: Path
) -> None:
    described = forecast_predictor.describe()
    assert described["future_feature_names"] == future_feature_names()
    assert described["forecast_fields"] == list(FORECAST_FIELDS)
    assert described["forecast_hours"] == FORECAST_HOURS
    from airquality_assets.ml.package import load_package

    model, meta = load_package(package_dir)  # observations only
    assert Predictor(model, meta).describe()["forecast_hours"] == 0
    claims_more = replace(meta, future_feature_names=future_feature_names(), horizons=[1, 2])
    with pytest.raises(ValueError, match="reads 1 input"):
        Predictor(model, claims_more)
    with pytest.raises(ValueError, match="reads 2 input"):
        Predictor(forecast_predictor.model, replace(forecast_predictor.metadata,
                                                    future_feature_names=[]))  # fmt: skip


def test_an_ensemble_package_is_served_through_the_same_forward(tmp_path: Path) -> None:
    """The LSTM + LightGBM champion: the predictor loads it, warms every bucket, and answers
    a request with the ensemble's blend (not the LSTM's output alone)."""
    from airquality_assets.ml.forward import jit_forward
    from airquality_assets.ml.package import load_package

    from .conftest import build_ensemble_package

    directory = build_ensemble_package(tmp_path / "ensemble")
    predictor = Predictor.from_package(directory, buckets=(1, 2, 4))
    predictor.warm_up()
    request = forecast_request(predictor, make_forecast_body(("beijing", "delhi")))
    result = predictor.predict(request)
    model, _ = load_package(directory)
    arrays = predictor.inputs(request)
    np.testing.assert_allclose(result.values, np.maximum(jit_forward(model)(*arrays), 0), atol=1e-5)
    lstm_only = np.maximum(jit_forward(model.members[0])(*arrays), 0)
    assert not np.allclose(result.values, lstm_only, atol=1e-3)
    assert result.body["model"]["version"] == "12"
