"""Freshness by the source's clock and raw-body verdicts, without Dagster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from airquality_assets.quality import freshness_verdict, raw_body_verdict

NOW = datetime(2014, 12, 31, tzinfo=UTC)
LAG = timedelta(hours=3)


def _frame(last_hour: str, pm_until: str | None = None) -> pd.DataFrame:
    times = pd.date_range("2014-12-30", last_hour, freq="h", tz="UTC")
    pm = pd.Series(1.0, index=range(len(times)))
    if pm_until is not None:
        pm[times > pd.Timestamp(pm_until, tz="UTC")] = None
    return pd.DataFrame({"time": times, "pm2_5": pm})


def test_fresh_when_the_newest_observation_is_within_the_lag() -> None:
    verdict = freshness_verdict(_frame("2014-12-30 23:00"), NOW, LAG, ["pm2_5"])
    assert verdict.passed and verdict.state == "fresh" and verdict.lag_hours == 1.0


def test_stale_when_older_than_the_lag() -> None:
    verdict = freshness_verdict(_frame("2014-12-30 20:00"), NOW, LAG, ["pm2_5"])
    assert not verdict.passed and verdict.state == "stale" and verdict.lag_hours == 4.0


def test_data_from_the_future_fails() -> None:
    verdict = freshness_verdict(_frame("2014-12-31 15:00"), NOW, LAG, ["pm2_5"])
    assert not verdict.passed and verdict.state == "future"
    assert verdict.future_rows == 15 and verdict.lag_hours == -15.0
    assert "15 row(s) after the source's clock" in verdict.describe()


def test_only_observed_hours_count() -> None:
    # grid rows with no value (a merge's full hourly grid) neither freshen nor come "from
    # the future"; the newest *observed* hour decides
    frame = _frame("2014-12-31 15:00", pm_until="2014-12-30 19:00")
    verdict = freshness_verdict(frame, NOW, LAG, ["pm2_5"])
    assert verdict.state == "stale" and verdict.lag_hours == 5.0
    assert freshness_verdict(frame, NOW, LAG, ["temp"]).state == "never"
    assert freshness_verdict(None, NOW, LAG, ["pm2_5"]).state == "never"


def test_raw_bodies_parse_count_and_stay_in_their_window() -> None:
    day = (datetime(2014, 3, 1, tzinfo=UTC), datetime(2014, 3, 2, tzinfo=UTC))
    inside = pd.DataFrame({"time": pd.date_range("2014-03-01", periods=24, freq="h", tz="UTC")})
    spill = pd.DataFrame({"time": pd.date_range("2014-03-01", periods=26, freq="h", tz="UTC")})
    verdict = raw_body_verdict(
        {"a": inside, "b": spill, "c": ValueError("not JSON"), "d": inside.iloc[:0]},
        {"a": day, "b": day, "c": day, "d": day},
    )
    assert not verdict.passed
    assert verdict.records == 50 and verdict.partitions == 4
    assert verdict.outside_window == {"b": 2}
    assert verdict.unparsable == {"c": "ValueError: not JSON"}
    assert verdict.empty == ["d"]
    assert raw_body_verdict({"a": inside}, {"a": day}).passed
