"""VisualCrossingClient against a real local HTTP server: URL, bodies, errors, cost budget."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.sources.base import Location, RawResponse, SourceError, WeatherSource
from airquality_assets.sources.visualcrossing import VisualCrossingClient
from airquality_assets_tests.sources import closed_port, fixture_bytes, local_server

KEY = "ABCDEFGHJKLMNPQRSTUVWXYZ2"
LONDON = Location("london", 51.5074, -0.1278)
NEW_YORK = Location("new-york", 40.7128, -74.006)
DAY = date(2024, 3, 4)
PATH = "/timeline/51.5074,-0.1278/2024-03-04/2024-03-04"
LONDON_DAY = "vc_timeline_london_2024-03-04.json"
TEXT = "text/plain; charset=utf-8"


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


class FakeClock:
    """A settable wall clock, so budget day roll-over is tested without waiting a day."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_client(server: HTTPServer, **overrides: Any) -> VisualCrossingClient:
    """A client tuned for tests: near-zero backoff, short timeouts."""
    options: dict[str, Any] = {
        "base_url": server.url_for("/timeline"),
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_factor": 0.001,
        "backoff_jitter_s": 0.0,
    }
    options.update(overrides)
    return VisualCrossingClient(KEY, **options)


def serve(
    server: HTTPServer,
    body: bytes | str,
    status: int = 200,
    content_type: str = "application/json",
    **headers: str,
) -> None:
    server.expect_oneshot_request(PATH).respond_with_data(
        body, status=status, content_type=content_type, headers=headers or None
    )


def fetch_day(client: VisualCrossingClient) -> RawResponse:
    return client.timeline(LONDON, DAY, DAY)


def expect_failure(client: VisualCrossingClient, location: Location = LONDON) -> SourceError:
    with pytest.raises(SourceError) as caught:
        client.timeline(location, DAY, DAY)
    error = caught.value
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in "".join(traceback.format_exception(error))
    assert error.source == "visualcrossing"
    assert error.location == location.name
    assert error.time_range == "2024-03-04..2024-03-04 (UTC days)"
    return error


# --- success paths ---------------------------------------------------------------------


def test_timeline_sends_exact_request_and_returns_body_unchanged(server: HTTPServer) -> None:
    body = fixture_bytes(LONDON_DAY)
    serve(server, body)
    raw = fetch_day(make_client(server))

    assert raw.body == body
    assert raw.record_count == 24
    (request, _), *_ = server.log
    assert request.method == "GET"
    assert request.path == PATH
    # The location is URL-encoded on the wire (the comma as %2C).
    raw_uri = request.environ.get("RAW_URI") or request.environ["REQUEST_URI"]
    assert raw_uri.startswith("/timeline/51.5074%2C-0.1278/2024-03-04/2024-03-04?")
    assert list(request.args.items(multi=True)) == [
        ("key", KEY),
        ("unitGroup", "metric"),
        ("include", "days,hours"),
        ("contentType", "json"),
        ("timezone", "Z"),
    ]
    assert KEY not in raw.url
    assert raw.url.endswith(
        "2024-03-04?unitGroup=metric&include=days%2Chours&contentType=json&timezone=Z"
    )


def test_multi_day_range_uses_both_dates(server: HTTPServer) -> None:
    path = "/timeline/51.5074,-0.1278/2024-03-04/2024-03-06"
    server.expect_request(path).respond_with_data(
        fixture_bytes(LONDON_DAY), content_type="application/json"
    )
    make_client(server).timeline(LONDON, DAY, date(2024, 3, 6))
    assert server.log[0][0].path == path


def test_fall_back_day_with_25_hours_and_nulls_is_returned_unchanged(server: HTTPServer) -> None:
    """Repeated local hours and nulls are the parser's business; the client only counts."""
    body = fixture_bytes("vc_timeline_newyork_2024-11-03_fallback.json")
    path = "/timeline/40.7128,-74.006/2024-11-03/2024-11-03"
    server.expect_request(path).respond_with_data(body, content_type="application/json")
    client = make_client(server)
    raw = client.timeline(NEW_YORK, date(2024, 11, 3), date(2024, 11, 3))
    assert raw.body == body
    assert raw.record_count == 25
    assert b'"windgust":null' in raw.body
    assert b'"datetime":"01:00:00","datetimeEpoch":1730613600,"tzoffset":-5.0' in raw.body
    assert client.budget.remaining() == 1000 - 25  # charged from queryCost


