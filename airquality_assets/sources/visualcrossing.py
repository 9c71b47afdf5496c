"""Live client for the Visual Crossing Timeline Weather API (hourly, metric, UTC).

Cost is what limits this API: the free plan allows 1000 records per day and hourly history
costs 24 records per day requested. Callers (the raw weather asset) request a partition's
whole UTC days (:mod:`airquality_assets.sources.spans`): a closed month in one request, the
month in progress only its newest days. This client's daily budget checks a request's cost
before it is sent and refuses cleanly instead of VC answering with a plain-text 429.

A forecast (:meth:`VisualCrossingClient.forecast`) is the same endpoint over the days from
the issue hour to 48 hours later; VC bills a whole forecast as one record, whatever its
hours. VC serves only its current forecast, so only an issue that is due now can be pulled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from airquality_assets.columns import FORECAST_HOURS
from airquality_assets.sources import http
from airquality_assets.sources.base import Location, RawResponse

DEFAULT_BASE_URL = (
    "https://weather.visualcrossing.com/VisualCrossingWebServices/rest/services/timeline"
)
#: With ``timezone=Z`` every requested day is a UTC day of exactly 24 hourly records.
HOURS_PER_DAY = 24
FREE_TIER_DAILY_RECORDS = 1000
#: What VC bills for a forecast of one location, hourly or not (API reference 2.9).
FORECAST_COST = 1
#: The variable a user sets to change the budget (refusals name it, not a field).
BUDGET_VARIABLE = "VISUAL_CROSSING_DAILY_RECORD_BUDGET"

#: Bodies meaning "daily record quota used up" (VC sends them with 429, possibly with 200).
_QUOTA_TEXTS: tuple[bytes, ...] = (
    b"You have exceeded the maximum number of daily result records",
    b"Maximum daily cost exceeded",
)


def _is_daily_quota_text(body: bytes) -> bool:
    return any(text in body[:500] for text in _QUOTA_TEXTS)


class DailyRecordBudget:
    """Records this client has spent today (UTC), from each response's ``queryCost``.

    The budget is per client instance, i.e. per process: two processes pulling with the
    same key each believe they have the full budget. VC's own reset time is not documented;
    this budget assumes 00:00 UTC. ``limit=None`` disables it (paid plans).
    """

    def __init__(self, limit: int | None, clock: Callable[[], datetime]) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"{BUDGET_VARIABLE} must be >= 0 or none, got {limit}")
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent = 0

    def _roll_over(self) -> None:
        today = self._clock().astimezone(UTC).date()
        if today != self._day:
            self._day = today
            self._spent = 0

    def remaining(self) -> int | None:
        """Records left today, or None when unlimited."""
        with self._lock:
            self._roll_over()
            return None if self.limit is None else max(self.limit - self._spent, 0)

    def refusal(self, expected_cost: int) -> str | None:
        """Why a request costing ``expected_cost`` must not be sent, or None if it may."""
        remaining = self.remaining()
        if remaining is None or expected_cost <= remaining:
            return None
        return (
            f"refused before sending: the request would cost about {expected_cost} records "
            f"but only {remaining} of this client's daily budget of {self.limit} remain "
            f"(set {BUDGET_VARIABLE}, `none` for no budget; Visual Crossing free tier is "
            "1000 records/day; the budget resets at 00:00 UTC)"
        )

    def charge(self, cost: int) -> None:
        """Count records VC billed for a successful response."""
        with self._lock:
            self._roll_over()
            self._spent += max(cost, 0)

    def exhaust(self) -> None:
        """VC said the daily quota is used up: refuse everything else today."""
        with self._lock:
            self._roll_over()
            if self.limit is not None:
                self._spent = max(self._spent, self.limit)


class VisualCrossingClient(http.ApiClient):
    """:class:`~airquality_assets.sources.base.WeatherSource` backed by the live VC API.

    Requests ``unitGroup=metric`` (VC defaults to US units), ``include=days,hours`` and
    ``timezone=Z`` so dates in the URL and every hour in the answer are UTC, which keeps a
    day at 24 records and avoids DST repeats. Retries work as in
    :mod:`airquality_assets.sources.http`; the body is returned byte for byte.
    """

    source_name = "visualcrossing"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 30,
        max_retries: int = 4,
        backoff_factor: float = 1.0,
        backoff_jitter_s: float = 0.5,
        max_retry_after_s: int = 120,
        daily_record_budget: int | None = FREE_TIER_DAILY_RECORDS,
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
            api_key, base_url, timeout_s, policy, clock, key_variable="VISUAL_CROSSING_API_KEY"
        )
        self.budget = DailyRecordBudget(daily_record_budget, clock)
        #: How long after its issue hour an issue can still be pulled (the issue cadence).
        self.forecast_max_age = forecast_max_age

    def timeline(self, location: Location, start: date, end: date) -> RawResponse:
        """Hourly weather for the UTC days ``start`` .. ``end`` inclusive.

        The range is checked against the daily budget as a whole (24 records per day)
        before anything is sent: a closed month costs about 744 records in one request.
        """
        _require_dates(start, end)
        time_range = f"{start.isoformat()}..{end.isoformat()} (UTC days)"
        ctx = http.CallContext(self.source_name, location.name, time_range, self._api_key)
        expected_cost = HOURS_PER_DAY * ((end - start).days + 1)
        refusal = self.budget.refusal(expected_cost)
        if refusal is not None:
            raise ctx.error(refusal)

        return self._get(ctx, location, start, end, expected_cost)

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """The hourly forecast VC serves now, stored as the issue ``issued_at``.

        Asks for the UTC days from the issue hour's day to the day 48 hours later
        (``timezone=Z``, metric, days and hours: the history pull's shape, so one parser
        reads both); hours VC has already observed come back ``"source":"obs"``, later ones
        ``"fcst"``. VC has no archive of past forecasts, so an issue after this client's
        clock, or ``forecast_max_age`` or more before it, is refused before anything is sent.
        Checked against the daily budget at one record (VC's price of a forecast).
        """
        issue = http.live_issue(issued_at, self.now(), self.forecast_max_age)
        first = issue.date()
        last = (issue + timedelta(hours=FORECAST_HOURS)).date()
        time_range = f"forecast issued {issue:%Y-%m-%dT%H:%M}Z (UTC days {first}..{last})"
        ctx = http.CallContext(self.source_name, location.name, time_range, self._api_key)
        refusal = self.budget.refusal(FORECAST_COST)
        if refusal is not None:
            raise ctx.error(refusal)
        return self._get(ctx, location, first, last, FORECAST_COST)

    def _get(
        self,
        ctx: http.CallContext,
        location: Location,
        start: date,
        end: date,
        expected_cost: int,
    ) -> RawResponse:
        started = time.monotonic()
        response, payload = http.get_validated(
            self._session,
            self._url(location, start, end),
            self._params(),
            self.timeout_s,
            ctx,
            self.policy,
            lambda r: self._validated_payload(r, ctx),
            inspect=self._watch_quota,
            report=self._retried,
        )
        duration_s = time.monotonic() - started
        self.budget.charge(_query_cost(payload, default=expected_cost))
        return RawResponse(
            body=response.content,
            record_count=_count_hours(payload),
            duration_s=duration_s,
            url=http.redact_url(response.url),
        )

    def _url(self, location: Location, start: date, end: date) -> str:
        point = (
            f"{http.format_coordinate(location.latitude)},"
            f"{http.format_coordinate(location.longitude)}"
        )
        return f"{self.base_url}/{quote(point, safe='')}/{start.isoformat()}/{end.isoformat()}"

    def _params(self) -> list[tuple[str, str]]:
        return [
            ("key", self._api_key),
            ("unitGroup", "metric"),
            ("include", "days,hours"),
            ("contentType", "json"),
            ("timezone", "Z"),
        ]

    def _watch_quota(self, response: requests.Response) -> None:
        """VC's "daily quota used up" text (with 429, or with 200) closes today's budget."""
        if _is_daily_quota_text(response.content):
            self.budget.exhaust()

    def _validated_payload(
        self, response: requests.Response, ctx: http.CallContext
    ) -> dict[str, Any]:
        """The decoded body of a usable 200.

        VC's quota text can arrive in a body that claims success: that is final (a
        :class:`SourceError`, not retried). A body that is not a JSON object with a ``days``
        array raises :class:`~airquality_assets.sources.http.BadBodyError` (retried).
        """
        body = response.content
        if body.lstrip().startswith(b"You have exceeded"):
            gist = http.summarize_body(body, [ctx.api_key])
            raise ctx.error(f"{http.status_hint(429)} (sent with HTTP 200): {gist}", status=429)
        return http.json_object(body, "days", [ctx.api_key])


def _require_dates(start: date, end: date) -> None:
    """Plain dates only: a datetime would be sent with a time and change VC's meaning."""
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, datetime) or not isinstance(value, date):
            raise TypeError(f"{name} must be a datetime.date (a UTC day), got {value!r}")
    if start > end:
        raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")


def _count_hours(payload: dict[str, Any]) -> int:
    """Number of hour objects over all days (a DST fall-back day in local time has 25)."""
    return sum(
        len(day["hours"])
        for day in payload["days"]
        if isinstance(day, dict) and isinstance(day.get("hours"), list)
    )


def _query_cost(payload: dict[str, Any], default: int) -> int:
    """VC's billed records for this response; the expected cost if the field is missing."""
    cost = payload.get("queryCost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return int(cost)
    return default
