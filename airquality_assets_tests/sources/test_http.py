"""Shared HTTP plumbing: retry configuration, key scrubbing, error texts, throttling."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer

from airquality_assets.sources import http
from airquality_assets.sources.base import SourceError
from airquality_assets_tests.sources import closed_port, fixture_bytes, local_server

KEY = "0123456789abcdef0123456789abcdef"
CTX = http.CallContext("testsource", "london", "2024-03-04..2024-03-04", KEY)
FAST = http.RetryPolicy(max_retries=2, backoff_factor=0.001, backoff_jitter_s=0.0)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[HTTPServer]:
    with local_server() as srv:
        yield srv


@pytest.fixture
def server(shared_server: HTTPServer) -> Iterator[HTTPServer]:
    """The module's server, reset; fails the test if a request matched no handler."""
    shared_server.clear()
    yield shared_server
    shared_server.check_assertions()


def assert_key_hidden(exc: BaseException, key: str = KEY) -> None:
    """The key appears nowhere a log or traceback could show it."""
    shown = "".join(traceback.format_exception(exc))
    assert key not in str(exc)
    assert key not in repr(exc)
    assert key not in shown
    assert exc.__cause__ is None


def test_retry_configuration_matches_policy() -> None:
    policy = http.RetryPolicy(
        max_retries=3, backoff_factor=0.5, backoff_jitter_s=0.25, max_retry_after_s=30
    )
    retry = http.build_retry(policy)
    assert retry.total == 3
    assert retry.status_forcelist == {429, 500, 502, 503, 504}
    assert not {400, 401, 403, 404} & set(retry.status_forcelist)
    assert retry.allowed_methods == frozenset({"GET"})
    assert retry.raise_on_status is False
    assert retry.respect_retry_after_header is True
    assert retry.backoff_factor == 0.5
    assert retry.backoff_jitter == 0.25
    assert retry.retry_after_max == 30
    assert policy.max_attempts == 4


def test_session_mounts_retry_for_both_schemes() -> None:
    session = http.build_session(FAST)
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix + "example.org")
        assert adapter.max_retries.total == 2


def test_policy_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="AIRQUALITY_HTTP_MAX_RETRIES must be >= 0"):
        http.RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        http.RetryPolicy(max_retry_after_s=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"No account found with API key '{KEY}'", "No account found with API key '***'"),
        (
            f"GET /data/2.5/air_pollution?lat=1&lon=2&appid={KEY} failed",
            "GET /data/2.5/air_pollution?lat=1&lon=2&appid=*** failed",
        ),
        # Unknown secret: still removed because it sits in a credential parameter.
        (
            "url: /timeline/x?key=SOMEOTHERKEY&unitGroup=metric",
            "url: /timeline/x?key=***&unitGroup=metric",
        ),
    ],
)
def test_scrub_removes_keys(text: str, expected: str) -> None:
    assert http.scrub(text, [KEY]) == expected


def test_scrub_handles_url_quoted_keys() -> None:
    key = "abc/def+ghi="
    assert http.scrub("k=abc%2Fdef%2Bghi%3D and abc/def+ghi=", [key]) == "k=*** and ***"


def test_redact_url_drops_credential_params_only() -> None:
    url = f"https://x.test/timeline/1%2C2/2024-03-04/2024-03-04?key={KEY}&unitGroup=metric&include=days%2Chours"
    redacted = http.redact_url(url)
    assert KEY not in redacted
    assert "key=" not in redacted
    assert redacted.endswith("?unitGroup=metric&include=days%2Chours")
    assert http.redact_url(f"https://x.test/a?lat=1&appid={KEY}") == "https://x.test/a?lat=1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(51.5074, "51.5074"), (-0.1278, "-0.1278"), (50, "50"), (-0.0, "0"), (1e-7, "0")],
)
def test_format_coordinate(value: float, expected: str) -> None:
    assert http.format_coordinate(value) == expected


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "owm_error_401.json",
            "Invalid API key. Please see https://openweathermap.org/faq#error401",
        ),
        ("owm_error_400_wrong_latitude.json", "wrong latitude"),
        ("vc_error_400.txt", "Bad API Request:Invalid location parameter value."),
        ("owm_error_502.html", "502 Bad Gateway"),
    ],
)
def test_summarize_body_known_formats(fixture: str, expected: str) -> None:
    assert http.summarize_body(fixture_bytes(fixture)).startswith(expected)


