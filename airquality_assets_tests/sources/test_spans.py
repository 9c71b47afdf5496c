"""Which hours a monthly raw pull asks for."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from airquality_assets.sources.spans import (
    PullSpan,
    due_issue,
    month_issues,
    month_pull_span,
    months_to_refresh,
)

NOW = datetime(2014, 12, 31, 0, 20, tzinfo=UTC)


def _h(month: int, day: int, hour: int) -> datetime:
    return datetime(2014, month, day, hour, tzinfo=UTC)


def test_closed_month_is_pulled_whole_even_if_stored() -> None:
    span = month_pull_span(date(2014, 11, 1), NOW, stored_through=_h(11, 30, 23))
    assert span == PullSpan(_h(11, 1, 0), _h(11, 30, 23))


def test_open_month_without_data_runs_to_the_clock() -> None:
    assert month_pull_span(date(2014, 12, 1), NOW, None) == PullSpan(_h(12, 1, 0), _h(12, 31, 0))


def test_open_month_pulls_only_the_newest_hours() -> None:
    span = month_pull_span(date(2014, 12, 1), NOW, stored_through=_h(12, 30, 23), refetch_hours=2)
    assert span == PullSpan(_h(12, 30, 22), _h(12, 31, 0), incremental=True)
    assert str(span) == "2014-12-30T22..2014-12-31T00Z"
    # already stored through the clock: the refetch window is still asked again
    span = month_pull_span(date(2014, 12, 1), NOW, stored_through=_h(12, 31, 0), refetch_hours=0)
    assert span == PullSpan(_h(12, 31, 0), _h(12, 31, 0), incremental=True)


def test_future_month_has_nothing_to_pull() -> None:
    assert month_pull_span(date(2015, 1, 1), NOW, None) is None


def test_whole_days_for_visual_crossing() -> None:
    span = PullSpan(_h(12, 30, 22), _h(12, 31, 0), incremental=True).whole_days()
    assert span.first_hour == _h(12, 30, 0) and span.last_hour == _h(12, 31, 0)
    assert (span.first_day, span.last_day) == (date(2014, 12, 30), date(2014, 12, 31))


def test_months_to_refresh_include_the_closing_month() -> None:
    assert months_to_refresh(NOW) == [date(2014, 12, 1)]
    assert months_to_refresh(datetime(2015, 1, 1, 1, 5, tzinfo=UTC)) == [
        date(2014, 12, 1),
        date(2015, 1, 1),
    ]
    with pytest.raises(ValueError):
        month_pull_span(date(2014, 12, 1), NOW, None, refetch_hours=-1)


# --- forecast issues ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "every", "due"),
    [
        (datetime(2014, 3, 1, 5, 59, tzinfo=UTC), 6, datetime(2014, 3, 1, 0, tzinfo=UTC)),
        (datetime(2014, 3, 1, 6, 0, tzinfo=UTC), 6, datetime(2014, 3, 1, 6, tzinfo=UTC)),
        (datetime(2014, 3, 1, 23, 5, tzinfo=UTC), 6, datetime(2014, 3, 1, 18, tzinfo=UTC)),
        (datetime(2014, 3, 1, 23, 5, tzinfo=UTC), 3, datetime(2014, 3, 1, 21, tzinfo=UTC)),
        (datetime(2014, 3, 1, 23, 5, tzinfo=UTC), 1, datetime(2014, 3, 1, 23, tzinfo=UTC)),
        (datetime(2014, 3, 1, 23, 5, tzinfo=UTC), 24, datetime(2014, 3, 1, 0, tzinfo=UTC)),
    ],
)
def test_due_issue_is_the_newest_cycle_from_00_utc(
    now: datetime, every: int, due: datetime
) -> None:
    assert due_issue(now, every) == due


@pytest.mark.parametrize("every", [0, 5, 7, 25])
def test_issue_cadence_must_divide_a_day(every: int) -> None:
    with pytest.raises(ValueError, match="divide 24"):
        due_issue(NOW, every)


def test_a_closed_months_issues_are_its_whole_series() -> None:
    issues = month_issues(date(2014, 2, 1), NOW, 6)
    assert len(issues) == 28 * 4
    assert issues[0] == datetime(2014, 2, 1, 0, tzinfo=UTC)
    assert issues[-1] == datetime(2014, 2, 28, 18, tzinfo=UTC)
    assert len(month_issues(date(2014, 2, 1), NOW, 1)) == 28 * 24


def test_the_month_in_progress_ends_at_its_due_issue_and_later_months_have_none() -> None:
    now = datetime(2014, 12, 3, 13, 5, tzinfo=UTC)
    issues = month_issues(date(2014, 12, 1), now, 6)
    assert issues[-1] == datetime(2014, 12, 3, 12, tzinfo=UTC)
    assert len(issues) == 2 * 4 + 3
    assert all(issue <= now for issue in issues)
    assert month_issues(date(2015, 1, 1), now, 6) == []
    assert month_issues(date(2014, 12, 1), datetime(2014, 12, 1, 0, tzinfo=UTC), 6) == [
        datetime(2014, 12, 1, 0, tzinfo=UTC)
    ]
