"""BentoML service vs. a Flask/gunicorn ``model.predict`` baseline, measured in one run.

    python benchmarks/serving/run.py [--requests 400] [--variants default,workers1,...]

Both servers run on 127.0.0.1 with the same 2-layer LSTM(64) model (24 x 17 input, random
seeded weights) and get the same request body (one location, 24 hours). For each server:
1 client, then 16 concurrent clients, a fixed number of requests per client after a
warm-up; p50/p99 latency and throughput, and BentoML/Flask ratios. Then the starvation
case: one legitimate client while two others send ~1 MB junk bodies (unknown keys, just
under the service's body limit) non-stop; its p50 is compared with its idle p50. Also the
bare model call for batch 1 (jitted forward and ``model.predict``). The load generator runs
in this process pinned to the last CPU (``os.sched_setaffinity``); servers are not pinned
(gunicorn gets one sync worker per core, BentoML ``AIRQUALITY_WORKERS`` per variant).

Extra packages: ``flask`` and ``gunicorn`` (``pip install flask gunicorn``; the ``bench``
extra). Nothing is installed by this script. Results also go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import run_load, run_under_junk  # noqa: E402

import airquality_assets  # noqa: E402,F401  (KERAS_BACKEND=jax)
from airquality_assets.ml.package import ModelMetadata, save_package  # noqa: E402
from airquality_assets.transforms.features import default_feature_names  # noqa: E402

TARGETS = ["pm2_5", "pm10", "no2", "o3"]  # 4 targets + 9 weather + 4 calendar = 17 features
LOOKBACK, HORIZONS = 24, list(range(1, 25))
JUNK_BYTES = 999_000  # the service's default limit is 1,000,000 bytes
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "workers1": {"AIRQUALITY_WORKERS": "1"},
    "no_batching": {"AIRQUALITY_BATCHING": "0"},
    "xla_default_threads": {"AIRQUALITY_XLA_THREADS": "0"},
    "access_log": {"AIRQUALITY_ACCESS_LOG": "1"},
}


def build_model(directory: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    features = default_feature_names(TARGETS)
    inputs = keras.Input((LOOKBACK, len(features)))
    x = keras.layers.Normalization(mean=20.0, variance=400.0)(inputs)
    x = keras.layers.LSTM(64, return_sequences=True)(x)
    x = keras.layers.LSTM(64)(x)
    x = keras.layers.Dense(len(HORIZONS) * len(TARGETS), bias_initializer="ones")(x)
    x = keras.layers.Rescaling(30.0)(x)
    model = keras.Model(inputs, keras.layers.Reshape((len(HORIZONS), len(TARGETS)))(x))
    meta = ModelMetadata(
        feature_names=features,
        target_pollutants=TARGETS,
        lookback=LOOKBACK,
        horizons=HORIZONS,
        training_window={"start": "2010-01-01T00:00:00Z", "end": "2014-06-30T23:00:00Z"},
        model_version="bench",
    )
    return save_package(model, meta, directory)


def request_body() -> bytes:
    rng = np.random.default_rng(0)
    start = datetime(2014, 12, 30, tzinfo=UTC)
    observations = [
        {
            "time": (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **{p: round(float(rng.uniform(5, 120)), 2) for p in TARGETS},
            "temp": 3.5,
            "dew": -8.0,
            "humidity": 45.0,
            "pressure": 1021.0,
            "windspeed": round(float(rng.uniform(0, 30)), 1),
            "winddir": 270.0,
            "is_rain": 0,
            "is_snow": 0,
        }
        for h in range(LOOKBACK)
    ]
    return json.dumps(
        {"locations": [{"location": "beijing", "observations": observations}]}
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def junk_body(size: int = JUNK_BYTES) -> bytes:
    """A JSON object of unknown keys just under the service's 1 MB body limit: the costliest
    junk that still gets past the size check (it must be parsed to be refused)."""
    keys, text = 0, "{"
    parts = []
    length = 1
    while length < size - 20:
        part = f'"junk-{keys:07d}": {keys},'
        parts.append(part)
        length += len(part)
        keys += 1
    text += "".join(parts).rstrip(",") + "}"
    return text.encode()


def measure(port: int, body: bytes, requests: int) -> dict[str, Any]:
    asyncio.run(run_load("127.0.0.1", port, body, clients=4, requests_per_client=25))  # warm
    single = asyncio.run(run_load("127.0.0.1", port, body, clients=1, requests_per_client=requests))
    many = asyncio.run(
        run_load("127.0.0.1", port, body, clients=16, requests_per_client=max(1, requests // 4))
    )
    legit, statuses = asyncio.run(
        run_under_junk("127.0.0.1", port, body, junk_body(), requests=max(100, requests // 2))
    )
    starved = legit.summary()
    starved["junk_requests"] = len(statuses)
    starved["junk_statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    starved["p50_ratio_vs_idle"] = round(starved["p50_ms"] / single.summary()["p50_ms"], 2)
    return {
        "1_client": single.summary(),
        "16_clients": many.summary(),
        "1_client_vs_2_junk": starved,
    }


def bare_model_call(package: Path) -> dict[str, float]:
    from airquality_assets.serving.predictor import Predictor

    predictor = Predictor.from_package(package, buckets=(1,))
    predictor.warm_up()
    x = np.random.default_rng(0).uniform(0, 50, (1, LOOKBACK, 17)).astype(np.float32)
    timings = {}
    for name, call, n in (
        ("jitted_forward_ms", lambda: predictor.forward(x), 500),
        ("keras_predict_ms", lambda: predictor.model.predict(x, verbose=0), 100),
    ):
        call()
        started = time.perf_counter()
        for _ in range(n):
            call()
        timings[name] = round((time.perf_counter() - started) / n * 1e3, 3)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests for 1 client")
    parser.add_argument("--variants", default="default", help=f"comma list of {list(VARIANTS)}")
    args = parser.parse_args()
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        sys.exit("gunicorn/flask missing: pip install flask gunicorn (the 'bench' extra)")

    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # load generator (and JAX in this process): 1 core
    work = Path(tempfile.mkdtemp(prefix="aq-bench-"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONPATH": str(REPO),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "KERAS_BACKEND": "jax",
    }
    package = build_model(work / "package")
    subprocess.run(
        [sys.executable, "-c",
         "import sys; from airquality_assets.serving.bentoml_store import import_model_package;"
         "import_model_package(sys.argv[1])", str(package)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    body = request_body()
    results: dict[str, Any] = {
        "cpus": len(cpus),
        "bare_model_batch1": bare_model_call(package),
        "bentoml": {},
    }
    child_env = {**env}  # servers may use every core; only this process is pinned
    try:
        port = free_port()
        flask = subprocess.Popen(
            [f"{bin_dir}/gunicorn", "-w", str(len(cpus)), "--worker-class", "sync",
             "-b", f"127.0.0.1:{port}", "--log-level", "warning",
             "benchmarks.serving.flask_app:app"],
            env={**child_env, "AIRQUALITY_PACKAGE": str(package)}, cwd=REPO,
            start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)),
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}/", flask)
            results["flask_gunicorn"] = measure(port, body, args.requests)
        finally:
            stop(flask)
        for variant in args.variants.split(","):
            port = free_port()
            bento = subprocess.Popen(
                [sys.executable, "-m", "bentoml", "serve", "service:AirQualityForecast",
                 "--working-dir", str(REPO / "bento"), "--host", "127.0.0.1",
                 "--port", str(port)],
                env={**child_env, **VARIANTS[variant]}, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)),
            )  # fmt: skip
            try:
                wait_ready(f"http://127.0.0.1:{port}/readyz", bento)
                results["bentoml"][variant] = measure(port, body, args.requests)
            finally:
                stop(bento)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = results["flask_gunicorn"]
    for variant, figures in results["bentoml"].items():
        for load in ("1_client", "16_clients"):
            ours, theirs = figures[load], base[load]
            figures[load]["throughput_ratio_vs_flask"] = round(
                ours["req_per_s"] / theirs["req_per_s"], 2
            )
            figures[load]["p99_ratio_vs_flask"] = round(ours["p99_ms"] / theirs["p99_ms"], 2)
        print(f"bentoml[{variant}] vs flask: {json.dumps(figures)}")
    text = json.dumps(results, indent=2)
    print(text)
    print(table(results))
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"serving-{datetime.now(UTC):%Y%m%dT%H%M%S}.json").write_text(text)


def _cell(figures: dict[str, Any]) -> str:
    return f"{figures['req_per_s']:.0f}, {figures['p50_ms']:.1f}, {figures['p99_ms']:.1f}"


def table(results: dict[str, Any]) -> str:
    """The table in docs/results.md: one row per load, BentoML (default variant) beside Flask."""
    ours, theirs = results["bentoml"].get("default"), results["flask_gunicorn"]
    if ours is None:
        return ""
    rows = [
        "| load | BentoML: req/s, p50, p99 (ms) | Flask+gunicorn: req/s, p50, p99 (ms) | ratios |",
        "|---|---|---|---|",
    ]
    for load, label in (
        ("1_client", "1 client"),
        ("16_clients", "16 clients"),
        ("1_client_vs_2_junk", "1 client while 2 clients send ~1 MB junk"),
    ):
        a, b = ours[load], theirs[load]
        ratio = f"{a['req_per_s'] / b['req_per_s']:.2f}x throughput"
        ratio += f", p99 {a['p99_ms'] / b['p99_ms']:.2f}x"
        if load == "1_client_vs_2_junk":
            ratio = f"p50 {a['p50_ratio_vs_idle']:.2f}x idle"
            ratio += f" (Flask {b['p50_ratio_vs_idle']:.2f}x)"
        rows.append(f"| {label} | {_cell(a)} | {_cell(b)} | {ratio} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
