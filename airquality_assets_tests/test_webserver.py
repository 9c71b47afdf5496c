"""Smoke test: the real Dagster webserver loads workspace.yaml and serves the data assets, and
a run recorded by ``local_runs`` (how the demo runs jobs) shows under its job there, both on
the project's own instance file (the root ``dagster.yaml``, in a copy of the project root)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from airquality_assets.programs.local_runs import LOCATION_NAME, load_code_location, run_job

ROOT = Path(__file__).resolve().parent.parent
QUERY = "{ assetNodes { assetKey { path } isPartitioned } }"
JOB_RUNS = (
    '{ pipelineOrError(params: {repositoryLocationName: "%s", repositoryName: "__repository__",'
    ' pipelineName: "ingestion"}) { ... on Pipeline { runs { runId status } } } }'
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_webserver_lists_data_assets_and_the_runs_of_a_job(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"  # stands for the project root: DAGSTER_HOME with its dagster.yaml
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.chdir(home)  # the file's paths are relative to the root, where commands run
    tags = {
        "dagster/asset_partition_range_start": "2014-03-01|beijing",
        "dagster/asset_partition_range_end": "2014-03-01|beijing",
    }
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        load_code_location(instance, working_directory=str(ROOT)) as location,
    ):
        recorded = run_job(location, instance, "ingestion", tags=tags)
    assert recorded.success
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "AIRQUALITY_DATA_DIR": str(data_dir),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            str(ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        nodes = None
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"webserver exited: {server.stderr.read().decode()[-2000:]}")
            try:
                data = _graphql(port, QUERY)
                nodes = data.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert nodes, "webserver did not serve asset nodes within 300 s (a loaded machine)"
        partitioned = {"/".join(n["assetKey"]["path"]): n["isPartitioned"] for n in nodes}
        for name in ("raw_air_quality", "raw_weather", "hourly_observations"):
            assert partitioned.get(name) is True, f"{name} missing or unpartitioned"
        runs = _graphql(port, JOB_RUNS % LOCATION_NAME)["data"]["pipelineOrError"]["runs"]
        assert [(r["runId"], r["status"]) for r in runs] == [(recorded.run_id, "SUCCESS")]
        assert (home / ".dagster_home" / "history" / "runs.db").exists()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
