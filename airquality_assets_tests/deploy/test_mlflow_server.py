"""The MLflow server as compose runs it: its own command, answering the Host header that the
other containers send (``http://mlflow:5000``), and a health check that can tell.

MLflow 3 answers ``403 Invalid Host header - possible DNS rebinding attack detected`` to a
Host other than localhost or a private IP unless ``--allowed-hosts`` names it, and exempts
``/health``: a health check on ``/health`` passed while every tracking call failed.
"""

from __future__ import annotations

import http.client
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from airquality_assets.settings import project_root

COMPOSE = yaml.safe_load((project_root() / "docker-compose.yml").read_text())
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, path: str, host: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """compose's ``mlflow`` command on a free loopback port, SQLite instead of PostgreSQL."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    argv = shlex.split(COMPOSE["services"]["mlflow"]["command"])
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--artifacts-destination") + 1] = str(folder / "artifacts")
    argv += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow), *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            if _get(port, "/health", "localhost")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            pytest.fail("mlflow server did not come up")
        time.sleep(0.5)
    yield port
    server.terminate()
    server.wait(timeout=30)


def test_tracking_answers_the_host_name_compose_clients_send(mlflow_server: int) -> None:
    status, body = _get(mlflow_server, SEARCH, "mlflow:5000")
    assert status == 200, body
    assert "experiments" in body


def test_another_host_name_is_refused_so_the_check_is_live(mlflow_server: int) -> None:
    """Without ``--allowed-hosts``, "mlflow:5000" would be refused exactly like this."""
    status, body = _get(mlflow_server, SEARCH, "tracking.example:5000")
    assert status == 403
    assert "DNS rebinding" in body
    # /health is exempt: it says 200 to the refused host, so it cannot be the health check
    assert _get(mlflow_server, "/health", "tracking.example:5000")[0] == 200


def test_compose_health_check_passes_against_the_server(mlflow_server: int) -> None:
    test = COMPOSE["services"]["mlflow"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    argv = [arg.replace("localhost:5000", f"localhost:{mlflow_server}") for arg in test[1:]]
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    assert subprocess.run(argv, timeout=30).returncode == 0
