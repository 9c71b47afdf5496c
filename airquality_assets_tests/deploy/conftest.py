"""A real PostgreSQL server for the deployment tests, found through the environment.

``scripts/postgres.sh`` (run by ``scripts/test.sh`` as root with apt) installs and starts
Debian's PostgreSQL and exports ``AIRQUALITY_TEST_POSTGRES_URL``. Without it the tests skip
and say why, except where ``AIRQUALITY_REQUIRE_POSTGRES=1`` (CI sets it): there a missing
server is a failure, so CI can never go green by skipping them.
"""

from __future__ import annotations

import os
import time
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
    try:
        for name in created:
            _drop(connection, name)
    finally:
        connection.close()


def _drop(connection, name: str, attempts: int = 20) -> None:
    """Drop a test database, retrying while a process that outlived the test (a launched
    run writing its last events) is still connecting: FORCE cannot end a backend mid-start."""
    import psycopg2

    for attempt in range(attempts):
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


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


#: Fixture that marks a test as using a real backend -> the name its count is shown under.
BACKEND_FIXTURES = {"postgres_server": "PostgreSQL", "s3": "S3 (moto server)"}
_BACKEND_TESTS: dict[str, set[str]] = {name: set() for name in BACKEND_FIXTURES.values()}


def pytest_collection_finish(session) -> None:
    """Remember which selected tests use a real backend (directly or through a fixture)."""
    for item in session.items:
        for fixture, name in BACKEND_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                _BACKEND_TESTS[name].add(item.nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per real backend with its passed/failed/skipped counts, so CI's output shows
    that those tests ran (CI requires PostgreSQL; moto is a dev dependency)."""
    if not any(_BACKEND_TESTS.values()):
        return  # no backend test was part of this run
    terminalreporter.section("deployment backends")
    for name, nodeids in _BACKEND_TESTS.items():
        outcomes: dict[str, str] = {}
        for outcome in ("passed", "failed", "error", "skipped"):
            for report in terminalreporter.stats.get(outcome, []):
                nodeid = getattr(report, "nodeid", "")
                if nodeid not in nodeids:
                    continue
                if outcome == "passed" and report.when != "call":
                    continue
                # a failure in any phase wins over a passed call (e.g. teardown errors)
                if outcomes.get(nodeid) not in ("failed",):
                    outcomes[nodeid] = "failed" if outcome == "error" else outcome
        counts = {
            k: sum(v == k for v in outcomes.values()) for k in ("passed", "failed", "skipped")
        }
        terminalreporter.write_line(
            f"{name} tests: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped (of {len(nodeids)} selected)"
        )
