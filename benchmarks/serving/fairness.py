"""A 4-location batch client alone and while 2 clients send ~1 MB junk, side by side:
this checkout's service and another checkout's (e.g. before fair validation).

    python benchmarks/serving/fairness.py [--baseline DIR] [--requests 200] [--junk-bytes N]

``--baseline`` is a directory holding another checkout of the project (``git worktree
add`` or ``git archive``): its ``bento/service.py`` and ``airquality_assets`` serve the
same model in the same way, one server at a time. A 4-location body (~24 KB) is over the
inline validation limit (16 KB), so it goes through the validation process the junk goes
through. The goal: under junk at least half the idle rate. Printed: idle and under-junk
req/s and p50 per checkout, and the ratio. Uses the same model, load generator and junk as
``run.py`` (``--junk-bytes``: junk of another size, e.g. 120000 for junk that shares the
batch clients' validation lane); the load generator is pinned to the last CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402
from loadgen import run_load, run_under_junk  # noqa: E402

LOCATIONS = 4


def batch_body() -> bytes:
    one = json.loads(bench.request_body())["locations"][0]
    return json.dumps(
        {"locations": [{**one, "location": f"city-{i}"} for i in range(LOCATIONS)]}
    ).encode()


def measure(port: int, body: bytes, requests: int, junk: bytes) -> dict[str, Any]:
    asyncio.run(run_load("127.0.0.1", port, body, clients=1, requests_per_client=20))  # warm
    idle = asyncio.run(run_load("127.0.0.1", port, body, clients=1, requests_per_client=requests))
    legit, statuses = asyncio.run(run_under_junk("127.0.0.1", port, body, junk, requests=requests))
    out = {"idle": idle.summary(), "under_junk": legit.summary(), "junk_requests": len(statuses)}
    out["rate_ratio_under_junk"] = round(
        out["under_junk"]["req_per_s"] / out["idle"]["req_per_s"], 2
    )
    return out


def serve(repo: Path, env: dict[str, str], cpus: list[int]) -> tuple[subprocess.Popen, int]:
    port = bench.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "service:AirQualityForecast",
         "--working-dir", str(repo / "bento"), "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PYTHONPATH": str(repo)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, set(cpus)),
    )  # fmt: skip
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--junk-bytes", type=int, default=bench.JUNK_BYTES)
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    work = Path(tempfile.mkdtemp(prefix="aq-fair-"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "KERAS_BACKEND": "jax",
    }
    package = bench.build_model(work / "package")
    subprocess.run(
        [sys.executable, "-c",
         "import sys; from airquality_assets.serving.bentoml_store import import_model_package;"
         "import_model_package(sys.argv[1])", str(package)],
        env={**env, "PYTHONPATH": str(bench.REPO)}, check=True, capture_output=True,
    )  # fmt: skip
    body = batch_body()
    checkouts = {"this": bench.REPO, **({"baseline": args.baseline} if args.baseline else {})}
    junk = bench.junk_body(args.junk_bytes)
    results: dict[str, Any] = {
        "cpus": len(cpus),
        "body_bytes": len(body),
        "junk_bytes": len(junk),
        "load": os.getloadavg(),
    }
    try:
        for name, repo in checkouts.items():
            process, port = serve(repo.resolve(), env, cpus)
            try:
                bench.wait_ready(f"http://127.0.0.1:{port}/readyz", process)
                results[name] = measure(port, body, args.requests, junk)
            finally:
                bench.stop(process)
            print(name, json.dumps(results[name]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    out = bench.REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = bench.datetime.now(bench.UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"serving-fairness-{stamp}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