def test_client_satisfies_protocol_and_hides_key_in_repr(server: HTTPServer) -> None:
    client = make_client(server)
    assert isinstance(client, WeatherSource)
    assert client.source_name == "visualcrossing"
    assert KEY not in repr(client)


def test_empty_key_is_rejected_early() -> None:
    with pytest.raises(ValueError, match="VISUAL_CROSSING_API_KEY"):
        VisualCrossingClient("")


def test_dates_are_validated_before_sending(server: HTTPServer) -> None:
    client = make_client(server)
    with pytest.raises(TypeError, match=r"datetime\.date"):
        client.timeline(LONDON, datetime(2024, 3, 4, tzinfo=UTC), DAY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after end"):
        client.timeline(LONDON, date(2024, 3, 5), DAY)
    assert server.log == []


def test_now_is_utc_floored_to_the_hour() -> None:
    clock = FakeClock(datetime(2024, 3, 4, 23, 59, 59, tzinfo=UTC))
    assert VisualCrossingClient(KEY, clock=clock).now() == datetime(2024, 3, 4, 23, tzinfo=UTC)


# --- client errors: no retry, key never shown ----------------------------------------------


def _echo_key_401(request: Request) -> Response:
    """VC's real 401 quotes the key it was sent."""
    return Response(
        f"No account found with API key '{request.args['key']}'", status=401, content_type=TEXT
    )


def test_401_echoing_the_key_never_leaks_it(server: HTTPServer) -> None:
    server.expect_request(PATH).respond_with_handler(_echo_key_401)
    error = expect_failure(make_client(server))
    assert error.status == 401
    assert "No account found with API key '***'" in error.reason
    assert KEY not in error.reason
    assert len(server.log) == 1


@pytest.mark.parametrize(
    ("status", "fixture", "expected"),
    [
        (400, "vc_error_400.txt", "Bad API Request:Invalid location parameter value."),
        (404, "vc_error_404.txt", "Request did not match an endpoint."),
    ],
)
def test_400_and_404_fail_at_once(
    server: HTTPServer, status: int, fixture: str, expected: str
) -> None:
    serve(server, fixture_bytes(fixture), status=status, content_type=TEXT)
    error = expect_failure(make_client(server))
    assert error.status == status
    assert expected in error.reason
    assert len(server.log) == 1


# --- transient errors: retried -----------------------------------------------------------


def test_429_with_retry_after_waits_then_succeeds(server: HTTPServer) -> None:
    serve(server, "Maximum concurrent jobs has been exceeded", 429, TEXT, **{"Retry-After": "1"})
    serve(server, fixture_bytes(LONDON_DAY))
    started = time.monotonic()
    raw = fetch_day(make_client(server))
    assert time.monotonic() - started >= 0.95
    assert raw.record_count == 24
    assert len(server.log) == 2


def test_429_without_retry_after_is_retried(server: HTTPServer) -> None:
    serve(server, "Maximum concurrent jobs has been exceeded", 429, TEXT)
    serve(server, fixture_bytes(LONDON_DAY))
    assert fetch_day(make_client(server)).record_count == 24
    assert len(server.log) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(server: HTTPServer, status: int) -> None:
    serve(server, fixture_bytes("owm_error_502.html"), status, "text/html")
    serve(server, fixture_bytes(LONDON_DAY))
    assert fetch_day(make_client(server)).record_count == 24
    assert len(server.log) == 2


def test_503_forever_gives_up_after_all_attempts(server: HTTPServer) -> None:
    server.expect_request(PATH).respond_with_data("Service Unavailable", status=503)
    error = expect_failure(make_client(server, max_retries=2))
    assert error.status == 503
    assert "gave up after 3 attempts" in error.reason
    assert len(server.log) == 3


def _slow(_request: Request) -> Response:
    time.sleep(0.6)
    return Response(fixture_bytes(LONDON_DAY), content_type="application/json")


def test_read_timeout_then_success(slow_server: HTTPServer) -> None:
    slow_server.expect_oneshot_request(PATH).respond_with_handler(_slow)
    serve(slow_server, fixture_bytes(LONDON_DAY))
    assert fetch_day(make_client(slow_server, timeout_s=0.2)).record_count == 24


def test_read_timeout_forever_is_a_clear_error(slow_server: HTTPServer) -> None:
    slow_server.expect_request(PATH).respond_with_handler(_slow)
    error = expect_failure(make_client(slow_server, timeout_s=0.2, max_retries=1))
    assert error.status is None
    assert "read timed out" in error.reason


def test_connection_refused_is_a_clear_error() -> None:
    client = VisualCrossingClient(
        KEY,
        base_url=f"http://127.0.0.1:{closed_port()}/timeline",
        max_retries=1,
        backoff_factor=0.001,
        backoff_jitter_s=0.0,
    )
    error = expect_failure(client)
    assert error.status is None
    assert "could not connect" in error.reason


# --- bad 200 bodies ------------------------------------------------------------------------


def test_truncated_json_once_then_answered(server: HTTPServer) -> None:
    body = fixture_bytes(LONDON_DAY)
    serve(server, body[:-40])
    serve(server, body)
    response = make_client(server).timeline(LONDON, DAY, DAY)
    assert response.body == body
    assert len(server.log) == 2


def test_always_truncated_fails_with_parse_error_and_byte_count(server: HTTPServer) -> None:
    body = fixture_bytes(LONDON_DAY)[:-40]
    for _ in range(3):
        serve(server, body)
    error = expect_failure(make_client(server, max_retries=2))
    assert error.status == 200
    assert "not valid JSON" in error.reason
    assert f"{len(body)} bytes received" in error.reason
    assert "gave up after 3 attempts" in error.reason
    assert len(server.log) == 3


def test_html_200_is_rejected(server: HTTPServer) -> None:
    serve(
        server, b"<!DOCTYPE html><html><title>Maintenance</title></html>", content_type="text/html"
    )
    error = expect_failure(make_client(server, max_retries=0))
    assert "not valid JSON" in error.reason
    assert "Maintenance" in error.reason


def test_json_without_days_is_rejected(server: HTTPServer) -> None:
    serve(server, b'{"queryCost":0,"address":"x"}')
    error = expect_failure(make_client(server, max_retries=0))
    assert "no 'days' array" in error.reason


def test_quota_text_with_200_is_a_429_class_error(server: HTTPServer) -> None:
    serve(server, fixture_bytes("vc_error_429.txt"), 200, TEXT)
    client = make_client(server)
    error = expect_failure(client)
    assert error.status == 429
    assert "sent with HTTP 200" in error.reason
    assert "You have exceeded the maximum number of daily result records" in error.reason
    assert client.budget.remaining() == 0  # nothing more is sent today


# --- daily record budget -------------------------------------------------------------------


def test_budget_refuses_before_sending_and_resets_next_utc_day(server: HTTPServer) -> None:
    server.expect_request(PATH).respond_with_data(
        fixture_bytes(LONDON_DAY), content_type="application/json"
    )
    clock = FakeClock(datetime(2024, 3, 5, 8, tzinfo=UTC))
    client = make_client(server, daily_record_budget=30, clock=clock)

    assert fetch_day(client).record_count == 24  # queryCost 24: 6 records left
    assert client.budget.remaining() == 6
    error = expect_failure(client)
    assert error.status is None
    assert "refused before sending" in error.reason
    assert "about 24 records but only 6" in error.reason
    assert "daily budget of 30" in error.reason
    assert "set VISUAL_CROSSING_DAILY_RECORD_BUDGET" in error.reason  # the variable, not a field
    assert "daily_record_budget" not in error.reason
    assert len(server.log) == 1  # the refused request never reached the server

    clock.now += timedelta(days=1)
    assert fetch_day(client).record_count == 24
    assert len(server.log) == 2


def test_budget_rejects_a_range_that_alone_exceeds_it(server: HTTPServer) -> None:
    client = make_client(server)  # default 1000 = free tier
    with pytest.raises(SourceError, match="about 1200 records but only 1000"):
        client.timeline(LONDON, date(2024, 1, 1), date(2024, 2, 19))  # 50 days
    assert server.log == []


def test_no_budget_means_unlimited(server: HTTPServer) -> None:
    server.expect_request("/timeline/51.5074,-0.1278/2024-01-01/2024-02-19").respond_with_data(
        fixture_bytes(LONDON_DAY), content_type="application/json"
    )
    client = make_client(server, daily_record_budget=None)
    client.timeline(LONDON, date(2024, 1, 1), date(2024, 2, 19))
    assert client.budget.remaining() is None
    with pytest.raises(ValueError, match="VISUAL_CROSSING_DAILY_RECORD_BUDGET must be >= 0"):
        make_client(server, daily_record_budget=-1)


def test_a_zero_timeout_is_refused_naming_the_variable(server: HTTPServer) -> None:
    with pytest.raises(ValueError, match="AIRQUALITY_HTTP_TIMEOUT_S must be > 0"):
        make_client(server, timeout_s=0)


def test_daily_quota_429_stops_further_requests_today(server: HTTPServer) -> None:
    server.expect_request(PATH).respond_with_data(
        fixture_bytes("vc_error_429.txt"), status=429, content_type=TEXT
    )
    client = make_client(server, max_retries=1)
    error = expect_failure(client)
    assert error.status == 429
    assert "You have exceeded" in error.reason
    assert len(server.log) == 2
    refused = expect_failure(client)
    assert "refused before sending" in refused.reason
    assert len(server.log) == 2


def test_missing_query_cost_charges_the_expected_cost(server: HTTPServer) -> None:
    serve(server, b'{"days":[{"datetime":"2024-03-04","hours":[]}]}')
    client = make_client(server)
    assert fetch_day(client).record_count == 0
    assert client.budget.remaining() == 1000 - 24


# --- forecasts: the timeline over the issue's 48 hours, one record ---------------------------

ISSUE = datetime(2024, 3, 4, 12, tzinfo=UTC)
FORECAST_PATH = "/timeline/51.5074,-0.1278/2024-03-04/2024-03-06"
LONDON_FORECAST = "vc_forecast_london_2024-03-04T12.json"


def forecast_client(server: HTTPServer, now: datetime = ISSUE, **overrides: Any):
    return make_client(server, clock=FakeClock(now), **overrides)


def expect_forecast_failure(client: VisualCrossingClient, issue: datetime = ISSUE) -> SourceError:
    with pytest.raises(SourceError) as caught:
        client.forecast(LONDON, issue)
    error = caught.value
    assert KEY not in str(error)
    assert error.source == "visualcrossing"
    assert error.location == "london"
    assert error.time_range == "forecast issued 2024-03-04T12:00Z (UTC days 2024-03-04..2024-03-06)"
    return error


def test_forecast_sends_the_timeline_request_for_the_issues_days(server: HTTPServer) -> None:
    body = fixture_bytes(LONDON_FORECAST)
    server.expect_oneshot_request(FORECAST_PATH).respond_with_data(
        body, content_type="application/json"
    )
    client = forecast_client(server, now=datetime(2024, 3, 4, 12, 40, tzinfo=UTC))
    raw = client.forecast(LONDON, ISSUE)

    assert raw.body == body  # stored exactly as returned
    assert raw.record_count == 5  # hour objects (the fixture keeps 5 of the 60 VC sends)
    (request, _), *_ = server.log
    assert request.path == FORECAST_PATH
    assert list(request.args.items(multi=True)) == [
        ("key", KEY),
        ("unitGroup", "metric"),
        ("include", "days,hours"),
        ("contentType", "json"),
        ("timezone", "Z"),
    ]
    assert KEY not in raw.url
    assert client.budget.remaining() == 1000 - 1  # a whole forecast costs one record
    payload = json.loads(raw.body)
    hours = [h for day in payload["days"] for h in day["hours"]]
    assert [h["source"] for h in hours] == ["obs", "fcst", "fcst", "fcst", "fcst"]
    assert all(h["stations"] is None for h in hours if h["source"] == "fcst")


@pytest.mark.parametrize(
    ("issued", "path"),
    [
        # 00 UTC + 48 h is the third day's midnight; 23 UTC + 48 h its last hour
        (datetime(2024, 3, 4, 0, tzinfo=UTC), "/timeline/51.5074,-0.1278/2024-03-04/2024-03-06"),
        (datetime(2024, 3, 4, 23, tzinfo=UTC), "/timeline/51.5074,-0.1278/2024-03-04/2024-03-06"),
        # an issue given in another zone, off the hour: its UTC hour
        (
            datetime(2024, 3, 5, 1, 30, tzinfo=timezone(timedelta(hours=2))),
            "/timeline/51.5074,-0.1278/2024-03-04/2024-03-06",
        ),
    ],
)
def test_forecast_days_are_the_utc_days_of_the_issue_and_48_hours_later(
    server: HTTPServer, issued: datetime, path: str
) -> None:
    server.expect_oneshot_request(path).respond_with_data(
        fixture_bytes(LONDON_FORECAST), content_type="application/json"
    )
    forecast_client(server, now=issued.astimezone(UTC) + timedelta(minutes=5)).forecast(
        LONDON, issued
    )
    assert server.log[0][0].path == path


def test_forecast_of_an_issue_the_api_cannot_serve_is_refused_unsent(server: HTTPServer) -> None:
    client = forecast_client(server, now=datetime(2024, 3, 4, 15, 10, tzinfo=UTC))
    with pytest.raises(ValueError, match="after the clock"):
        client.forecast(LONDON, datetime(2024, 3, 4, 16, tzinfo=UTC))
    with pytest.raises(ValueError, match="no archive"):
        client.forecast(LONDON, datetime(2024, 3, 4, 9, tzinfo=UTC))  # 6 h old: gone
    with pytest.raises(ValueError, match="timezone-aware"):
        client.forecast(LONDON, datetime(2024, 3, 4, 12))
    longer = forecast_client(
        server, now=datetime(2024, 3, 4, 15, tzinfo=UTC), forecast_max_age=timedelta(hours=1)
    )
    with pytest.raises(ValueError, match="no archive"):
        longer.forecast(LONDON, ISSUE)
    assert server.log == []


def test_forecast_budget_refuses_before_sending(server: HTTPServer) -> None:
    server.expect_request(FORECAST_PATH).respond_with_data(
        fixture_bytes(LONDON_FORECAST), content_type="application/json"
    )
    client = forecast_client(server, daily_record_budget=2)
    client.forecast(LONDON, ISSUE)
    client.forecast(LONDON, ISSUE)
    error = expect_forecast_failure(client)
    assert "refused before sending" in error.reason
    assert len(server.log) == 2


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, fixture_bytes("vc_error_400.txt"), "Bad API Request:Invalid location"),
        (404, fixture_bytes("vc_error_404.txt"), "Request did not match an endpoint."),
    ],
)
def test_forecast_client_errors_fail_at_once_with_their_status(
    server: HTTPServer, status: int, body: bytes, expected: str
) -> None:
    server.expect_request(FORECAST_PATH).respond_with_data(body, status=status, content_type=TEXT)
    error = expect_forecast_failure(forecast_client(server))
    assert error.status == status
    assert expected in error.reason
    assert len(server.log) == 1


