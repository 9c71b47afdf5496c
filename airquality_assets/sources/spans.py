"""Which hours one pull of a raw (month, location) partition asks for.

A month is one request where the API allows it (OWM history takes any range; Visual Crossing's
timeline takes a date range, billed per hour record): a closed month is pulled whole, which
also replaces the small bodies the hourly path stored while it was open. The month still in
progress is pulled incrementally: from a few hours before what is already stored up to the
source's clock, so an hourly tick asks for the newest hours only. Pure: no Dagster, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class PullSpan:
    """UTC hours ``first_hour .. last_hour`` (both inclusive), within one month."""

    first_hour: datetime
    last_hour: datetime
    incremental: bool = False

    @property
    def first_day(self) -> date:
        return self.first_hour.date()

    @property
    def last_day(self) -> date:
        return self.last_hour.date()

    def whole_days(self) -> PullSpan:
        """The span widened to whole UTC days at the start (Visual Crossing asks by day),
        ending at ``last_hour``: hours after it on that day are forecasts, not stored as
        observed."""
        first = datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=UTC)
        return PullSpan(first, self.last_hour, self.incremental)

    def __str__(self) -> str:
        return f"{self.first_hour:%Y-%m-%dT%H}..{self.last_hour:%Y-%m-%dT%H}Z"


def month_bounds(month_start: date) -> tuple[datetime, datetime]:
    """First hour of the month and first hour of the next one (exclusive end), UTC."""
    first = datetime(month_start.year, month_start.month, 1, tzinfo=UTC)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following


def floor_hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def month_pull_span(
    month_start: date,
    now: datetime,
    stored_through: datetime | None,
    refetch_hours: int = 2,
) -> PullSpan | None:
    """The hours to request for a month partition at the source's clock ``now``.

    None when the month lies entirely after ``now``. A closed month (its last hour is before
    ``now``'s hour) is the whole month. An open month starts ``refetch_hours`` before the last
    stored hour (late records get a second chance) or at the month start if nothing is stored.
    """
    if refetch_hours < 0:
        raise ValueError("refetch_hours must be >= 0")
    first, following = month_bounds(month_start)
    current = floor_hour(now)
    last = min(following - HOUR, current)
    if last < first:
        return None
    is_open = following - HOUR > current
    if not is_open or stored_through is None:
        return PullSpan(first, last)
    start = max(first, min(stored_through + HOUR - refetch_hours * HOUR, last))
    return PullSpan(start, last, incremental=start > first)


def months_to_refresh(now: datetime, refetch_hours: int = 2) -> list[date]:
    """Month starts an hourly tick at ``now`` must pull: the current month, and the previous
    one while its last hours are within the refetch window (so a month closes complete)."""
    current = floor_hour(now)
    months = {
        (current - k * HOUR).date().replace(day=1) for k in range(0, max(refetch_hours, 0) + 1)
    }
    return sorted(months)


def due_issue(now: datetime, every_hours: int) -> datetime:
    """The newest forecast issue at or before ``now``: issues are every ``every_hours`` hours
    counted from 00 UTC (``every_hours`` divides 24: 6 gives 00/06/12/18 UTC)."""
    if every_hours < 1 or 24 % every_hours:
        raise ValueError(f"every_hours must divide 24, got {every_hours}")
    current = floor_hour(now)
    return current - (current.hour % every_hours) * HOUR


def month_issues(month_start: date, now: datetime, every_hours: int) -> list[datetime]:
    """Every forecast issue of the month up to ``now`` (inclusive), oldest first: a closed
    month's whole series, the month in progress up to its due issue, none after ``now``."""
    first, following = month_bounds(month_start)
    last = min(due_issue(now, every_hours), following - HOUR)
    step = every_hours * HOUR
    count = (last - first) // step + 1 if last >= first else 0
    return [first + k * step for k in range(count)]
