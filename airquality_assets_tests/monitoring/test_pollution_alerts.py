"""High-pollution episodes: one alert when a location's forecast reaches the band, one
"over" when it no longer does, delivered through Apprise to a receiver on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.ml.intervals import Intervals
from airquality_assets.monitoring.alerts import AppriseNotifier
from airquality_assets.monitoring.forecasting import forecast_frame
from airquality_assets.monitoring.pollution_alerts import (
    OVER,
    START,
    EpisodeState,
    outlook,
    step,
)

HORIZONS = list(range(1, 25))


def issue(at: str, peak: float, location: str = "beijing") -> pd.DataFrame:
    """One issue: pm2_5 at 20 ug/m3 (Fair) except ``peak`` at +6..+8 h."""
    values = np.full((1, 24, 1), 20.0)
    values[0, 5:8, 0] = peak
    calibration = Intervals(0.8, ["pm2_5"], HORIZONS, [[-10.0] * 24], [[30.0] * 24], n=500)
    return forecast_frame(
        location, pd.DatetimeIndex([pd.Timestamp(at)]), values, np.array([[20.0]]),
        ["pm2_5"], HORIZONS, "airquality-lstm", "3", intervals=calibration,
    )  # fmt: skip


def test_outlook_names_the_hours_the_peak_and_its_interval() -> None:
    seen = outlook(issue("2014-02-20T00:00Z", 120.0), threshold=4)
    assert seen is not None and seen.reached and seen.band == 5  # 120 ug/m3 pm2_5: Very poor
    assert seen.hours == ("2014-02-20T06:00:00+00:00", "2014-02-20T07:00:00+00:00",
                          "2014-02-20T08:00:00+00:00")  # fmt: skip
    assert (seen.peak, seen.peak_lower, seen.peak_upper) == (120.0, 110.0, 150.0)
    calm = outlook(issue("2014-02-20T00:00Z", 30.0), threshold=4)
    assert calm is not None and not calm.reached and calm.band == 3
    assert outlook(issue("2014-02-20T00:00Z", 30.0).iloc[0:0], threshold=4) is None


def test_one_alert_per_episode_and_one_over() -> None:
    sent: list = []
    state = EpisodeState()
    peaks = [30, 60, 90, 60, 30, 60, 30, 30, 30, 30]  # a dip of one issue stays one episode
    for hour, peak in enumerate(peaks):
        seen = outlook(issue(f"2014-02-20T{hour:02d}:00Z", float(peak)), threshold=4)
        outcome = step(
            {"beijing": seen}, state, lambda a: sent.append(a) or True, threshold=4, clear_after=3
        )
        state = EpisodeState.from_cursor(outcome.state.to_cursor())  # through the cursor
        again = step(
            {"beijing": seen}, state, lambda a: sent.append(a) or True, threshold=4, clear_after=3
        )
        assert again.delivered == []  # the same issue seen twice: nothing new
    assert [a.kind for a in sent] == [START, OVER]
    assert sent[0].outlook.issued_at.startswith("2014-02-20T01:00")
    assert sent[1].outlook.issued_at.startswith("2014-02-20T08:00")  # third issue below
    assert "Poor (band 4" in sent[0].body and "interval 50-90" in sent[0].body
    assert state.open_since == {}


def test_undelivered_start_is_retried_on_the_next_issue() -> None:
    seen = outlook(issue("2014-02-20T01:00Z", 80.0), threshold=4)
    failed = step({"beijing": seen}, EpisodeState(), lambda _a: False, threshold=4, clear_after=3)
    assert failed.failed and failed.state.open_since == {} and failed.state.last_issue == {}
    retried = step({"beijing": seen}, failed.state, lambda _a: True, threshold=4, clear_after=3)
    assert [a.kind for a in retried.delivered] == [START]


def test_delivered_to_a_local_receiver_through_apprise(httpserver: HTTPServer) -> None:
    received: list[dict] = []

    def handle(request: Request) -> Response:
        received.append(json.loads(request.get_data()))
        return Response("", status=200)

    httpserver.expect_request("/subscribers", method="POST").respond_with_handler(handle)
    notifier = AppriseNotifier(
        [f"json://127.0.0.1:{httpserver.port}/subscribers"], attempts=1, sleep=lambda _s: None
    )
    state = EpisodeState()
    for hour, peak in enumerate([60, 60, 20, 20, 20]):
        seen = outlook(issue(f"2014-02-20T{hour:02d}:00Z", float(peak)), threshold=4)
        state = step({"beijing": seen}, state, notifier, threshold=4, clear_after=3).state
    assert [r["title"] for r in received] == [
        "Air quality alert: beijing Poor (band 4)",
        "Air quality alert over: beijing",
    ]
    assert received[0]["type"] == "warning" and "Peak 60 ug/m3" in received[0]["message"]
