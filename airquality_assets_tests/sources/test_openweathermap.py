"""OpenWeatherMapClient against a real local HTTP server: requests, bodies, every error class."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.sources import http
from airquality_assets.sources.base import AirPollutionSource, Location, RawResponse, SourceError
from airquality_assets.sources.openweathermap import OpenWeatherMapClient
from airquality_assets_tests.sources import closed_port, fixture_bytes, local_server

KEY = "0123456789abcdef0123456789abcdef"
LONDON = Location("london", 51.5074, -0.1278)
START = datetime(2024, 3, 4, 0, tzinfo=UTC)  # 1709510400
END = datetime(2024, 3, 4, 23, tzinfo=UTC)  # 1709593200
HISTORY = "/data/2.5/air_pollution/history"
JSON = "application/json; charset=utf-8"


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


@pytest.fixture
def slow_server() -> Iterator[HTTPServer]:
    """A server of its own for tests whose handlers outlive the client's timeout."""
    with local_server() as srv:
        yield srv


def make_client(server: HTTPServer, **overrides: Any) -> OpenWeatherMapClient:
    """A client tuned for tests: no throttle, near-zero backoff, short timeouts."""
    options: dict[str, Any] = {
        "base_url": server.url_for("/"),
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_factor": 0.001,
        "backoff_jitter_s": 0.0,
        "min_interval_s": 0.0,
    }
    options.update(overrides)
    return OpenWeatherMapClient(KEY, **options)


def serve(server: HTTPServer, body: bytes | str, status: int = 200, **headers: str) -> None:
    server.expect_oneshot_request(HISTORY).respond_with_data(
        body, status=status, content_type=JSON, headers=headers or None
    )


def fetch_history(client: OpenWeatherMapClient) -> RawResponse:
    return client.history(LONDON, START, END)


def expect_failure(client: OpenWeatherMapClient) -> SourceError:
    with pytest.raises(SourceError) as caught:
        fetch_history(client)
    error = caught.value
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in "".join(traceback.format_exception(error))
    assert error.source == "openweathermap"
    assert error.location == "london"
    assert error.time_range == "2024-03-04T00:00:00Z..2024-03-04T23:00:00Z"
    return error


# --- success paths ---------------------------------------------------------------------


def test_history_sends_exact_parameters_and_returns_body_unchanged(server: HTTPServer) -> None:
    body = fixture_bytes("owm_history_london_2024-03-04.json")
    serve(server, body)
    raw = fetch_history(make_client(server))

    assert raw.body == body
    assert raw.record_count == 24
    assert raw.duration_s >= 0
    (request, _), *_ = server.log
    assert request.method == "GET"
    assert request.path == HISTORY
    assert list(request.args.items(multi=True)) == [
        ("lat", "51.5074"),
        ("lon", "-0.1278"),
        ("start", "1709510400"),
        ("end", "1709593200"),
        ("appid", KEY),
    ]
    assert KEY not in raw.url
    assert "appid" not in raw.url
    assert raw.url.endswith(f"{HISTORY}?lat=51.5074&lon=-0.1278&start=1709510400&end=1709593200")


