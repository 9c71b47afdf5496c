"""Issued forecasts: inputs end at the issue hour, and a stored forecast is never rewritten."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from airquality_assets.monitoring.forecasting import (
    ForecastStore,
    issue,
    issue_hours,
    issuing_verdict,
)

DAY = date(2014, 3, 2)
COMPUTED_AT = datetime(2014, 3, 2, 23, 10, tzinfo=UTC)


def _observations() -> pd.DataFrame:
    times = pd.date_range("2014-03-01", "2014-03-03", freq="h", tz="UTC")
    return pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": np.arange(len(times), dtype=float),
         "temp": 1.0}
    )  # fmt: skip


def _model(offset: float):
    """A stand-in forward pass: last pm2_5 in the window + offset, for 2 horizons."""

    def forward(x: np.ndarray) -> np.ndarray:
        last = x[:, -1, 0]
        return np.stack([last + offset, last + 2 * offset], axis=1)[:, :, None]

    return forward


def _issue(hours, model, version: str, observations: pd.DataFrame | None = None):
    obs = _observations() if observations is None else observations
    return issue(obs, "x", hours, model, ["pm2_5", "temp"], ["pm2_5"], 3, [1, 2], "m", version,
                 computed_at=COMPUTED_AT)  # fmt: skip


def test_issue_hours_stop_at_the_clock() -> None:
    hours = issue_hours(DAY, datetime(2014, 3, 2, 5, 30, tzinfo=UTC))
    assert list(hours.hour) == [0, 1, 2, 3, 4, 5]


def test_inputs_end_at_the_issue_hour() -> None:
    hours = issue_hours(DAY, datetime(2014, 3, 2, 1, tzinfo=UTC))
    frame, report = _issue(hours, _model(10.0), "1")
    assert report.skipped == [] and report.filled == {}
    first = frame[frame["issued_at"] == hours[0]].set_index("horizon")
    # pm2_5 at 2014-03-02T00 is 24 (hours since 03-01T00); persistence is that value.
    assert first.loc[1, "forecast"] == 34.0 and first.loc[2, "forecast"] == 44.0
    assert first.loc[1, "last_observed"] == 24.0
    assert first.loc[2, "target_time"] == pd.Timestamp("2014-03-02T02:00Z")
    assert (frame["computed_at"] == pd.Timestamp(COMPUTED_AT)).all()
    assert (frame["filled_inputs"] == "").all()


def test_a_gap_in_the_target_skips_that_hour_and_says_since_when() -> None:
    obs = _observations()
    obs.loc[obs["time"] == pd.Timestamp("2014-03-01T23:00Z"), "pm2_5"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 3, tzinfo=UTC))
    frame, report = issue(obs, "x", hours, _model(1.0), ["pm2_5"], ["pm2_5"], 3, [1, 2], "m",
                          "1")  # fmt: skip
    assert report.skipped == ["2014-03-02T00:00:00+00:00", "2014-03-02T01:00:00+00:00"]
    assert report.missing_since == {"pm2_5": "2014-03-01T23:00:00+00:00"}
    assert sorted(set(frame["issued_at"].dt.hour)) == [2, 3]


def test_a_missing_weather_input_is_filled_from_its_last_reading_and_flagged() -> None:
    """A temperature sensor gone (e.g. readings in Fahrenheit fail the bounds): forecasting
    goes on with the last reading, and each forecast says so."""
    obs = _observations()
    gone = obs["time"] >= pd.Timestamp("2014-03-02T01:00Z")
    obs.loc[gone, "temp"] = np.nan
    hours = issue_hours(DAY, datetime(2014, 3, 2, 3, tzinfo=UTC))
    frame, report = _issue(hours, _model(1.0), "1", obs)
    assert report.skipped == []
    assert report.filled == {"temp": 3}  # the windows ending at 01, 02 and 03
    assert report.missing_since == {"temp": "2014-03-02T01:00:00+00:00"}
    by_hour = frame.groupby(frame["issued_at"].dt.hour)["filled_inputs"].first()
    assert list(by_hour) == ["", "temp", "temp", "temp"]
    # beyond the fill limit the hour is not forecast
    _, limited = issue(obs, "x", hours, _model(1.0), ["pm2_5", "temp"], ["pm2_5"], 3, [1, 2],
                       "m", "1", fill_limit_hours=1)  # fmt: skip
    assert limited.skipped == ["2014-03-02T02:00:00+00:00", "2014-03-02T03:00:00+00:00"]


def test_issued_forecasts_are_not_rewritten_on_rerun(tmp_path) -> None:
    store = ForecastStore(tmp_path)
    morning = issue_hours(DAY, datetime(2014, 3, 2, 5, tzinfo=UTC))
    first, _ = _issue(morning, _model(10.0), "1")
    assert store.append("x", DAY, first) == (len(first), 0)

    # Later the same day, a new champion (v2) re-runs the partition.
    evening = issue_hours(DAY, datetime(2014, 3, 2, 8, tzinfo=UTC))
    second, _ = _issue(evening, _model(-5.0), "2")
    added, kept = store.append("x", DAY, second)
    assert added == 3 * 2 and kept == 6 * 2

    stored = store.read_day("x", DAY)
    by_hour = stored.groupby(stored["issued_at"].dt.hour)["model_version"].first()
    assert list(by_hour.loc[0:5]) == ["1"] * 6  # what v1 said stays what was said
    assert list(by_hour.loc[6:8]) == ["2"] * 3
    early = stored[(stored["issued_at"].dt.hour == 0) & (stored["horizon"] == 1)]
    assert early["forecast"].item() == 34.0
    assert store.append("x", DAY, second) == (0, len(second))  # idempotent
    window = store.read(datetime(2014, 3, 2, 6, tzinfo=UTC), datetime(2014, 3, 3, tzinfo=UTC),
                        ["x"])  # fmt: skip
    assert sorted(set(window["issued_at"].dt.hour)) == [6, 7, 8]


def test_the_issuing_verdict_says_stopped_degraded_or_ok_and_why() -> None:
    due = issue_hours(DAY, datetime(2014, 3, 2, 23, tzinfo=UTC))
    complete, _ = _issue(due, _model(1.0), "1")
    ok = issuing_verdict(due, complete, {})
    assert ok.passed and ok.description == "24 of 24 due forecasts issued"

    obs = _observations()
    obs.loc[obs["time"] >= pd.Timestamp("2014-03-02T20:00Z"), "temp"] = np.nan
    filled, report = _issue(due, _model(1.0), "1", obs)
    degraded = issuing_verdict(due, filled, report.missing_since)
    assert degraded.status == "degraded" and degraded.severity == "WARN"
    assert degraded.description == (
        "forecasting degraded: 4 of 24 issued with inputs filled from the last reading "
        "(temp missing since 2014-03-02T20:00)"
    )

    obs.loc[obs["time"] >= pd.Timestamp("2014-03-02T05:00Z"), "pm2_5"] = np.nan
    few, report = _issue(due, _model(1.0), "1", obs)
    stopped = issuing_verdict(due, few, report.missing_since)
    assert stopped.status == "stopped" and stopped.severity == "ERROR"
    assert stopped.description.startswith("forecasting stopped: 5 of 24 due forecasts issued (")
    assert "pm2_5 missing since 2014-03-02T05:00" in stopped.description
