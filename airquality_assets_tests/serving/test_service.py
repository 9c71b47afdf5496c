"""The real BentoML service in a subprocess: forecasts, every bad input class, metrics, auth.

Two servers (auth off / auth on) start once for the module, in parallel, each from a
temporary BENTOML_HOME holding the tiny fixture model; everything talks to 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bentoml
import httpx
import numpy as np
import pytest

from airquality_assets.ml.package import load_package
from airquality_assets.serving.validation import validate_request
from airquality_assets.transforms.features import feature_matrix

from .conftest import LOOKBACK, make_body

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
READY_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRQUALITY_")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="true",
        PYTHONPATH=str(REPO),
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        AIRQUALITY_WORKERS="1",
        **extra,
    )
    return env


def start(home: Path, log: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service:AirQualityForecast",
        "--working-dir",
        str(REPO / "bento"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        env=server_env(home, **extra),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {READY_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, package_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("bentoml_home")
    code = (
        "import sys; from airquality_assets.serving.bentoml_store import import_model_package;"
        "print(import_model_package(sys.argv[1])); print(import_model_package(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(package_dir)],
        env=server_env(home),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == out[1] and out[0].startswith("airquality-lstm:")  # idempotent import
    return home


@pytest.fixture(scope="module")
def servers(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("logs")
    open_proc, open_url = start(home, logs / "open.log")
    auth_proc, auth_url = start(home, logs / "auth.log", AIRQUALITY_API_TOKEN=TOKEN)
    try:
        wait_ready(open_proc, open_url, logs / "open.log")
        wait_ready(auth_proc, auth_url, logs / "auth.log")
        yield {"open": open_url, "auth": auth_url}
    finally:
        stop(open_proc)
        stop(auth_proc)


@pytest.fixture(scope="module")
def client(servers: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers["open"], timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    return make_body(("beijing", "delhi", "london"))


@pytest.fixture(scope="module")
def first_answer(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_bentoml_version() -> None:
    assert bentoml.__version__.startswith("1.4.")


def test_valid_request_matches_direct_model_output(
    first_answer: dict[str, Any], body: dict[str, Any], package_dir: Path
) -> None:
    model, meta = load_package(package_dir)
    request = validate_request(body, meta.feature_names, meta.lookback)
    x = feature_matrix(request.frame, meta.feature_names).reshape(3, LOOKBACK, -1)
    direct = np.maximum(model.predict(x, verbose=0), 0.0)
    assert first_answer["model"] == {"name": "airquality-lstm", "version": "7"}
    assert [f["location"] for f in first_answer["forecasts"]] == ["beijing", "delhi", "london"]
    for i, forecast in enumerate(first_answer["forecasts"]):
        assert forecast["horizons"] == meta.horizons
        assert forecast["times"][0] == "2014-12-31T00:00:00Z"
        for j, pollutant in enumerate(meta.target_pollutants):
            got = forecast["pollutants"][pollutant]["values"]
            np.testing.assert_allclose(got, direct[i, :, j], atol=1e-4, rtol=0)


def bad_requests(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, str, str]]:
    """(name, httpx kwargs, status, field substring, reason substring) per bad-input class."""
    json_headers = {"content-type": "application/json"}

    def mutated(path: tuple[Any, ...], value: Any, drop: bool = False) -> bytes:
        copy_ = copy.deepcopy(body)
        target = copy_
        for key in path[:-1]:
            target = target[key]
        if drop:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return json.dumps(copy_).encode()

    obs = ("locations", 1, "observations", 4)
    many = {"locations": [{"location": f"c{i}", "observations": []} for i in range(65)]}
    return [
        (
            "malformed json",
            {"content": b'{"locations": [', "headers": json_headers},
            400,
            "body",
            "malformed JSON",
        ),
        ("empty body", {"content": b"", "headers": json_headers}, 400, "body", "empty"),
        (
            "wrong content type",
            {"content": b"a=1", "headers": {"content-type": "text/plain"}},
            415,
            "Content-Type",
            "application/json",
        ),
        ("huge body", {"content": b" " * 1_100_000, "headers": json_headers}, 413, "body", "limit"),
        (
            "list body",
            {"content": b"[[1, 2], [3]]", "headers": json_headers},
            400,
            "body",
            "JSON object",
        ),
        (
            "too few hours",
            {
                "content": mutated(
                    ("locations", 0, "observations"), body["locations"][0]["observations"][:23]
                ),
                "headers": json_headers,
            },
            422,
            "locations[0].observations",
            "exactly 24",
        ),
        (
            "missing field",
            {"content": mutated((*obs, "temp"), None, drop=True), "headers": json_headers},
            422,
            "observations[4].temp",
            "missing field",
        ),
        (
            "unknown field",
            {"content": mutated((*obs, "ozone"), 1.0), "headers": json_headers},
            422,
            "observations[4].ozone",
            "unknown field",
        ),
        (
            "non numeric",
            {"content": mutated((*obs, "pressure"), "high"), "headers": json_headers},
            422,
            "observations[4].pressure",
            "must be a number",
        ),
        (
            "json NaN literal",
            {
                "content": mutated((*obs, "dew"), 1234.5).replace(b"1234.5", b"NaN"),
                "headers": json_headers,
            },
            422,
            "observations[4].dew",
            "finite",
        ),
        (
            "infinity literal",
            {
                "content": mutated((*obs, "dew"), 1234.5).replace(b"1234.5", b"-Infinity"),
                "headers": json_headers,
            },
            422,
            "observations[4].dew",
            "finite",
        ),
        (
            "negative concentration",
            {"content": mutated((*obs, "no2"), -4.0), "headers": json_headers},
            422,
            "observations[4].no2",
            "negative concentration",
        ),
        (
            "humidity > 100",
            {"content": mutated((*obs, "humidity"), 140.0), "headers": json_headers},
            422,
            "observations[4].humidity",
            "outside",
        ),
        (
            "naive timestamp",
            {"content": mutated((*obs, "time"), "2014-12-30T04:00:00"), "headers": json_headers},
            422,
            "observations[4].time",
            "time zone",
        ),
        (
            "not iso timestamp",
            {"content": mutated((*obs, "time"), "30/12/2014 04:00"), "headers": json_headers},
            422,
            "observations[4].time",
            "ISO 8601",
        ),
        (
            "not on the hour",
            {"content": mutated((*obs, "time"), "2014-12-30T04:15:00Z"), "headers": json_headers},
            422,
            "observations[4].time",
            "whole hour",
        ),
        (
            "not consecutive",
            {"content": mutated((*obs, "time"), "2014-12-30T09:00:00Z"), "headers": json_headers},
            422,
            "observations[4].time",
            "consecutive",
        ),
        (
            "too many locations",
            {"content": json.dumps(many).encode(), "headers": json_headers},
            422,
            "locations",
            "too many",
        ),
        ("empty object", {"content": b"{}", "headers": json_headers}, 422, "body", "empty"),
    ]


def test_every_bad_input_gets_4xx_naming_field_and_reason(
    client: httpx.Client, body: dict[str, Any], first_answer: dict[str, Any]
) -> None:
    failures = []
    for name, kwargs, status, field, reason in bad_requests(body):
        response = client.post("/predict", **kwargs)
        try:
            payload = response.json()
            detail_ok = any(
                field in d["field"] and reason in d["reason"] for d in payload["details"]
            )
            ok = response.status_code == status and detail_ok and "error" in payload
        except (ValueError, KeyError, TypeError):
            ok, payload = False, response.text
        if not ok:
            failures.append(f"{name}: {response.status_code} {payload}")
    assert not failures, "\n".join(failures)
    # The worker survived all of that and still gives exactly the same answer.
    again = client.post("/predict", json=body)
    assert again.status_code == 200
    assert again.json() == first_answer
    assert client.get("/predict").status_code == 405


def test_metadata(client: httpx.Client) -> None:
    meta = client.get("/metadata").json()
    assert meta["model_name"] == "airquality-lstm" and meta["model_version"] == "7"
    assert meta["lookback"] == LOOKBACK and meta["horizons"] == [1, 2, 3, 6, 12, 24]
    assert meta["training_window"]["start"].startswith("2010")
    assert "wind_u" in meta["feature_names"] and meta["test_metrics"]["pm2_5"]["mae"] == 12.5


def test_health_and_metrics(client: httpx.Client, first_answer: dict[str, Any]) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/predict", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    for name in (
        "airquality_predictions_total",
        'airquality_predicted_concentration_ug_m3_bucket{le="5.0",pollutant="pm2_5"}',
        'airquality_validation_failures_total{reason="malformed_json"}',
        'airquality_model_info{model_name="airquality-lstm",model_version="7"} 1.0',
        "bentoml_service_request_total",
    ):
        assert name in text, name


def test_auth(servers: dict[str, str], body: dict[str, Any], first_answer: dict[str, Any]) -> None:
    with httpx.Client(base_url=servers["auth"], timeout=30) as auth:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = auth.post("/predict", json=body, headers=headers)
            assert response.status_code == 401, headers
            assert response.json()["details"][0]["field"] == "Authorization"
            assert auth.get("/metadata", headers=headers).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        response = auth.post("/predict", json=body, headers=good)
        assert response.status_code == 200 and response.json() == first_answer
        assert auth.get("/metadata", headers=good).status_code == 200
        for open_path in ("/livez", "/readyz", "/metrics"):
            assert auth.get(open_path).status_code == 200, open_path


def test_no_model_in_store_fails_start(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process, _ = start(tmp_path / "empty_home", log)
    try:
        code = process.wait(120)
    finally:
        stop(process)
    assert code != 0
    assert "Run the training job first" in log.read_text()
