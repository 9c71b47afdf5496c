"""Check alerts to a local HTTP receiver on 127.0.0.1 through Apprise's json:// channel."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.monitoring.alerts import (
    FAILURE,
    RESOLVED,
    AlertState,
    AppriseNotifier,
    CheckEvaluation,
    latest_per_episode,
    parse_urls,
    process,
)


def _evaluation(storage_id: int, passed: bool, check: str = "completeness") -> CheckEvaluation:
    return CheckEvaluation(
        storage_id=storage_id,
        asset="hourly_observations",
        check=check,
        partition="2014-03-01|beijing",
        passed=passed,
        severity="WARN",
        description=None if passed else "31 % of hours missing",
        run_id=f"run-{storage_id}",
    )


class Receiver:
    """Records every JSON alert; answers with the queued statuses, then 200."""

    def __init__(self, httpserver: HTTPServer, statuses: list[int] | None = None, delay=0.0):
        self.received: list[dict] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        httpserver.expect_request("/alerts", method="POST").respond_with_handler(self.handle)
        self.url = f"json://127.0.0.1:{httpserver.port}/alerts?rto=0.5&cto=0.5"

    def handle(self, request: Request) -> Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if self.delay and status == 599:  # 599: stall past the client's read timeout
            time.sleep(self.delay)
            return Response("late", status=200)
        if status == 200:
            self.received.append(json.loads(request.get_data()))
        return Response("", status=status)


def _notifier(receiver: Receiver) -> AppriseNotifier:
    return AppriseNotifier([receiver.url], attempts=2, sleep=lambda _s: None)


def test_one_alert_per_failure_episode_and_one_resolved(httpserver: HTTPServer) -> None:
    receiver = Receiver(httpserver)
    notify = _notifier(receiver)
    evaluations = [
        _evaluation(10, passed=False),
        _evaluation(11, passed=False),  # same episode: no second message
        _evaluation(12, passed=False),
        _evaluation(13, passed=True),  # resolved once
        _evaluation(14, passed=True),
        _evaluation(15, passed=False),  # a new episode
    ]
    outcome = process(evaluations[:3], AlertState(), notify, base_url="http://ui:3000")
    outcome = process(evaluations, outcome.state, notify, base_url="http://ui:3000")  # re-read

    kinds = [a.kind for a in outcome.delivered]
    assert kinds == [RESOLVED, FAILURE]
    assert len(receiver.received) == 3
    first = receiver.received[0]
    assert (
        first["title"] == "WARN check failed: hourly_observations.completeness [2014-03-01|beijing]"
    )
    assert "reason: 31 % of hours missing" in first["message"]
    assert "ui: http://ui:3000/assets/hourly_observations?view=checks" in first["message"]
    assert receiver.received[1]["title"].startswith("resolved: hourly_observations.completeness")
    assert outcome.state.after_storage_id == 15
    assert outcome.state.open_episodes == ["hourly_observations|completeness|2014-03-01|beijing"]


def test_receiver_500_keeps_the_cursor_then_delivers_once(httpserver: HTTPServer) -> None:
    receiver = Receiver(httpserver, statuses=[500, 500])  # both attempts of the first tick fail
    notify = _notifier(receiver)
    evaluations = [_evaluation(1, passed=True), _evaluation(2, passed=False)]

    first = process(evaluations, AlertState(), notify)
    assert first.blocked is not None and first.delivered == []
    assert first.state.after_storage_id == 1  # not past the undelivered alert
    assert first.state.failed_ticks == 1
    restored = AlertState.from_cursor(first.state.to_cursor())

    second = process(evaluations, restored, notify)
    assert [a.kind for a in second.delivered] == [FAILURE]
    assert len(receiver.received) == 1
    assert second.state.after_storage_id == 2 and second.state.failed_ticks == 0


@pytest.fixture
def threaded_server():
    """A receiver that answers while an earlier request still stalls."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_receiver_timeout_is_survived(threaded_server: HTTPServer) -> None:
    receiver = Receiver(threaded_server, statuses=[599, 599], delay=1.5)
    notify = _notifier(receiver)
    outcome = process([_evaluation(7, passed=False)], AlertState(), notify)
    assert outcome.blocked is not None
    assert outcome.state.after_storage_id == 0
    later = process([_evaluation(7, passed=False)], outcome.state, notify)
    assert len(later.delivered) == 1 and later.state.after_storage_id == 7


def test_given_up_explicitly_after_n_ticks(httpserver: HTTPServer) -> None:
    receiver = Receiver(httpserver, statuses=[500] * 6)
    notify = _notifier(receiver)
    state = AlertState()
    for _ in range(2):
        state = process([_evaluation(3, passed=False)], state, notify, give_up_after=3).state
        assert state.after_storage_id == 0
    final = process([_evaluation(3, passed=False)], state, notify, give_up_after=3)
    assert [a.kind for a in final.given_up] == [FAILURE]
    assert final.state.after_storage_id == 3
    assert final.state.open_episodes  # the episode is open: no repeat alert for it


def test_a_raising_channel_does_not_crash() -> None:
    def broken(_alert):
        raise RuntimeError("bug in a channel")

    outcome = process([_evaluation(1, passed=False)], AlertState(), broken)
    assert outcome.blocked is not None and outcome.state.after_storage_id == 0


def test_no_urls_means_log_only_and_bad_urls_are_rejected() -> None:
    assert AppriseNotifier([])(None) is True  # type: ignore[arg-type]
    assert parse_urls(" json://a/x , ,slack://t/b ") == ["json://a/x", "slack://t/b"]
    with pytest.raises(ValueError, match="not a valid Apprise URL"):
        AppriseNotifier(["nosuchscheme://secret@host/path"])


def test_latest_per_episode_keeps_each_checks_newest_evaluation() -> None:
    history = [_evaluation(1, False), _evaluation(2, False, "schema"), _evaluation(3, True),
               _evaluation(4, False), _evaluation(5, True, "schema")]  # fmt: skip
    assert [(e.storage_id, e.check, e.passed) for e in latest_per_episode(history)] == [
        (4, "completeness", False),
        (5, "schema", True),
    ]


def test_a_daily_stream_is_one_episode_and_a_pass_for_lack_of_evidence_resolves_nothing() -> None:
    """A fault over several days of a daily-partitioned check alerts once; "not enough data"
    (inconclusive) neither resolves it nor opens one; a real pass resolves it."""
    delivered: list = []

    def day(storage_id: int, date: str, passed: bool, inconclusive: bool = False):
        return CheckEvaluation(
            storage_id=storage_id, asset="forecasts", check="forecasts_issued",
            partition=f"{date}|beijing", passed=passed, severity="ERROR",
            description=None if passed else "forecasting stopped: 2 of 24 due forecasts issued",
            run_id=f"run-{storage_id}", stream="beijing", inconclusive=inconclusive,
        )  # fmt: skip

    evaluations = [
        day(1, "2014-03-21", False),
        day(2, "2014-03-22", False),
        day(3, "2014-03-23", True, inconclusive=True),
        day(4, "2014-03-24", False),
        day(5, "2014-03-25", True),
    ]
    outcome = process(evaluations, AlertState(), lambda a: delivered.append(a) or True)
    assert [(a.kind, a.evaluation.storage_id) for a in outcome.delivered] == [
        (FAILURE, 1),
        (RESOLVED, 5),
    ]
    assert outcome.delivered[0].title == (
        "ERROR check failed: forecasts.forecasts_issued [2014-03-21|beijing]"
    )
    assert outcome.state.open_episodes == []
