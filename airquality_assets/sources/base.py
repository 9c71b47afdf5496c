"""The one interface every data source implements: live HTTP clients and the replay source.

Assets only ever see :class:`AirPollutionSource` / :class:`WeatherSource` and the raw
:class:`RawResponse` they return, so the demo (replay), the tests (local HTTP server) and
production (live APIs) all run the same parsing code on the same JSON shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Location:
    """A monitored place. ``name`` is the Dagster partition key, so keep it slug-like."""

    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class RawResponse:
    """A response body exactly as the API returned it, plus what metadata needs."""

    body: bytes
    record_count: int
    duration_s: float
    url: str  # the request URL with any API key removed; safe to log


class SourceError(RuntimeError):
    """A pull that failed for good (after retries). The message never contains an API key.

    It names the source, the location, the requested time range and the HTTP status (or the
    transport error), because that is what an on-call engineer needs to act on it.
    """

    def __init__(
        self,
        source: str,
        location: str,
        time_range: str,
        reason: str,
        status: int | None = None,
    ) -> None:
        self.source = source
        self.location = location
        self.time_range = time_range
        self.reason = reason
        self.status = status
        status_text = f"HTTP {status}" if status is not None else "no HTTP response"
        super().__init__(
            f"{source} pull failed for location {location!r}, {time_range}: {status_text}: {reason}"
        )


class NotAvailableError(RuntimeError):
    """The source has no such data at all (the replay source has no air-pollution forecasts).

    Not a failed pull: nothing to retry, no circuit breaker to trip, and nothing to invent in
    its place. The asset records it in its metadata and stores nothing.
    """

    def __init__(self, source: str, what: str, reason: str) -> None:
        self.source = source
        self.what = what
        self.reason = reason
        super().__init__(f"{source}: {what} is not available: {reason}")


@runtime_checkable
class AirPollutionSource(Protocol):
    """OpenWeatherMap Air Pollution API shape (``{"coord":..., "list":[...]}``)."""

    source_name: str

    def history(self, location: Location, start: datetime, end: datetime) -> RawResponse:
        """Hourly records with ``start <= dt <= end`` (tz-aware UTC datetimes)."""
        ...

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """The hourly forecast issued at ``issued_at`` (the ``list`` shape; about 96 hours
        from the issue hour). A live API serves only its current forecast, so only an
        issue that is due now can be pulled; raises :class:`NotAvailableError` where the
        source has no forecasts."""
        ...

    def now(self) -> datetime:
        """The source's clock (UTC): wall time for live APIs, the replay instant otherwise."""
        ...


@runtime_checkable
class WeatherSource(Protocol):
    """Visual Crossing Timeline API shape, hourly, ``unitGroup=metric``, UTC (``timezone=Z``)."""

    source_name: str

    def timeline(self, location: Location, start: date, end: date) -> RawResponse:
        """Hourly weather for the UTC days ``start`` .. ``end`` inclusive."""
        ...

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """The hourly forecast issued at ``issued_at`` in the timeline shape: the UTC days
        from the issue hour's day to the day 48 hours later, hours after the issue hour
        ``"source":"fcst"``. A live API serves only its current forecast (an issue due now);
        the replay source serves any issue its clock has reached."""
        ...

    def now(self) -> datetime: ...
