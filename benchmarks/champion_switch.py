"""Requests lost while a new champion is promoted: in-place reload vs a server restart.

A local MLflow registry (the embedded default: SQLite file and artifact folder in a temp
directory) holds champion v1, exported into a BentoML store the real service serves on
127.0.0.1. Client threads call /predict without pause; meanwhile v2 is logged, registered,
promoted (``champion`` alias) and exported by the project's own functions, as the training
job's ``champion_model`` and ``bento`` assets do. Two ways to adopt it, side by side:

* ``reload``: the service's champion watcher (``AIRQUALITY_RELOAD_POLL_SECONDS=1``) loads
  and warms v2 beside v1 and swaps it in (what the service does now);
* ``restart``: the server is stopped gracefully and started again on the same port once
  the store has v2 (what ``deploy/bento/serve.sh`` did before).

Counted per mode: requests, non-2xx answers and connection errors, the longest stretch
during which requests failed (first failure to the next success), and the time from the
end of the promotion to the first answer from v2.

    .venv/bin/python -m benchmarks.champion_switch [--seconds 40] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "airquality-lstm"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _body(lookback: int) -> dict:
    rng = np.random.default_rng(0)
    start = datetime(2014, 12, 30, tzinfo=UTC)
    observations = [
        {
            "time": (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pm2_5": round(float(rng.uniform(20, 80)), 1),
            "temp": round(float(rng.uniform(-5, 10)), 1),
        }
        for h in range(lookback)
    ]
    return {"locations": [{"location": "beijing", "observations": observations}]}


def _promote(delta: list[float], name: str) -> str:
    """Log a candidate, register it and move ``champion`` to it; returns its version."""
    from mlflow import MlflowClient

    from airquality_assets.ml.registry import register_and_maybe_promote
    from airquality_assets.ml.tracking import log_candidate_run
    from airquality_assets_tests.support.known_answer import (
        METADATA,
        PARAMS,
        X_TEST,
        make_model,
        metrics_frame,
        score,
    )

    model = make_model(delta)
    run = log_candidate_run(
        PARAMS,
        {"loss": [1.0], "val_loss": [1.0]},
        metrics_frame(model),
        {},
        model,
        X_TEST,
        pip_requirements=["keras"],  # skip mlflow's ~40 s requirement inference
        metadata=METADATA,
        parent_run_id=None,
        run_name=name,
    )
    decision = register_and_maybe_promote(
        MlflowClient(),
        run.model_uri,
        MODEL_NAME,
        score(model),
        "test_rmse_mean",
        evaluate_champion=lambda _uri: float("inf"),  # the new one wins
        run_id=run.run_id,
    )
    assert decision.promoted, decision
    return str(decision.new_version)


@dataclass
class Record:
    started: float
    finished: float
    ok: bool
    version: str | None


@dataclass
class Hammer:
    url: str
    body: dict
    clients: int
    records: list[Record] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _client(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.post(f"{self.url}/predict", json=self.body)
                    ok = 200 <= response.status_code < 300
                    version = response.json()["model"]["version"] if ok else None
                except httpx.HTTPError:
                    ok, version = False, None
                    time.sleep(0.05)  # a refused connection returns at once: do not spin
                self.records.append(Record(started, time.perf_counter(), ok, version))

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        return threads


def _start_server(home: Path, port: int, poll_s: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRQUALITY_")}
    env.update(
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="true",
        PYTHONPATH=str(REPO),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        AIRQUALITY_WORKERS="1",
        AIRQUALITY_RELOAD_POLL_SECONDS=poll_s,
    )
    command = [sys.executable, "-m", "bentoml", "serve", "service:AirQualityForecast"]
    command += ["--working-dir", str(REPO / "bento"), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server not ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def run_mode(mode: str, seconds: float, clients: int, home: Path, log: Path) -> dict[str, object]:
    """Serve the current champion, hammer it, promote the next version meanwhile."""
    from mlflow import MlflowClient

    from airquality_assets.serving.export import export_champion
    from airquality_assets_tests.support.known_answer import LOOKBACK

    v1 = MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion").version
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    poll = "1" if mode == "reload" else "0"
    server = _start_server(home, port, poll, log)
    _wait_ready(url, server)
    hammer = Hammer(url, _body(LOOKBACK), clients)
    threads = hammer.start()
    try:
        time.sleep(seconds / 4)
        promote_started = time.perf_counter()
        v2 = _promote([0.5, 1.0, 1.5], f"{mode}-next")
        export_champion(MODEL_NAME)  # the `bento` asset's import: moves the store's latest
        promoted = time.perf_counter()
        if mode == "restart":
            _stop(server)
            server = _start_server(home, port, poll, log)
        # until v2 answers (or 5 min), then as long again as before the promotion
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline and not any(r.version == v2 for r in hammer.records):
            time.sleep(0.2)
        time.sleep(max(seconds / 4, seconds - (time.perf_counter() - promote_started)))
    finally:
        hammer.stop.set()
        for thread in threads:
            thread.join()
        _stop(server)

    records = sorted(hammer.records, key=lambda r: r.started)
    failures = [r for r in records if not r.ok]
    longest, run_start = 0.0, None
    for record in records:
        if not record.ok and run_start is None:
            run_start = record.started
        elif record.ok and run_start is not None:
            longest = max(longest, record.finished - run_start)
            run_start = None
    if run_start is not None:
        longest = max(longest, records[-1].finished - run_start)
    first_v2 = min((r.finished for r in records if r.version == v2), default=None)
    before = [r for r in records if r.started < promoted]
    return {
        "mode": mode,
        "versions": f"v{v1} -> v{v2}",
        "requests": len(records),
        "failed": len(failures),
        "longest_gap_s": longest,
        "to_v2_s": None if first_v2 is None else first_v2 - promoted,
        "v2_answers": sum(r.version == v2 for r in records),
        "req_per_s_before": len(before) / max(1e-9, promoted - records[0].started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="at least, per mode")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--modes", nargs="+", default=["reload", "restart"])
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    rows = []
    with tempfile.TemporaryDirectory(prefix="champion-switch-") as tmp:
        import mlflow

        from airquality_assets.ml.tracking import default_tracking_uri
        from airquality_assets.serving.export import export_champion

        # One registry and one BentoML store for every mode (BentoML reads BENTOML_HOME
        # once per process); each mode starts from the champion the previous one promoted.
        home = Path(tmp) / "bentoml"
        os.environ["BENTOML_HOME"] = str(home)
        mlflow.set_tracking_uri(default_tracking_uri(tmp))
        mlflow.set_experiment("champion-switch")
        _promote([1.0, 2.0, 3.0], "first")
        export_champion(MODEL_NAME)
        for mode in args.modes:
            log = Path(tmp) / f"{mode}.log"
            try:
                rows.append(run_mode(mode, args.seconds, args.clients, home, log))
            finally:
                print(log.read_text()[-2000:] if log.exists() else "", file=sys.stderr)
            print(rows[-1], flush=True)
    print(
        "\n| mode | champion | requests | failed | longest failing stretch | promotion -> "
        "first answer of the new version | req/s before |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        to_v2 = "never" if r["to_v2_s"] is None else f"{r['to_v2_s']:.1f} s"
        print(
            f"| {r['mode']} | {r['versions']} | {r['requests']} | {r['failed']} | "
            f"{r['longest_gap_s']:.1f} s | {to_v2} | {r['req_per_s_before']:.0f} |"
        )


if __name__ == "__main__":
    main()
