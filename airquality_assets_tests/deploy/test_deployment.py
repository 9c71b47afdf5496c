"""The production instance's own classes (``airquality_assets/deployment.py``), on a real
PostgreSQL server and a real code server.

The stack test (``scripts/stack.sh``) shows the same two behaviours on the whole stack: a
PostgreSQL restart under the webserver, a code server killed during a run.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import dagster as dg
import pytest
from dagster._core.launcher.base import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from airquality_assets import deployment
from airquality_assets.deployment import ReconnectingPostgresStorage, WatchedRunLauncher
from airquality_assets_tests.deploy.conftest import query


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _storage_config(url: str) -> dict:
    parts = urlsplit(url)
    return {
        "postgres_db": {
            "hostname": parts.hostname,
            "port": parts.port or 5432,
            "db_name": parts.path.lstrip("/"),
            "username": parts.username,
            "password": parts.password,
            "scheme": "postgresql+psycopg2",
        }
    }


def _kill_other_connections(url: str) -> int:
    """What a PostgreSQL restart does to a client: every other session of the database ends."""
    database = urlsplit(url).path.lstrip("/")
    rows = query(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        database,
    )
    return len(rows)


def _webserver_storage(kind: type, url: str):
    storage = kind.from_config_value(None, _storage_config(url))
    # what dagster-webserver does at start-up: a pool of one connection per store
    for store in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
        store.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=2)
    return storage


def _dispose(storage) -> None:
    for store in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
        store.dispose()


def _read_everything(storage) -> None:
    storage.run_storage.get_runs()
    storage.event_log_storage.get_asset_records()
    storage.schedule_storage.all_instigator_state()


def test_webserver_pool_survives_the_database_dropping_its_connections(
    new_database: Callable[[str], str],
) -> None:
    url = new_database("reconnect")
    storage = _webserver_storage(ReconnectingPostgresStorage, url)
    _read_everything(storage)  # each store's pool now holds a live connection
    assert _kill_other_connections(url) >= 3
    _read_everything(storage)  # no error: dead connections were replaced at checkout
    _dispose(storage)


def test_stock_webserver_pool_fails_after_the_database_drops_its_connections(
    new_database: Callable[[str], str],
) -> None:
    """The test above can fail: Dagster's own storage hands out the dead connection."""
    from dagster_postgres import DagsterPostgresStorage
    from sqlalchemy.exc import OperationalError

    url = new_database("stock")
    storage = _webserver_storage(DagsterPostgresStorage, url)
    storage.run_storage.get_runs()
    _kill_other_connections(url)
    with pytest.raises(OperationalError, match=r"terminat|closed"):
        storage.run_storage.get_runs()
    _dispose(storage)


DEFINITIONS = """
import dagster as dg

@dg.asset
def probe() -> int:
    return 1

defs = dg.Definitions(assets=[probe])
"""


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real gRPC code server (``dagster api grpc``) on a free port of 127.0.0.1."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "defs.py").write_text(DEFINITIONS)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
         "-f", str(folder / "defs.py")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + 120
    while True:
        try:
            client.ping("x")
            break
        except Exception:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.5)
    yield port
    server.terminate()
    server.wait(timeout=30)


def _started_run(port: int) -> dg.DagsterRun:
    """A run STARTED according to storage, launched (its tag says) on the server at ``port``."""
    return dg.DagsterRun(
        job_name="__ASSET_JOB",
        run_id="0123456789abcdef0123456789abcdef",
        status=dg.DagsterRunStatus.STARTED,
        tags={GRPC_INFO_TAG: json.dumps({"host": "127.0.0.1", "port": port})},
    )


def test_a_run_its_code_server_does_not_know_is_dead(code_server: int) -> None:
    """What a code server that restarted (or whose run process died) answers."""
    result = WatchedRunLauncher().check_run_worker_health(_started_run(code_server))
    assert result.status == WorkerStatus.NOT_FOUND
    assert f"127.0.0.1:{code_server}" in (result.msg or "")


def test_an_unreachable_code_server_gets_a_grace_period() -> None:
    launcher = WatchedRunLauncher()
    run = _started_run(_free_port())  # nothing listens there
    first = launcher.check_run_worker_health(run)
    assert first.status == WorkerStatus.RUNNING and first.transient
    assert "unreachable" in (first.msg or "")
    assert deployment.UNREACHABLE_GRACE_SECONDS == launcher.unreachable_grace_seconds == 300.0
    launcher.unreachable_grace_seconds = 0.0  # the grace is over
    second = launcher.check_run_worker_health(run)
    assert second.status == WorkerStatus.FAILED
    assert "the run is lost" in (second.msg or "")


def test_a_run_launched_elsewhere_is_never_failed_here() -> None:
    run = dg.DagsterRun(job_name="j", run_id="r" * 32, status=dg.DagsterRunStatus.STARTED)
    result = WatchedRunLauncher().check_run_worker_health(run)
    # run monitoring fails every status but RUNNING and SUCCESS
    assert result.status == WorkerStatus.RUNNING and result.transient