def test_summarize_body_html_without_title_and_edge_cases() -> None:
    assert (
        http.summarize_body(b"<html><body><h1>Oops</h1>\n<p>down</p></body></html>") == "Oops down"
    )
    assert http.summarize_body(b"") == "(empty body)"
    assert http.summarize_body(b'{"cod":500}') == '{"cod":500}'
    long = http.summarize_body(b"x" * 5000)
    assert len(long) <= 300
    assert long.endswith("...")


def test_summarize_body_scrubs_before_trimming() -> None:
    # The key straddles the trim point: a half key must not survive either.
    body = ("a" * 290 + f" API key '{KEY}'").encode()
    summary = http.summarize_body(body, [KEY])
    assert KEY[:8] not in summary


def test_status_hints() -> None:
    assert "API key" in http.status_hint(401)
    assert "coordinates" in http.status_hint(400)
    assert http.status_hint(503) == "server error"
    assert http.status_hint(418) == "unexpected response"


def test_throttle_spaces_calls() -> None:
    throttle = http.MinIntervalThrottle(0.1)
    started = time.monotonic()
    for _ in range(3):
        throttle.wait()
    assert time.monotonic() - started >= 0.19
    with pytest.raises(ValueError, match="OPENWEATHER_MIN_INTERVAL_S must be >= 0"):
        http.MinIntervalThrottle(-1)


def test_zero_interval_throttle_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(http.time, "sleep", sleeps.append)
    throttle = http.MinIntervalThrottle(0)
    for _ in range(100):
        throttle.wait()
    assert sleeps == []


def _get(url: str, policy: http.RetryPolicy = FAST) -> requests.Response:
    session = http.build_session(policy)
    params = [("lat", "1"), ("appid", KEY)]
    response, _ = http.get_validated(session, url, params, 2.0, CTX, policy, lambda _: None)
    return response


def test_final_failed_response_is_an_error_that_counts_attempts(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_data(fixture_bytes("owm_error_502.html"), status=502)
    with pytest.raises(SourceError) as caught:
        _get(server.url_for("/x"))
    assert len(server.log) == 3
    error = caught.value
    assert error.status == 502
    assert "server error: 502 Bad Gateway (gave up after 3 attempts)" in str(error)
    assert error.source == "testsource"
    assert error.location == "london"
    assert error.time_range == "2024-03-04..2024-03-04"


@pytest.mark.timeout(20)
def test_hostile_retry_after_is_capped(server: HTTPServer) -> None:
    server.expect_oneshot_request("/x").respond_with_data(
        "busy", status=503, headers={"Retry-After": "86400"}
    )
    server.expect_oneshot_request("/x").respond_with_data("ok")
    capped = http.RetryPolicy(max_retries=2, backoff_factor=0.001, max_retry_after_s=0)
    started = time.monotonic()
    response = _get(server.url_for("/x"), capped)
    assert response.status_code == 200
    assert time.monotonic() - started < 5
    assert len(server.log) == 2


def test_malformed_retry_after_is_a_clear_error(server: HTTPServer) -> None:
    server.expect_request("/x").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "soon"}
    )
    with pytest.raises(SourceError) as caught:
        _get(server.url_for("/x"))
    assert "Retry-After" in caught.value.reason
    assert_key_hidden(caught.value)


def test_connection_refused_is_a_clear_error() -> None:
    with pytest.raises(SourceError) as caught:
        _get(f"http://127.0.0.1:{closed_port()}/x")
    error = caught.value
    assert error.status is None
    assert "could not connect" in error.reason
    assert "gave up after 3 attempts" in error.reason
    assert "no HTTP response" in str(error)
    assert_key_hidden(error)
