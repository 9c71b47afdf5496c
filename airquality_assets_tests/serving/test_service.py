"""The real BentoML service in a subprocess: forecasts, BentoML clients, OpenAPI, every bad
input class, hostile timing and paths, metrics, auth, and a newly promoted champion.

Two servers start once for the module, in parallel: "open" (auth off) serves the fixture
model v7 (observations only); "auth" (token set) serves a store where a different champion,
v8, was imported after v7, with the same code: the project's two-input LSTM (other targets,
shorter lookback, and the weather forecast of its target hours, so every request carries
``forecast``); later v9 (same contract) lands in its store while it serves and is swapped
in. Both read forecasts from one store written by the loop's ``ForecastStore`` (``GET
/forecast``), on a replay clock. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bentoml
import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airquality_assets.ml.package import load_package
from airquality_assets.serving.openapi import TIME_PATTERN
from airquality_assets.transforms.features import feature_matrix

from .conftest import (
    ISSUED,
    LOOKBACK,
    STORED_INTERVALS,
    build_forecast_package,
    build_package,
    make_body,
    make_forecast_body,
    store_issue,
)

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
READY_TIMEOUT_S = 300
BODY_TIMEOUT_S = 2
V8_TARGETS = ("pm2_5", "pm10")
V8_LOOKBACK = 12
V8_HOURS = 6  # v8 and v9 read the forecast of target hours 1..6
#: The servers' replay clock: an hour after the fresh location's newest issue.
REPLAY_NOW = "2014-12-30T19:00:00Z"


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
        AIRQUALITY_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
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


def import_packages(home: Path, *packages: Path) -> list[str]:
    code = (
        "import sys; from airquality_assets.serving.bentoml_store import import_model_package;"
        "[print(import_model_package(p)) for p in sys.argv[1:]]"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, packages)],
        env=server_env(home),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory, package_dir: Path) -> dict[str, Path]:
    open_home = tmp_path_factory.mktemp("bentoml_home")
    tags = import_packages(open_home, package_dir, package_dir)
    assert tags[0] == tags[1] and tags[0].startswith("airquality-lstm:")  # idempotent import
    # A newly promoted champion with another contract, imported after v7 (":latest"): it
    # reads the weather forecast of its target hours.
    v8 = build_forecast_package(
        tmp_path_factory.mktemp("v8") / "pkg",
        targets=V8_TARGETS,
        hours=V8_HOURS,
        lookback=V8_LOOKBACK,
        version="8",
        seed=3,
    )
    auth_home = tmp_path_factory.mktemp("bentoml_home_v8")
    import_packages(auth_home, package_dir, v8)
    return {"open": open_home, "auth": auth_home, "v8": v8}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment's data dir: forecasts of a fresh and a stale location, as stored."""
    directory = tmp_path_factory.mktemp("data")
    store_issue(directory, "beijing", ISSUED - pd.Timedelta(hours=1), [[5.0, 1.0]] * 3, "6")
    store_issue(directory, "beijing", ISSUED, [[12.5, 2.0], [30.0, 2.5], [90.0, 3.0]],
                intervals=STORED_INTERVALS)  # fmt: skip
    store_issue(directory, "delhi", ISSUED - pd.Timedelta(hours=6), [[40.0, 1.0]] * 3)
    return directory