def test_forecast_401_never_leaks_the_key(server: HTTPServer) -> None:
    server.expect_request(FORECAST_PATH).respond_with_handler(_echo_key_401)
    error = expect_forecast_failure(forecast_client(server))
    assert error.status == 401
    assert KEY not in error.reason


def test_forecast_daily_quota_429_closes_the_budget(server: HTTPServer) -> None:
    server.expect_request(FORECAST_PATH).respond_with_data(
        fixture_bytes("vc_error_429.txt"), status=429, content_type=TEXT
    )
    client = forecast_client(server, max_retries=1)
    error = expect_forecast_failure(client)
    assert error.status == 429
    assert client.budget.remaining() == 0


def test_forecast_5xx_is_retried_then_a_clear_error(server: HTTPServer) -> None:
    server.expect_oneshot_request(FORECAST_PATH).respond_with_data("Service Unavailable", 503)
    body = fixture_bytes(LONDON_FORECAST)
    server.expect_oneshot_request(FORECAST_PATH).respond_with_data(
        body, content_type="application/json"
    )
    assert forecast_client(server).forecast(LONDON, ISSUE).body == body
    server.clear()
    server.expect_request(FORECAST_PATH).respond_with_data("Service Unavailable", 503)
    error = expect_forecast_failure(forecast_client(server, max_retries=1))
    assert error.status == 503
    assert "gave up after 2 attempts" in error.reason


def test_forecast_200_without_days_is_rejected(server: HTTPServer) -> None:
    server.expect_request(FORECAST_PATH).respond_with_data(
        b'{"queryCost":1,"address":"x"}', content_type="application/json"
    )
    error = expect_forecast_failure(forecast_client(server, max_retries=0))
    assert "no 'days' array" in error.reason
