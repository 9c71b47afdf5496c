"""The accuracy check's verdict on stored forecasts scored against what was observed."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from airquality_assets.monitoring.accuracy import (
    CANNOT_JUDGE,
    DEGRADED,
    OK,
    WARMING_UP,
    WORSE,
    accuracy_verdict,
)
from airquality_assets.monitoring.forecasting import forecast_frame
from airquality_assets.monitoring.scoring import empty_forecasts, score

NOW = datetime(2014, 4, 1, tzinfo=UTC)
HORIZONS = [1, 6, 12, 24]
TEST_RMSE = {h: 20.0 for h in HORIZONS}


def _observations(days: int = 40) -> pd.DataFrame:
    times = pd.date_range(pd.Timestamp(NOW) - pd.Timedelta(days=days), NOW, freq="h")
    rng = np.random.default_rng(5)
    level = 80 + np.cumsum(rng.normal(0, 6, len(times)))  # a slow random walk: persistence is good
    return pd.DataFrame({"location": "x", "time": times, "pm2_5": np.clip(level, 1, None)})


def _forecasts(obs: pd.DataFrame, error_sd: float, days: int = 32) -> pd.DataFrame:
    """Forecasts issued every hour of the last ``days``: the truth plus noise."""
    series = obs.set_index("time")["pm2_5"]
    issued = pd.date_range(pd.Timestamp(NOW) - pd.Timedelta(days=days), NOW, freq="h")
    rng = np.random.default_rng(6)
    truth = np.stack([series.reindex(issued + pd.Timedelta(hours=h)).to_numpy()
                      for h in HORIZONS], axis=1)  # fmt: skip
    truth = np.where(np.isfinite(truth), truth, series.iloc[-1])
    pred = truth + rng.normal(0, error_sd, truth.shape)
    last = series.reindex(issued).to_numpy()[:, None]
    return forecast_frame("x", issued, pred[:, :, None], last, ["pm2_5"], HORIZONS, "m", "1")


def _verdict(forecasts: pd.DataFrame, obs: pd.DataFrame):
    return accuracy_verdict(score(forecasts, obs, NOW), forecasts, obs, NOW, TEST_RMSE, 1.5)


def test_a_good_champion_passes() -> None:
    obs = _observations()
    verdict = _verdict(_forecasts(obs, error_sd=3.0), obs)
    assert verdict.status == OK and verdict.passed, verdict.description


def test_errors_far_above_the_test_rmse_are_degraded() -> None:
    obs = _observations()
    verdict = _verdict(_forecasts(obs, error_sd=60.0), obs)
    assert verdict.status == DEGRADED and not verdict.passed and verdict.severity == "ERROR"
    assert "x the champion's test RMSE" in verdict.description
    assert "worse than persistence" in verdict.description  # both are said


def test_worse_than_persistence_alone_is_a_warning() -> None:
    obs = _observations()
    verdict = accuracy_verdict(
        score(f := _forecasts(obs, error_sd=45.0), obs, NOW), f, obs, NOW,
        {h: 100.0 for h in HORIZONS}, 1.5,
    )  # fmt: skip
    assert verdict.status == WORSE and verdict.severity == "WARN", verdict.description
    assert verdict.versus_persistence is not None and verdict.versus_persistence.p_a_worse < 0.01


def test_no_pairs_is_warming_up_at_first_and_a_blind_spot_later() -> None:
    obs = _observations()
    young = _forecasts(obs, error_sd=3.0, days=2)
    early = _verdict(young, obs)
    assert early.status == WARMING_UP and early.passed and early.inconclusive
    # forecasting ran for weeks, then stopped 10 days ago: nothing to score this week
    old = _forecasts(obs, error_sd=3.0)
    stopped = old[old["issued_at"] < pd.Timestamp(NOW) - pd.Timedelta(days=10)]
    late = _verdict(stopped, obs)
    assert late.status == CANNOT_JUDGE and not late.passed and late.severity == "WARN"
    assert "forecasts stopped or actuals missing" in late.description
    none = _verdict(empty_forecasts(), obs)
    assert none.status == WARMING_UP and none.inconclusive


def test_interval_coverage_counts_hours_inside_the_stored_interval() -> None:
    """Per horizon, the share of the week's targets inside [lower, upper]; forecasts stored
    without an interval are left out, not counted as misses."""
    from airquality_assets.ml.intervals import Intervals
    from airquality_assets.monitoring.accuracy import interval_coverage

    now = pd.Timestamp("2014-03-10T00:00Z")
    issued = pd.date_range(now - pd.Timedelta(days=7), now - pd.Timedelta(hours=2), freq="h")
    calibration = Intervals(0.8, ["pm2_5"], [1, 2], [[-5.0, -5.0]], [[5.0, 5.0]], n=100)
    values = np.full((len(issued), 2, 1), 50.0)
    frame = forecast_frame("beijing", issued, values, np.full((len(issued), 1), 50.0),
                           ["pm2_5"], [1, 2], "m", "1", intervals=calibration)  # fmt: skip
    hours = pd.date_range(issued[0], now, freq="h")
    actual = np.where(np.arange(len(hours)) % 4 == 0, 80.0, 52.0)  # every 4th hour outside
    observations = pd.DataFrame({"location": "beijing", "time": hours, "pm2_5": actual})
    without = frame.assign(
        lower=np.nan, upper=np.nan, issued_at=frame["issued_at"] - pd.Timedelta(days=1)
    )
    table = interval_coverage(
        pd.concat([frame, without]), observations, now.to_pydatetime(), 24 * 7
    )
    assert table["horizon"].tolist() == [1, 2]
    assert table["n"].tolist() == [len(issued)] * 2
    assert table["coverage"].tolist() == pytest.approx([0.75, 0.75], abs=0.01)