def test_history_converts_other_zones_to_unix_seconds(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_history_empty.json"))
    paris = timezone(timedelta(hours=1))
    make_client(server).history(
        LONDON, datetime(2024, 3, 4, 1, tzinfo=paris), datetime(2024, 3, 4, 3, tzinfo=paris)
    )
    (request, _), *_ = server.log
    assert request.args["start"] == "1709510400"
    assert request.args["end"] == "1709517600"


def test_history_rejects_naive_or_reversed_ranges(server: HTTPServer) -> None:
    client = make_client(server)
    with pytest.raises(ValueError, match="timezone-aware"):
        client.history(LONDON, datetime(2024, 3, 4), END)
    with pytest.raises(ValueError, match="after end"):
        client.history(LONDON, END, START)
    assert server.log == []


def test_empty_list_is_valid(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_history_empty.json"))
    raw = fetch_history(make_client(server))
    assert raw.record_count == 0
    assert raw.body == b'{"coord":{"lon":-0.1278,"lat":51.5074},"list":[]}'


def test_duplicates_and_nulls_are_returned_unchanged(server: HTTPServer) -> None:
    """Deduplication and null handling belong to the parser, not the client."""
    body = fixture_bytes("owm_history_duplicates_nulls.json")
    serve(server, body)
    raw = fetch_history(make_client(server))
    assert raw.body == body
    assert raw.record_count == 4  # 3 distinct hours, one of them twice


def test_client_satisfies_protocol_and_hides_key_in_repr(server: HTTPServer) -> None:
    client = make_client(server)
    assert isinstance(client, AirPollutionSource)
    assert client.source_name == "openweathermap"
    assert KEY not in repr(client)


def test_empty_key_is_rejected_early() -> None:
    with pytest.raises(ValueError, match="OPENWEATHER_API_KEY"):
        OpenWeatherMapClient("")


def test_now_is_utc_floored_to_the_hour() -> None:
    fixed = datetime(2024, 3, 4, 14, 37, 12, 999, tzinfo=timezone(timedelta(hours=2)))
    client = OpenWeatherMapClient(KEY, clock=lambda: fixed)
    assert client.now() == datetime(2024, 3, 4, 12, tzinfo=UTC)
    assert OpenWeatherMapClient(KEY).now().tzinfo is UTC


def test_min_interval_spaces_consecutive_calls(server: HTTPServer) -> None:
    server.expect_request(HISTORY).respond_with_data(
        fixture_bytes("owm_history_empty.json"), content_type=JSON
    )
    client = make_client(server, min_interval_s=0.2)
    started = time.monotonic()
    for _ in range(3):
        fetch_history(client)
    assert time.monotonic() - started >= 0.39
    assert len(server.log) == 3


# --- client errors: no retry -------------------------------------------------------------


def test_401_bad_key_fails_at_once(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_error_401.json"), status=401)
    error = expect_failure(make_client(server))
    assert error.status == 401
    assert "Invalid API key" in error.reason
    assert "HTTP 401" in str(error)
    assert len(server.log) == 1


def test_400_bad_location_with_string_cod_fails_at_once(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_error_400_wrong_latitude.json"), status=400)
    error = expect_failure(make_client(server))
    assert error.status == 400
    assert "wrong latitude" in error.reason
    assert len(server.log) == 1


def test_404_fails_at_once(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_error_404.json"), status=404)
    error = expect_failure(make_client(server))
    assert error.status == 404
    assert "not found" in error.reason
    assert len(server.log) == 1


# --- transient errors: retried -----------------------------------------------------------


def test_429_with_retry_after_waits_then_succeeds(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_error_429.json"), status=429, **{"Retry-After": "1"})
    serve(server, fixture_bytes("owm_history_empty.json"))
    started = time.monotonic()
    raw = fetch_history(make_client(server))
    assert time.monotonic() - started >= 0.95  # waited for Retry-After, not the tiny backoff
    assert raw.record_count == 0
    assert len(server.log) == 2


def test_429_without_retry_after_is_retried(server: HTTPServer) -> None:
    serve(server, fixture_bytes("owm_error_429.json"), status=429)
    serve(server, fixture_bytes("owm_history_london_2024-03-04.json"))
    assert fetch_history(make_client(server)).record_count == 24
    assert len(server.log) == 2


def test_429_forever_names_the_quota(server: HTTPServer) -> None:
    server.expect_request(HISTORY).respond_with_data(
        fixture_bytes("owm_error_429.json"), status=429, content_type=JSON
    )
    error = expect_failure(make_client(server, max_retries=1))
    assert error.status == 429
    assert "rate limit or quota exceeded" in error.reason
    assert "temporary blocked" in error.reason
    assert len(server.log) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(server: HTTPServer, status: int) -> None:
    serve(server, fixture_bytes("owm_error_502.html"), status=status)
    serve(server, b"", status=status)
    serve(server, fixture_bytes("owm_history_london_2024-03-04.json"))
    raw = fetch_history(make_client(server))
    assert raw.record_count == 24
    assert len(server.log) == 3


def test_503_forever_gives_up_after_all_attempts(server: HTTPServer) -> None:
    server.expect_request(HISTORY).respond_with_data(
        fixture_bytes("owm_error_502.html").replace(b"502", b"503"), status=503
    )
    error = expect_failure(make_client(server, max_retries=3))
    assert error.status == 503
    assert "503 Bad Gateway" in error.reason  # HTML trimmed to its title
    assert "<html>" not in error.reason
    assert "gave up after 4 attempts" in error.reason
    assert len(server.log) == 4


def _slow(_request: Request) -> Response:
    time.sleep(0.6)
    return Response(fixture_bytes("owm_history_empty.json"), content_type=JSON)


def test_read_timeout_then_success(slow_server: HTTPServer) -> None:
    slow_server.expect_oneshot_request(HISTORY).respond_with_handler(_slow)
    serve(slow_server, fixture_bytes("owm_history_london_2024-03-04.json"))
    raw = fetch_history(make_client(slow_server, timeout_s=0.2))
    assert raw.record_count == 24


def test_read_timeout_forever_is_a_clear_error(slow_server: HTTPServer) -> None:
    slow_server.expect_request(HISTORY).respond_with_handler(_slow)
    error = expect_failure(make_client(slow_server, timeout_s=0.2, max_retries=1))
    assert error.status is None
    assert "read timed out (timeout 0.2 s)" in error.reason
    assert "gave up after 2 attempts" in error.reason


def test_connection_refused_is_a_clear_error() -> None:
    client = OpenWeatherMapClient(
        KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        max_retries=2,
        backoff_factor=0.001,
        backoff_jitter_s=0.0,
        min_interval_s=0.0,
    )
    error = expect_failure(client)
    assert error.status is None
    assert "could not connect" in error.reason
    assert "no HTTP response" in str(error)


def _cut_off(_request: Request) -> Response:
    """Headers promise 500 bytes, the connection ends after 15: a dropped download."""
    response = Response(b'{"coord":{"lon"', content_type=JSON)
    response.headers["Content-Length"] = "500"
    return response


def test_connection_dropped_mid_body_is_retried_then_a_clear_error(server: HTTPServer) -> None:
    server.expect_request(HISTORY).respond_with_handler(_cut_off)
    error = expect_failure(make_client(server, max_retries=2))
    assert error.status is None
    assert "connection broken while reading the response body" in error.reason
    assert "IncompleteRead" in error.reason
    assert "gave up after 3 attempts" in error.reason
    assert len(server.log) == 3


def test_connection_dropped_once_then_answered(server: HTTPServer) -> None:
    server.expect_oneshot_request(HISTORY).respond_with_handler(_cut_off)
    body = fixture_bytes("owm_history_london_2024-03-04.json")
    serve(server, body)
    assert fetch_history(make_client(server)).body == body
    assert len(server.log) == 2


# --- retries reported: status or error, attempt, the wait actually slept -------------------


def test_each_retry_is_reported_with_status_attempt_and_the_wait_slept(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(server, fixture_bytes("owm_error_429.json"), status=429, **{"Retry-After": "7"})
    serve(server, fixture_bytes("owm_error_502.html").replace(b"502", b"503"), status=503)
    serve(server, fixture_bytes("owm_history_london_2024-03-04.json"))
    slept: list[float] = []
    monkeypatch.setattr(http.time, "sleep", slept.append)
    client = make_client(server, backoff_factor=0.5, backoff_jitter_s=0.25)
    events: list[http.RetryEvent] = []
    client.on_retry = events.append

    assert fetch_history(client).record_count == 24
    assert [(e.status, e.error, e.attempt, e.max_attempts) for e in events] == [
        (429, None, 1, 4),
        (503, None, 2, 4),
    ]
    assert events[0].wait_s == 7.0  # Retry-After
    assert 1.0 <= events[1].wait_s <= 1.25  # backoff 0.5 * 2 plus up to 0.25 s of jitter
    assert slept == [e.wait_s for e in events]  # what was reported is what was waited
    assert client.retries_taken == 2
    text = str(events[0])
    assert "HTTP 429 on attempt 1 of 4; next attempt in 7.0 s" in text
    assert HISTORY in text and KEY not in text and "appid" not in text


def test_urllib3s_own_retry_warnings_carry_no_key(caplog: pytest.LogCaptureFixture) -> None:
    """urllib3 warns "Retrying ... after connection broken by ...: <path with query>"."""
    refused = OpenWeatherMapClient(
        KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        max_retries=1,
        backoff_factor=0.001,
        backoff_jitter_s=0.0,
        min_interval_s=0.0,
    )
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        expect_failure(refused)
    messages = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert messages and all("Retrying" in m for m in messages)
    assert all(KEY not in m and "appid=***" in m for m in messages)


def test_transport_errors_and_bad_bodies_are_reported_too(server: HTTPServer) -> None:
    refused = OpenWeatherMapClient(
        KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        max_retries=2,
        backoff_factor=0.001,
        backoff_jitter_s=0.0,
        min_interval_s=0.0,
    )
    events: list[http.RetryEvent] = []
    refused.on_retry = events.append
    expect_failure(refused)
    assert [(e.status, e.error, e.attempt) for e in events] == [
        (None, "could not connect", 1),
        (None, "could not connect", 2),
    ]  # the third failure is final: said by the SourceError, not reported as a retry

    body = fixture_bytes("owm_history_london_2024-03-04.json")
    serve(server, body[: len(body) // 2])
    serve(server, body)
    client = make_client(server)
    client.on_retry = events.append
    events.clear()
    assert fetch_history(client).body == body
    (event,) = events
    assert event.status is None and event.attempt == 1
    assert event.error is not None and "body is not valid JSON" in event.error


# --- bad 200 bodies: retried like a 5xx, never stored ---------------------------------------


def test_truncated_json_once_then_answered(server: HTTPServer) -> None:
    body = fixture_bytes("owm_history_london_2024-03-04.json")
    serve(server, body[: len(body) // 2])
    serve(server, body)
    response = fetch_history(make_client(server))
    assert response.body == body
    assert response.record_count == 24
    assert len(server.log) == 2


def test_always_truncated_fails_with_parse_error_and_byte_count(server: HTTPServer) -> None:
    body = fixture_bytes("owm_history_london_2024-03-04.json")
    half = body[: len(body) // 2]
    server.expect_request(HISTORY).respond_with_data(half, content_type=JSON)
    error = expect_failure(make_client(server, max_retries=2))
    assert error.status == 200
    assert "not valid JSON" in error.reason
    assert f"{len(half)} bytes received" in error.reason
    assert "gave up after 3 attempts" in error.reason
    assert "HTTP 200: body is not valid JSON" in str(error)  # no "HTTP 200: HTTP 200"
    assert len(server.log) == 3


def test_bad_body_retries_use_the_policy_backoff(server: HTTPServer) -> None:
    """backoff_factor 0.2: urllib3 retries the first failure at once, then waits 0.4 s."""
    server.expect_request(HISTORY).respond_with_data(b'{"list": [', content_type=JSON)
    started = time.monotonic()
    expect_failure(make_client(server, max_retries=2, backoff_factor=0.2))
    assert time.monotonic() - started >= 0.4
    assert len(server.log) == 3


def test_html_200_is_rejected(server: HTTPServer) -> None:
    server.expect_request(HISTORY).respond_with_data(
        b"<html><head><title>Captive portal</title></head></html>", content_type="text/html"
    )
    error = expect_failure(make_client(server, max_retries=0))
    assert "not valid JSON" in error.reason
    assert "Captive portal" in error.reason


@pytest.mark.parametrize("body", [b'{"coord":{"lon":1,"lat":2}}', b'{"list":{}}', b"[]"])
def test_json_without_list_array_is_rejected(server: HTTPServer, body: bytes) -> None:
    server.expect_request(HISTORY).respond_with_data(body, content_type=JSON)
    error = expect_failure(make_client(server, max_retries=1))
    assert "no 'list' array" in error.reason
    assert len(server.log) == 2


# --- the air-pollution forecast: the current one, stored as the issue due now -------------------

FORECAST = "/data/2.5/air_pollution/forecast"
ISSUE = datetime(2024, 3, 4, 12, tzinfo=UTC)
LONDON_FORECAST = "owm_forecast_london_2024-03-04T12.json"


def forecast_client(server: HTTPServer, now: datetime = ISSUE, **overrides: Any):
    return make_client(server, clock=lambda: now, **overrides)


def expect_forecast_failure(client: OpenWeatherMapClient) -> SourceError:
    with pytest.raises(SourceError) as caught:
        client.forecast(LONDON, ISSUE)
    error = caught.value
    assert KEY not in str(error)
    assert KEY not in "".join(traceback.format_exception(error))
    assert (error.source, error.location) == ("openweathermap", "london")
    assert error.time_range == "forecast issued 2024-03-04T12:00:00Z"
    return error


def test_forecast_sends_exact_parameters_and_returns_body_unchanged(server: HTTPServer) -> None:
    body = fixture_bytes(LONDON_FORECAST)
    server.expect_oneshot_request(FORECAST).respond_with_data(body, content_type=JSON)
    raw = forecast_client(server, now=datetime(2024, 3, 4, 14, 59, tzinfo=UTC)).forecast(
        LONDON, ISSUE
    )
    assert raw.body == body
    assert raw.record_count == 5
    (request, _), *_ = server.log
    assert (request.method, request.path) == ("GET", FORECAST)
    assert list(request.args.items(multi=True)) == [
        ("lat", "51.5074"),
        ("lon", "-0.1278"),
        ("appid", KEY),
    ]
    assert KEY not in raw.url
    assert raw.url.endswith(f"{FORECAST}?lat=51.5074&lon=-0.1278")


def test_forecast_of_an_issue_owm_cannot_serve_is_refused_unsent(server: HTTPServer) -> None:
    client = forecast_client(server, now=datetime(2024, 3, 4, 18, tzinfo=UTC))
    with pytest.raises(ValueError, match="no archive"):
        client.forecast(LONDON, ISSUE)  # 6 h old: the next issue is due
    with pytest.raises(ValueError, match="after the clock"):
        client.forecast(LONDON, datetime(2024, 3, 4, 19, tzinfo=UTC))
    hourly = forecast_client(
        server, now=datetime(2024, 3, 4, 13, tzinfo=UTC), forecast_max_age=timedelta(hours=1)
    )
    with pytest.raises(ValueError, match="no archive"):
        hourly.forecast(LONDON, ISSUE)
    assert server.log == []


@pytest.mark.parametrize(
    ("status", "fixture", "expected"),
    [
        (401, "owm_error_401.json", "Invalid API key"),
        (400, "owm_error_400_wrong_latitude.json", "wrong latitude"),
        (404, "owm_error_404.json", "not found"),
    ],
)
def test_forecast_client_errors_fail_at_once_with_their_status(
    server: HTTPServer, status: int, fixture: str, expected: str
) -> None:
    server.expect_request(FORECAST).respond_with_data(
        fixture_bytes(fixture), status=status, content_type=JSON
    )
    error = expect_forecast_failure(forecast_client(server))
    assert error.status == status
    assert expected in error.reason
    assert len(server.log) == 1


def test_forecast_429_and_5xx_are_retried_then_clear_errors(server: HTTPServer) -> None:
    server.expect_oneshot_request(FORECAST).respond_with_data(
        fixture_bytes("owm_error_429.json"), status=429, content_type=JSON
    )
    server.expect_oneshot_request(FORECAST).respond_with_data(
        fixture_bytes("owm_error_502.html"), status=502
    )
    body = fixture_bytes(LONDON_FORECAST)
    server.expect_oneshot_request(FORECAST).respond_with_data(body, content_type=JSON)
    assert forecast_client(server).forecast(LONDON, ISSUE).body == body
    assert len(server.log) == 3
    server.clear()
    server.expect_request(FORECAST).respond_with_data(
        fixture_bytes("owm_error_429.json"), status=429, content_type=JSON
    )
    error = expect_forecast_failure(forecast_client(server, max_retries=1))
    assert error.status == 429
    assert "rate limit or quota exceeded" in error.reason


def test_forecast_200_without_a_list_is_rejected(server: HTTPServer) -> None:
    server.expect_request(FORECAST).respond_with_data(
        b'{"coord":{"lon":-0.1278,"lat":51.5074}}', content_type=JSON
    )
    error = expect_forecast_failure(forecast_client(server, max_retries=0))
    assert "no 'list' array" in error.reason
