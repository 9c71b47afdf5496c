"""A real PostgreSQL server for the deployment tests, found through the environment.

``scripts/postgres.sh`` (run by ``scripts/test.sh`` as root with apt) installs and starts
Debian's PostgreSQL and exports ``AIRQUALITY_TEST_POSTGRES_URL``. Without it the tests skip
and say why, except where ``AIRQUALITY_REQUIRE_POSTGRES=1`` (CI sets it): there a missing
server is a failure, so CI can never go green by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

URL_VARIABLE = "AIRQUALITY_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "AIRQUALITY_REQUIRE_POSTGRES"


def _server_url() -> str:
    url = os.environ.get(URL_VARIABLE, "")
    reason = ""
    if not url:
        reason = f"{URL_VARIABLE} is not set (bash scripts/postgres.sh starts a server and sets it)"
    else:
        try:
            import psycopg2

            psycopg2.connect(url, connect_timeout=5).close()
        except Exception as exc:
            reason = f"PostgreSQL at {URL_VARIABLE} is not reachable: {exc}".strip()
    if reason:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{REQUIRE_VARIABLE}=1 but {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """libpq URL of a maintenance database on a server where our role may CREATE DATABASE."""
    return _server_url()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy with the psycopg2 driver (2.1 defaults to psycopg 3)."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def new_database(postgres_server: str) -> Iterator[Callable[[str], str]]:
    """Create fresh databases (``new_database("dagster")``) and drop them after the test."""
    import psycopg2

    created: list[str] = []

    def create(purpose: str) -> str:
        name = f"aq_test_{purpose}_{uuid.uuid4().hex[:10]}"
        connection = psycopg2.connect(postgres_server)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
                # Throw-away test data: commit without waiting for the disk flush.
                cursor.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        finally:
            connection.close()
        created.append(name)
        return with_database(postgres_server, name)

    yield create
    connection = psycopg2.connect(postgres_server)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in created:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


def query(url: str, sql: str, *params: object) -> list[tuple]:
    """Rows of one SQL query against ``url`` (what the tests read back from PostgreSQL)."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


#: Test files whose outcome CI must show: real backends, never allowed to skip silently.
BACKEND_TESTS = {
    "PostgreSQL": "airquality_assets_tests/deploy/test_postgres.py",
    "S3 (moto server)": "airquality_assets_tests/deploy/test_object_storage.py",
}


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One line per real backend with its passed/failed/skipped counts, in every run's output."""
    counts = {name: {"passed": 0, "failed": 0, "skipped": 0} for name in BACKEND_TESTS}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for name, path in BACKEND_TESTS.items():
                if not nodeid.startswith(path):
                    continue
                if outcome == "passed" and report.when == "call":
                    counts[name]["passed"] += 1
                elif outcome in ("failed", "error"):
                    counts[name]["failed"] += 1
                elif outcome == "skipped":
                    counts[name]["skipped"] += 1
    if not any(sum(c.values()) for c in counts.values()):
        return  # neither file was part of this run
    terminalreporter.section("deployment backends")
    for name, c in counts.items():
        terminalreporter.write_line(
            f"{name} tests: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"
        )