@pytest.fixture(scope="module")
def servers(
    homes: dict[str, Path], data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    logs = tmp_path_factory.mktemp("logs")
    deployment = {"AIRQUALITY_DATA_DIR": str(data_dir), "AIRQUALITY_REPLAY_NOW": REPLAY_NOW}
    open_proc, open_url = start(homes["open"], logs / "open.log", **deployment)
    auth_proc, auth_url = start(
        homes["auth"],
        logs / "auth.log",
        AIRQUALITY_API_TOKEN=TOKEN,
        AIRQUALITY_RELOAD_POLL_SECONDS="0.5",
        **deployment,
    )
    try:
        wait_ready(open_proc, open_url, logs / "open.log")
        wait_ready(auth_proc, auth_url, logs / "auth.log")
        yield {"open": open_url, "auth": auth_url, "logs": logs}
    finally:
        stop(open_proc)
        stop(auth_proc)


@pytest.fixture(scope="module")
def client(servers: dict[str, Any]) -> Iterator[httpx.Client]:
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


def test_valid_request_matches_direct_model_output(
    first_answer: dict[str, Any], body: dict[str, Any], package_dir: Path
) -> None:
    model, meta = load_package(package_dir)
    frame = pd.DataFrame([o for e in body["locations"] for o in e["observations"]])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    x = feature_matrix(frame, meta.feature_names).reshape(3, LOOKBACK, -1)  # training's path
    direct = np.maximum(model.predict(x, verbose=0), 0.0)
    assert first_answer["model"] == {"name": "airquality-lstm", "version": "7"}
    assert [f["location"] for f in first_answer["forecasts"]] == ["beijing", "delhi", "london"]
    for i, forecast in enumerate(first_answer["forecasts"]):
        assert forecast["horizons"] == meta.horizons
        assert forecast["times"][0] == "2014-12-31T00:00:00Z"
        for j, pollutant in enumerate(meta.target_pollutants):
            got = forecast["pollutants"][pollutant]["values"]
            np.testing.assert_allclose(got, direct[i, :, j], atol=1e-4, rtol=0)


def test_bentoml_clients_call_the_api_methods(
    servers: dict[str, Any], body: dict[str, Any], first_answer: dict[str, Any]
) -> None:
    with bentoml.SyncHTTPClient(servers["open"]) as sync:
        assert sync.predict(locations=body["locations"]) == first_answer
        assert sync.metadata()["model_version"] == "7"
        with pytest.raises(bentoml.exceptions.BentoMLException):
            sync.predict(locations=body["locations"][:1] * 2)  # duplicate location: 422

    async def call_async() -> Any:
        async with bentoml.AsyncHTTPClient(servers["open"]) as client:
            return await client.predict(locations=body["locations"])

    assert asyncio.run(call_async()) == first_answer


def test_openapi_describes_both_methods(client: httpx.Client) -> None:
    spec = client.get("/docs.json").json()
    assert {"/predict", "/metadata"} <= set(spec["paths"])
    request = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = request["schema"]["example"]
    assert client.post("/predict", json=example).status_code == 200  # the example is valid
    observation = spec["components"]["schemas"]["Observation"]["properties"]
    assert observation["pm2_5"]["maximum"] == 5000 and observation["humidity"]["maximum"] == 100
    bad = spec["paths"]["/predict"]["post"]["responses"]["422"]["content"]["application/json"]
    assert bad["schema"]["$ref"].endswith("/ErrorBody")
    assert "problem_count" in spec["components"]["schemas"]["ErrorBody"]["properties"]
    assert "ServedModel" in str(spec["paths"]["/metadata"]["post"]["responses"]["200"])


def test_openapi_is_valid_30_and_states_the_enforced_rules(client: httpx.Client) -> None:
    from openapi_spec_validator import OpenAPIV30SpecValidator

    spec = client.get("/docs.json").json()
    errors = [str(e)[:300] for e in OpenAPIV30SpecValidator(spec).iter_errors()]
    assert errors == []
    assert '"type": "null"' not in json.dumps(spec)  # 3.1 spelling: `nullable` in 3.0
    schemas = spec["components"]["schemas"]
    time_ = schemas["Observation"]["properties"]["time"]
    assert time_["pattern"] == TIME_PATTERN
    for name in ("Observation", "LocationObservations", "PredictInput"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["Observation"]["properties"]["is_rain"]["enum"] == [0, 1]
    assert "get" in spec["paths"]["/metadata"] and client.get("/metadata").status_code == 200
    post = spec["paths"]["/predict"]["post"]
    assert "431" in post["responses"] and "duplicate_key" in post["description"]
    assert "1000000 bytes" in spec["info"]["description"]
    example = post["requestBody"]["content"]["application/json"]["schema"]["example"]
    stamps = [o["time"] for e in example["locations"] for o in e["observations"]]
    assert all(re.fullmatch(TIME_PATTERN, t) for t in stamps)
    assert client.post("/predict", json=example).status_code == 200


def bad_requests(body: dict[str, Any]) -> list[tuple[str, dict[str, Any], int, str, str]]:
    """(name, httpx kwargs, status, field substring, code) per bad-input class."""
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

    def case(name: str, content: bytes, status: int, field: str, code: str) -> Any:
        return (name, {"content": content, "headers": json_headers}, status, field, code)

    obs = ("locations", 1, "observations", 4)
    at = "locations[1].observations[4]"
    junk_keys = json.dumps({f"k{i}": 1 for i in range(60_000)}).encode()
    return [
        case("malformed json", b'{"locations": [', 400, "body", "json_invalid"),
        case("empty body", b"", 400, "body", "empty_body"),
        (
            "wrong content type",
            {"content": b"a=1", "headers": {"content-type": "text/plain"}},
            415,
            "Content-Type",
            "unsupported_media_type",
        ),
        case("huge body", b" " * 1_100_000, 413, "body", "too_large"),
        case("list body", b"[[1, 2], [3]]", 400, "body", "model_type"),
        case(
            "too few hours",
            mutated(("locations", 0, "observations"), body["locations"][0]["observations"][:23]),
            422,
            "locations[0].observations",
            "too_short",
        ),
        case("missing field", mutated((*obs, "temp"), None, True), 422, f"{at}.temp", "missing"),
        case("unknown field", mutated((*obs, "ozone"), 1.0), 422, at, "unknown_field"),
        case("non numeric", mutated((*obs, "pressure"), "high"), 422, f"{at}.pressure", "float"),
        case(
            "json NaN literal",
            mutated((*obs, "dew"), 1234.5).replace(b"1234.5", b"NaN"),
            422,
            f"{at}.dew",
            "finite_number",
        ),
        case("negative", mutated((*obs, "no2"), -4.0), 422, f"{at}.no2", "greater_than_equal"),
        case("implausible", mutated((*obs, "pm2_5"), 1e6), 422, f"{at}.pm2_5", "less_than"),
        case("float32 overflow", mutated((*obs, "o3"), 3.5e38), 422, f"{at}.o3", "less_than"),
        case("1e308", mutated((*obs, "dew"), -1e308), 422, f"{at}.dew", "greater_than"),
        case("humidity > 100", mutated((*obs, "humidity"), 140.0), 422, "humidity", "less_than"),
        case(
            "year 9999",
            mutated(("locations", 1, "observations", 23, "time"), "9999-12-31T23:00:00Z"),
            422,
            "observations[23].time",
            "out_of_range",
        ),
        case(
            "lone surrogate value",
            mutated(("locations", 0, "location"), "X").replace(b'"X"', b'"\\ud800"'),
            400,
            "body",
            "json_invalid",
        ),
        case(
            "lone surrogate key",
            mutated((*obs, "X"), 1.0).replace(b'"X"', b'"\\udc00"'),
            400,
            "body",
            "json_invalid",
        ),
        case("naive time", mutated((*obs, "time"), "2014-12-30T04:00:00"), 422, "time", "format"),
        case("not iso", mutated((*obs, "time"), "30/12/2014 04:00"), 422, "time", "format"),
        case("epoch string", mutated((*obs, "time"), "1419912000"), 422, "time", "time_format"),
        case("-00:00", mutated((*obs, "time"), "2014-12-30T04:00:00-00:00"), 422, "time", "utc"),
        case("space", mutated((*obs, "time"), "2014-12-30 04:00:00Z"), 422, "time", "format"),
        case(
            "1 ns off",
            mutated((*obs, "time"), "2014-12-30T04:00:00.000000001Z"),
            422,
            "time",
            "not_on_the_hour",
        ),
        case(
            "dew above temp",
            mutated((*obs, "dew"), 60.0),
            422,
            at,
            "dew_above_temp",
        ),
        case("rain 0.5", mutated((*obs, "is_rain"), 0.5), 422, at, "not_a_flag"),
        case(
            "duplicate key",
            mutated((*obs, "pm10"), 1.0).replace(b'"pm10"', b'"pm10": 2.0, "pm10"', 1),
            422,
            "body",
            "duplicate_key",
        ),
        case("off hour", mutated((*obs, "time"), "2014-12-30T04:15:00Z"), 422, "time", "hour"),
        case(
            "not consecutive",
            mutated((*obs, "time"), "2014-12-30T09:00:00Z"),
            422,
            "locations[1]",
            "not_consecutive",
        ),
        case(
            "too many locations",
            json.dumps(make_body(tuple(f"c{i}" for i in range(65)))).encode(),
            422,
            "locations",
            "too_long",
        ),
        case("empty object", b"{}", 422, "body", "missing"),
        case("60k unknown keys", junk_keys, 422, "body", "unknown_field"),
    ]


def test_every_bad_input_gets_a_bounded_4xx_naming_field_and_reason(
    client: httpx.Client, body: dict[str, Any], first_answer: dict[str, Any]
) -> None:
    failures = []
    for name, kwargs, status, field, code in bad_requests(body):
        response = client.post("/predict", **kwargs)
        try:
            payload = response.json()
            first = payload["details"][0]
            ok = (
                response.status_code == status
                and field in first["field"]
                and code in first["code"]
                and first["reason"]
                and payload["error"].startswith(first["field"])
                and payload["problem_count"] >= len(payload["details"])
                and len(response.content) < 5_000
            )
        except (ValueError, KeyError, TypeError, IndexError):
            ok, payload = False, response.text[:300]
        if not ok:
            failures.append(f"{name}: {response.status_code} {payload}")
    assert not failures, "\n".join(failures)
    # The worker survived all of that and still gives exactly the same answer.
    again = client.post("/predict", json=body)
    assert again.status_code == 200
    assert again.json() == first_answer
    assert client.get("/predict").status_code == 405


def raw_exchange(url: str, request: bytes, wait_s: float) -> bytes:
    """Send raw bytes, then read what the server answers within ``wait_s`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


def test_stalled_or_short_bodies_get_408_not_504(servers: dict[str, Any]) -> None:
    head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    short = (head + "Content-Length: 5000\r\n\r\n").encode() + b'{"locations": ['
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b'5\r\n{"loc\r\n'
    for request in (short, chunked):
        started = time.monotonic()
        answer = raw_exchange(servers["open"], request, wait_s=BODY_TIMEOUT_S + 20)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"body_timeout" in answer
        assert time.monotonic() - started < BODY_TIMEOUT_S + 15


def test_unknown_paths_do_not_grow_metrics(client: httpx.Client) -> None:
    for i in range(200):
        assert client.get(f"/probe-{i}/x").status_code == 404
        assert client.post(f"/predict/{i}", content=b"{}").status_code == 404
    text = client.get("/metrics").text
    assert "probe-" not in text and "/predict/1" not in text
    endpoints = {
        line.split('endpoint="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("bentoml_service_request_total")
    }
    assert "/_unmatched" in endpoints and len(endpoints) <= 12, endpoints


def test_get_forecast_reads_the_store_with_validators(client: httpx.Client, data_dir: Path) -> None:
    response = client.get("/forecast", params={"location": "beijing"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "airquality-lstm", "version": "7"}  # the issuing model
    assert (body["location"], body["issued_at"]) == ("beijing", "2014-12-30T18:00:00Z")
    assert body["computed_at"] is None  # this store records none
    assert body["horizons"] == [1, 6, 24] and body["times"][-1] == "2014-12-31T18:00:00Z"
    assert body["pollutants"]["pm2_5"] == {
        "values": [12.5, 30.0, 90.0],
        "aqi": [2, 3, 5],
        "lower": [8.5, 20.0, 70.0],  # the stored 80 % interval
        "upper": [18.5, 48.0, 135.0],
    }
    assert body["pollutants"]["nh3"]["aqi"] is None and body["aqi"] == [2, 3, 5]
    etag = response.headers["etag"]
    assert response.headers["last-modified"] == "Tue, 30 Dec 2014 18:00:00 GMT"
    assert response.headers["cache-control"] == "no-cache"

    unchanged = client.get("/forecast?location=beijing", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    since = client.get(
        "/forecast?location=beijing",
        headers={"If-Modified-Since": response.headers["last-modified"]},
    )
    assert since.status_code == 304

    unknown = client.get("/forecast", params={"location": "paris"})
    assert unknown.status_code == 404
    first = unknown.json()["details"][0]
    assert (first["field"], first["code"]) == ("location", "unknown_location")
    assert first["reason"].endswith("stored: beijing, delhi")
    stale = client.get("/forecast", params={"location": "delhi"})
    assert stale.status_code == 503
    reason = stale.json()["details"][0]["reason"]
    assert "issued at 2014-12-30T12:00:00Z, 7.0 h before the clock (2014-12-30T19:00:00Z)" in reason
    assert "the limit is 3.0 h" in reason
    assert client.get("/forecast").status_code == 422
    assert client.post("/forecast?location=beijing").status_code == 405

    # The loop issues the next hour while the service runs: the next GET has it.
    store_issue(data_dir, "beijing", ISSUED + pd.Timedelta(hours=1), [[60.0, 1.0]] * 3, "8",
                intervals=STORED_INTERVALS)  # fmt: skip
    newer = client.get("/forecast?location=beijing", headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.headers["etag"] != etag
    assert (newer.json()["issued_at"], newer.json()["model"]["version"]) == (
        "2014-12-30T19:00:00Z",
        "8",
    )

    spec = client.get("/docs.json").json()
    get = spec["paths"]["/forecast"]["get"]
    assert get["parameters"][0]["name"] == "location"
    assert {"200", "304", "401", "404", "422", "503"} <= {str(k) for k in get["responses"]}
    assert "issued_at" in spec["components"]["schemas"]["LatestForecast"]["properties"]
    metrics = client.get("/metrics").text
    assert 'endpoint="/forecast"' in metrics and "paris" not in metrics


def test_the_forecast_page_is_served_beside_swagger(client: httpx.Client) -> None:
    page = client.get("/forecast/page")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="beijing"' in page.text and 'id="delhi"' in page.text
    assert "<svg" in page.text and "<script" not in page.text
    assert "Stale: issued" in page.text  # delhi's newest is 7 h old on the replay clock
    one = client.get("/forecast/page", params={"location": "delhi"})
    assert one.status_code == 200 and 'id="beijing"' not in one.text
    assert client.get("/forecast/page", params={"location": "paris"}).status_code == 404
    assert "swagger" in client.get("/").text.lower()  # Swagger UI still at /


def chromium_executable() -> str | None:
    """Debian's Chromium (scripts/chromium.sh installs it and exports its path)."""
    import shutil

    return os.environ.get("AIRQUALITY_TEST_CHROMIUM") or shutil.which("chromium")


def test_the_forecast_page_renders_in_chromium(servers: dict[str, Any], tmp_path: Path) -> None:
    """The page as a browser draws it: every chart laid out, the points in their band's
    colours, nothing fetched from anywhere but the service; a screenshot is kept."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium: scripts/chromium.sh installs Debian's (as root)")
    from playwright.sync_api import sync_playwright

    from airquality_assets.serving.page import BAND_COLOURS

    latest = httpx.get(f"{servers['open']}/forecast?location=beijing", timeout=30).json()
    expected = [BAND_COLOURS[band - 1] for band in latest["pollutants"]["pm2_5"]["aqi"]]
    expected_css = [
        f"rgb({int(c[1:3], 16)}, {int(c[3:5], 16)}, {int(c[5:7], 16)})" for c in expected
    ]
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 1200})
            page.on("request", lambda request: requested.append(request.url))
            response = page.goto(f"{servers['open']}/forecast/page?location=beijing")
            assert response is not None and response.status == 200
            charts = page.locator("svg")
            assert charts.count() == 4  # next 24 h and last 7 days, for pm2_5 and nh3
            for index in range(charts.count()):
                box = charts.nth(index).bounding_box()
                assert box is not None and box["width"] >= 720 and box["height"] >= 240  # + border
            fills = page.eval_on_selector_all(
                "svg[aria-label^='pm2_5 forecast'] circle",
                "nodes => nodes.map(n => getComputedStyle(n).fill)",
            )
            assert fills == expected_css  # each point in its AQI band's colour
            assert page.locator("svg polyline.observed").count() == 2
            # The 80 % interval as a band around the next 24 h, for both pollutants, and
            # the accuracy-by-horizon table.
            assert page.locator("svg polygon.interval").count() == 2
            assert page.locator("table.accuracy, p.no-accuracy").count() == 2
            assert page.get_by_text("40-105").count() == 1  # pm2_5 +24 h: 60 - 20 .. 60 + 45
            version = latest["model"]["version"]
            assert page.get_by_text(f"version {version}").count() == 1
            page.screenshot(path=str(tmp_path / "forecast_page.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "forecast_page.png").stat().st_size > 10_000
    assert all(url.startswith(servers["open"]) for url in requested), requested


def test_metadata(client: httpx.Client) -> None:
    for meta in (client.get("/metadata").json(), client.post("/metadata", json={}).json()):
        assert meta["model_name"] == "airquality-lstm" and meta["model_version"] == "7"
        assert meta["lookback"] == LOOKBACK and meta["horizons"] == [1, 2, 3, 6, 12, 24]
        assert meta["training_window"]["start"].startswith("2010")
        assert "wind_u" in meta["feature_names"] and meta["test_metrics"]["pm2_5"]["mae"] == 12.5
        assert "winddir" in meta["required_fields"] and meta["max_locations"] == 64


@pytest.mark.usefixtures("first_answer")
def test_health_and_metrics(client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/predict", content=b"{", headers={"content-type": "application/json"})
    text = client.get("/metrics").text
    for name in (
        "airquality_predictions_total",
        'airquality_predicted_concentration_ug_m3_bucket{le="5.0",pollutant="pm2_5"}',
        'airquality_validation_failures_total{reason="json_invalid"}',
        'airquality_model_info{model_name="airquality-lstm",model_version="7"} 1.0',
        "bentoml_service_request_total",
    ):
        assert name in text, name
    sums = [line for line in text.splitlines() if line.startswith(f"{PREDICTED}_sum")]
    assert sums and not any("nan" in line.lower() for line in sums)


PREDICTED = "airquality_predicted_concentration_ug_m3"


def _predictions_total(client: httpx.Client) -> float:
    lines = client.get("/metrics").text.splitlines()
    (line,) = [x for x in lines if x.startswith("airquality_predictions_total")]
    return float(line.split()[-1])


def test_a_second_instance_on_the_same_home_keeps_the_first_ones_metrics(
    client: httpx.Client, body: dict[str, Any], homes: dict[str, Path], tmp_path: Path
) -> None:
    """BentoML empties $BENTOML_HOME/prometheus_multiproc_dir at each start: each instance
    now has a folder of its own."""
    assert client.post("/predict", json=body).status_code == 200
    before = _predictions_total(client)
    assert before >= len(body["locations"])
    log = tmp_path / "second.log"
    second, url = start(homes["open"], log)
    try:
        wait_ready(second, url, log)
        assert _predictions_total(client) >= before  # not emptied by the second start
        with httpx.Client(base_url=url, timeout=30) as other:
            assert other.post("/predict", json=body).status_code == 200
            assert _predictions_total(other) == len(body["locations"])  # its own count
    finally:
        stop(second)
    assert _predictions_total(client) >= before


def test_request_heads_are_bounded(servers: dict[str, Any]) -> None:
    """uvicorn as BentoML runs it has no header cap: the service installs one (431)."""
    big = {"x-pad": "a" * 64_000}
    response = httpx.get(f"{servers['open']}/livez", headers=big, timeout=30)
    assert response.status_code == 431
    assert response.json()["details"][0]["code"] == "headers_too_large"
    assert httpx.get(f"{servers['open']}/livez", timeout=30).status_code == 200


def v8_body(locations: tuple[str, ...] = ("beijing",), seed: int = 1) -> dict[str, Any]:
    """A body for the v8 champion: its fields only, its lookback, and the forecast."""
    return make_forecast_body(
        locations, seed, targets=V8_TARGETS, lookback=V8_LOOKBACK, hours=V8_HOURS
    )


def direct_two_input_answer(package: Path, body: dict[str, Any]) -> np.ndarray:
    """What the package's Keras model says for ``body``, inputs built by training's path
    (frames; the forecast block issued at each location's last observation)."""
    from airquality_assets.transforms.forecast_inputs import forecast_block

    model, meta = load_package(package)
    xs, blocks = [], []
    for entry in body["locations"]:
        frame = pd.DataFrame(entry["observations"])
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        xs.append(feature_matrix(frame, meta.feature_names))
        last = frame["time"].iloc[-1]
        forecast = pd.DataFrame(entry["forecast"])
        forecast["time"] = pd.to_datetime(forecast["time"], utc=True)
        forecast = forecast.assign(location="x", issue_time=last, lead=range(1, V8_HOURS + 1))
        at, names = np.array([last.value // 10**9]), meta.future_feature_names
        blocks.append(forecast_block(forecast, at, np.array([0]), ["x"], names, V8_HOURS))
    return np.maximum(model.predict([np.stack(xs), np.concatenate(blocks)], verbose=0), 0.0)


def test_auth_and_a_newly_promoted_champion(
    servers: dict[str, Any], body: dict[str, Any], homes: dict[str, Path]
) -> None:
    """Same code, a newer champion in the store: served with its own request contract,
    which here includes the weather forecast of the target hours."""
    good = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=servers["auth"], timeout=30) as auth:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = auth.post("/predict", json=v8_body(), headers=headers)
            assert response.status_code == 401, headers
            assert response.json()["details"][0]["field"] == "Authorization"
            assert auth.get("/metadata", headers=headers).status_code == 401
            assert auth.get("/forecast?location=beijing", headers=headers).status_code == 401
            assert auth.get("/forecast/page", headers=headers).status_code == 401
            assert auth.post("/metadata", headers=headers).status_code == 401
        latest = auth.get("/forecast?location=beijing", headers=good)
        assert latest.status_code == 200 and latest.json()["location"] == "beijing"
        meta = auth.get("/metadata", headers=good).json()
        assert (meta["model_version"], meta["lookback"]) == ("8", V8_LOOKBACK)
        assert meta["target_pollutants"] == list(V8_TARGETS)
        assert meta["forecast_hours"] == V8_HOURS and "winddir" in meta["forecast_fields"]
        assert meta["future_feature_names"][-1] == "dow_cos"
        response = auth.post("/predict", json=v8_body(), headers=good)
        assert response.status_code == 200, response.text
        forecast = response.json()["forecasts"][0]
        assert response.json()["model"]["version"] == "8"
        assert forecast["horizons"] == list(range(1, V8_HOURS + 1))
        assert set(forecast["pollutants"]) == set(V8_TARGETS)
        refused = auth.post("/predict", json=body, headers=good)  # v7's contract
        assert refused.status_code == 422
        # a real two-input request equals the model's own answer on training's inputs
        three = v8_body(("beijing", "delhi", "london"), seed=4)
        answer = auth.post("/predict", json=three, headers=good).json()
        direct = direct_two_input_answer(homes["v8"], three)
        for i, entry in enumerate(answer["forecasts"]):
            assert entry["times"][0] == three["locations"][i]["forecast"][0]["time"]
            for j, pollutant in enumerate(V8_TARGETS):
                got = entry["pollutants"][pollutant]["values"]
                np.testing.assert_allclose(got, direct[i, :, j], atol=1e-4, rtol=0)
        for open_path in ("/livez", "/readyz", "/metrics", "/docs.json", "/schema.json"):
            assert auth.get(open_path).status_code == 200, open_path
    with bentoml.SyncHTTPClient(servers["auth"], token=TOKEN) as sync:
        assert sync.predict(**v8_body())["model"]["version"] == "8"
    logs = servers["logs"]
    assert "auth OFF" in (logs / "open.log").read_text()
    started = (logs / "auth.log").read_text()
    assert "auth ON" in started and "open paths: /livez" in started and TOKEN not in started


def forecast_bad_requests() -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, body, field substring, code) per bad forecast, on a valid two-location body."""
    good = v8_body(("beijing", "delhi"))

    def changed(edit: Any) -> dict[str, Any]:
        body = copy.deepcopy(good)
        edit(body["locations"][1])
        return body

    def set_hour(index: int, **values: Any) -> Any:
        return lambda entry: entry["forecast"][index].update(values)

    def shift_all(entry: dict[str, Any]) -> None:
        for hour in entry["forecast"]:
            at = pd.Timestamp(hour["time"]) + pd.Timedelta(hours=1)
            hour["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")

    at = "locations[1].forecast[2]"
    return [
        ("missing", changed(lambda e: e.pop("forecast")), "locations[1].forecast", "missing"),
        ("short", changed(lambda e: e["forecast"].pop()), "locations[1].forecast", "too_short"),
        (
            "long",
            changed(lambda e: e["forecast"].append(dict(e["forecast"][-1]))),
            "locations[1].forecast",
            "too_long",
        ),
        ("null", changed(lambda e: e.update(forecast=None)), "forecast", "list_type"),
        (
            "gap",
            changed(set_hour(2, time="2014-12-31T04:00:00Z")),
            "locations[1]",
            "not_consecutive",
        ),
        ("late start", changed(shift_all), "locations[1]", "forecast_not_next"),
        ("humidity", changed(set_hour(2, humidity=101.0)), f"{at}.humidity", "less_than_equal"),
        ("winddir", changed(set_hour(2, winddir=-1.0)), f"{at}.winddir", "greater_than_equal"),
        ("string", changed(set_hour(2, pressure="low")), f"{at}.pressure", "float_type"),
        ("unknown", changed(set_hour(2, pm2_5=12.0)), at, "unknown_field"),
        ("naive", changed(set_hour(2, time="2014-12-31T02:00:00")), f"{at}.time", "time_format"),
    ]


def test_bad_forecasts_get_a_bounded_4xx_naming_field_and_reason(
    servers: dict[str, Any],
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failures = []
    with httpx.Client(base_url=servers["auth"], timeout=30, headers=headers) as auth:
        before = auth.post("/predict", json=v8_body(("beijing", "delhi")))
        assert before.status_code == 200
        for name, body, field, code in forecast_bad_requests():
            response = auth.post("/predict", json=body)
            try:
                payload = response.json()
                first = payload["details"][0]
                ok = (
                    response.status_code == 422
                    and field in first["field"]
                    and code in first["code"]
                    and payload["error"].startswith(first["field"])
                    and len(response.content) < 5_000
                )
            except (ValueError, KeyError, TypeError, IndexError):
                ok, payload = False, response.text[:300]
            if not ok:
                failures.append(f"{name}: {response.status_code} {payload}")
        assert not failures, "\n".join(failures)
        after = auth.post("/predict", json=v8_body(("beijing", "delhi")))
        assert after.json() == before.json()  # the worker survived and answers the same
        spec = auth.get("/docs.json").json()
        hour = spec["components"]["schemas"]["ForecastHour"]["properties"]
        assert hour["humidity"]["maximum"] == 100 and "winddir" in hour
        request = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        example = request["schema"]["example"]
        assert len(example["locations"][0]["forecast"]) == V8_HOURS
        assert auth.post("/predict", json=example).status_code == 200  # the example is valid


def test_concurrent_two_input_requests_are_merged_without_mixing(
    servers: dict[str, Any],
) -> None:
    """The micro-batcher stacks both inputs of concurrent requests: each client still gets
    exactly its own answer."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bodies = [v8_body(tuple(f"c{j}" for j in range(1 + i % 3)), seed=10 + i) for i in range(12)]
    with httpx.Client(base_url=servers["auth"], timeout=60, headers=headers) as auth:
        serial = [auth.post("/predict", json=b).json() for b in bodies]

    async def together() -> list[Any]:
        async with httpx.AsyncClient(base_url=servers["auth"], timeout=60, headers=headers) as c:
            answers = await asyncio.gather(*(c.post("/predict", json=b) for b in bodies))
        return [a.json() for a in answers]

    merged = asyncio.run(together())
    for alone, batched in zip(serial, merged, strict=True):
        # a merged pass runs another bucket's executable: equal up to float32 rounding
        assert [f["location"] for f in batched["forecasts"]] == [
            f["location"] for f in alone["forecasts"]
        ]
        for a, b in zip(alone["forecasts"], batched["forecasts"], strict=True):
            assert a["times"] == b["times"]
            for pollutant in V8_TARGETS:
                np.testing.assert_allclose(
                    b["pollutants"][pollutant]["values"],
                    a["pollutants"][pollutant]["values"],
                    atol=1e-3,
                )


def test_a_champion_promoted_while_serving_is_swapped_in_without_a_failed_request(
    servers: dict[str, Any], homes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Runs after the test above (it needs v8 served): v9, same contract, lands in the store
    while a client calls /predict without pause; every answer is a 200, from v8 until the
    swap and from v9 after it. Then v10, another contract (observations only, another
    lookback), is refused and v9 kept."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers: list[tuple[int, str | None]] = []
    done = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=servers["auth"], timeout=30, headers=headers) as client:
            while not done.is_set():
                response = client.post("/predict", json=v8_body())
                ok = response.status_code == 200
                answers.append(
                    (response.status_code, response.json()["model"]["version"] if ok else None)
                )

    root = tmp_path_factory.mktemp("promoted")
    v9 = build_forecast_package(
        root / "v9",
        units=12,
        targets=V8_TARGETS,
        hours=V8_HOURS,
        lookback=V8_LOOKBACK,
        version="9",
        seed=5,
    )
    v10 = build_package(
        root / "v10", targets=V8_TARGETS, horizons=(1, 6), lookback=24, version="10", seed=6
    )
    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        while not answers:
            time.sleep(0.1)
        import_packages(homes["auth"], v9)  # what the `bento` asset does after a promotion
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and (not answers or answers[-1][1] != "9"):
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        done.set()
        thread.join()
    assert {status for status, _ in answers} == {200}, answers[-5:]
    versions = [version for _, version in answers]
    first_v9 = versions.index("9")
    assert versions[:first_v9] and set(versions[:first_v9]) == {"8"}
    assert set(versions[first_v9:]) == {"9"}  # one client in sequence: never back to v8
    with httpx.Client(base_url=servers["auth"], timeout=30, headers=headers) as client:
        meta = client.get("/metadata").json()
        assert (meta["model_version"], meta["forecast_hours"]) == ("9", V8_HOURS)
        exposed = client.get("/metrics").text
        info = {
            line.split("}")[0] + "}": float(line.split()[-1])
            for line in exposed.splitlines()
            if line.startswith("airquality_model_info{")
        }
        assert [v for k, v in info.items() if 'model_version="9"' in k] == [1.0]
        assert [v for k, v in info.items() if 'model_version="8"' in k] == [0.0]

        import_packages(homes["auth"], v10)
        log = servers["logs"] / "auth.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "restart to adopt it" not in log.read_text():
            time.sleep(0.2)
        assert "restart to adopt it" in log.read_text()
        assert client.get("/metadata").json()["model_version"] == "9"
        assert client.post("/predict", json=v8_body()).status_code == 200

        # v11: v9's contract, but its model.keras is cut short in the store (the import
        # refuses such a package, so it is written into the store directly)
        store_truncated(homes["auth"], v9, version="11")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "its model is corrupt" not in log.read_text():
            time.sleep(0.2)
        text = log.read_text()
        assert "its model is corrupt" in text and "still serving airquality-lstm:" in text
        assert text.count("its model is corrupt") == 1  # refused once, not on every poll
        assert client.get("/metadata").json()["model_version"] == "9"
        assert client.post("/predict", json=v8_body()).status_code == 200


def store_truncated(home: Path, package: Path, version: str) -> None:
    """Put ``package`` into the store as MLflow ``version`` with a truncated model.keras."""
    code = "\n".join(
        [
            "import sys, json, bentoml, pathlib",
            "src, version = pathlib.Path(sys.argv[1]), sys.argv[2]",
            "meta = json.loads((src / 'metadata.json').read_text())",
            "meta['model_version'] = version",
            "data = (src / 'model.keras').read_bytes()[:3000]",
            "with bentoml.models.create('airquality-lstm', metadata={'mlflow_version': version})"
            " as m:",
            "    pathlib.Path(m.path_of('metadata.json')).write_text(json.dumps(meta))",
            "    pathlib.Path(m.path_of('model.keras')).write_bytes(data)",
        ]
    )
    subprocess.run(
        [sys.executable, "-c", code, str(package), version],
        env=server_env(home),
        capture_output=True,
        text=True,
        check=True,
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FUZZ_EXAMPLES = {"json": 0, "bytes": 0, "mutated": 0}


@pytest.mark.usefixtures("first_answer")  # the model has answered once
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=JSON, raw=st.binary(max_size=300), leaf=JSON, where=st.integers(0, 10**6))
def test_fuzzed_bodies_never_get_a_5xx(
    client: httpx.Client,
    body: dict[str, Any],
    document: Any,
    raw: bytes,
    leaf: Any,
    where: int,
) -> None:
    """Generated JSON documents, byte strings and valid bodies with one leaf replaced."""
    mutated = copy.deepcopy(body)
    observation = mutated["locations"][where % 3]["observations"][where % LOOKBACK]
    keys = sorted(observation)
    observation[keys[where % len(keys)]] = leaf
    headers = {"content-type": "application/json"}
    for kind, content in (
        ("json", json.dumps(document).encode()),
        ("bytes", raw),
        ("mutated", json.dumps(mutated).encode()),
    ):
        response = client.post("/predict", content=content, headers=headers)
        assert response.status_code < 500, (content[:200], response.text[:300])
        if response.status_code != 200:
            assert response.json()["details"][0]["code"]
        FUZZ_EXAMPLES[kind] += 1


def test_answer_unchanged_after_fuzzing(
    client: httpx.Client, body: dict[str, Any], first_answer: dict[str, Any]
) -> None:
    assert sum(FUZZ_EXAMPLES.values()) >= 3 * 150, FUZZ_EXAMPLES
    print(f"fuzzed /predict with {FUZZ_EXAMPLES}")
    assert client.post("/predict", json=body).json() == first_answer


def test_empty_token_is_refused_at_start(tmp_path: Path, homes: dict[str, Path]) -> None:
    log = tmp_path / "serve.log"
    process, _ = start(homes["open"], log, AIRQUALITY_API_TOKEN=" ")
    try:
        code = process.wait(120)
    finally:
        stop(process)
    assert code != 0
    assert "AIRQUALITY_API_TOKEN is set but empty" in log.read_text()


def test_no_model_in_store_fails_start(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process, _ = start(tmp_path / "empty_home", log)
    try:
        code = process.wait(120)
    finally:
        stop(process)
    assert code != 0
    assert "Run the training job first" in log.read_text()


def test_a_truncated_model_stops_the_start_with_one_clear_error(
    tmp_path: Path, package_dir: Path
) -> None:
    """Not a crash loop of workers with Keras' "File not found": one error, and an exit."""
    home = tmp_path / "home"
    (tag,) = import_packages(home, package_dir)
    name, version = tag.split(":")
    stored = home / "models" / name / version / "model.keras"
    stored.write_bytes(stored.read_bytes()[:2000])
    log = tmp_path / "serve.log"
    process, _ = start(home, log)
    try:
        code = process.wait(120)
    finally:
        stop(process)
    text = log.read_text()
    assert code != 0
    assert f"cannot serve {tag}" in text and "not a whole Keras archive" in text
    assert "File not found" not in text
