"""Live client for the OpenWeatherMap Air Pollution API (history, forecast).

It returns the response body byte for byte (:class:`RawResponse`); turning it into rows,
filtering ``start <= dt <= end`` and removing duplicate hours is the parser's job, so the raw
asset on disk is exactly what OWM sent and can be re-parsed later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from airquality_assets.sources import http
from airquality_assets.sources.base import Location, RawResponse

DEFAULT_BASE_URL = "https://api.openweathermap.org"
_AIR_POLLUTION_PATH = "/data/2.5/air_pollution"


def _require_utc(name: str, value: datetime) -> datetime:
    """Reject naive datetimes: guessing a zone would silently shift every hour of a pull."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _iso_utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class OpenWeatherMapClient(http.ApiClient):
    """:class:`~airquality_assets.sources.base.AirPollutionSource` backed by the live OWM API.

    Transient failures (429, 5xx, connection errors, read timeouts) are retried by urllib3
    with exponential backoff and jitter, honouring ``Retry-After`` up to
    ``max_retry_after_s``; 400/401/404 fail at once. Calls are spaced at least
    ``min_interval_s`` apart (default 1 s = OWM's free 60 calls/min) per client instance.
    Anything that cannot be used ends as a :class:`SourceError` without the key in it.
    """

    source_name = "openweathermap"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 30,
        max_retries: int = 4,
        backoff_factor: float = 1.0,
        backoff_jitter_s: float = 0.5,
        max_retry_after_s: int = 120,
        min_interval_s: float = 1.0,
        clock: Callable[[], datetime] = http.utc_now,
        forecast_max_age: timedelta = http.DEFAULT_ISSUE_MAX_AGE,
    ) -> None:
        policy = http.RetryPolicy(
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            backoff_jitter_s=backoff_jitter_s,
            max_retry_after_s=max_retry_after_s,
        )
        super().__init__(
            api_key, base_url, timeout_s, policy, clock, key_variable="OPENWEATHER_API_KEY"
        )
        self._throttle = http.MinIntervalThrottle(min_interval_s)
        #: How long after its issue hour an issue can still be pulled (the issue cadence).
        self.forecast_max_age = forecast_max_age

    def history(self, location: Location, start: datetime, end: datetime) -> RawResponse:
        """Hourly records for ``start .. end`` (tz-aware; sent as integer unix seconds).

        OWM does not document whether the bounds are inclusive, so the parser filters
        ``start <= dt <= end``; the body here is returned unchanged.
        """
        start_utc = _require_utc("start", start)
        end_utc = _require_utc("end", end)
        if start_utc > end_utc:
            raise ValueError(f"start {start_utc.isoformat()} is after end {end_utc.isoformat()}")
        params = [
            ("start", str(int(start_utc.timestamp()))),
            ("end", str(int(end_utc.timestamp()))),
        ]
        time_range = f"{_iso_utc(start_utc)}..{_iso_utc(end_utc)}"
        return self._get("/history", location, params, time_range)

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """The hourly forecast OWM serves now (about 96 elements from the current hour; not
        fixed), stored as the issue ``issued_at``. OWM keeps no past forecasts, so an issue
        after this client's clock, or ``forecast_max_age`` or more before it, is refused unsent."""
        issue = http.live_issue(issued_at, self.now(), self.forecast_max_age)
        return self._get("/forecast", location, [], f"forecast issued {_iso_utc(issue)}")

    def _get(
        self,
        suffix: str,
        location: Location,
        extra_params: Sequence[tuple[str, str]],
        time_range: str,
    ) -> RawResponse:
        ctx = http.CallContext(self.source_name, location.name, time_range, self._api_key)
        params = [
            ("lat", http.format_coordinate(location.latitude)),
            ("lon", http.format_coordinate(location.longitude)),
            *extra_params,
            ("appid", self._api_key),
        ]
        url = f"{self.base_url}{_AIR_POLLUTION_PATH}{suffix}"
        self._throttle.wait()
        started = time.monotonic()
        response, record_count = http.get_validated(
            self._session,
            url,
            params,
            self.timeout_s,
            ctx,
            self.policy,
            lambda r: _count_records(r.content, [self._api_key]),
            report=self._retried,
        )
        duration_s = time.monotonic() - started
        return RawResponse(
            body=response.content,
            record_count=record_count,
            duration_s=duration_s,
            url=http.redact_url(response.url),
        )


def _count_records(body: bytes, secrets: Sequence[str]) -> int:
    """Validate a 200 body (a JSON object with a ``list`` array) and count its elements.

    An empty ``list`` is valid (e.g. a window before OWM's history starts).
    """
    return len(http.json_object(body, "list", secrets)["list"])
