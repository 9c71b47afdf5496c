"""Forecast scoring on a hand-made case: per horizon, vs persistence, rolling windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airquality_assets.monitoring.scoring import degradation, score, score_table_markdown

NOW = pd.Timestamp("2014-03-10T00:00Z")


def _observations() -> pd.DataFrame:
    times = pd.date_range(NOW - pd.Timedelta(days=40), NOW, freq="h")
    return pd.DataFrame(
        {"location": "x", "time": times, "pm2_5": np.arange(len(times), dtype=float) % 50}
    )


def _forecasts(obs: pd.DataFrame, horizon: int, targets: pd.DatetimeIndex, errors, persistence):
    actual = obs.set_index("time").loc[targets, "pm2_5"].to_numpy()
    return pd.DataFrame(
        {
            "location": "x",
            "pollutant": "pm2_5",
            "issued_at": targets - pd.Timedelta(hours=horizon),
            "target_time": targets,
            "horizon": horizon,
            "forecast": actual + np.asarray(errors, dtype=float),
            "last_observed": actual + np.asarray(persistence, dtype=float),
            "model_name": "m",
            "model_version": "1",
        }
    )


def test_scores_match_hand_computation() -> None:
    obs = _observations()
    last_day = pd.date_range(NOW - pd.Timedelta(hours=23), NOW, freq="h")
    # Horizon 1: errors +2/-2 alternating (RMSE 2, MAE 2); persistence off by 4 (RMSE 4).
    h1 = _forecasts(obs, 1, last_day, [2.0, -2.0] * 12, [4.0] * 24)
    # Horizon 6: only 5 targets scored: not enough for 24 h (needs 12 of 24).
    h6 = _forecasts(obs, 6, last_day[-5:], [1.0] * 5, [1.0] * 5)
    # A forecast for a target after NOW has no actual yet and must not count.
    future = h1.iloc[:1].assign(target_time=NOW + pd.Timedelta(hours=1), forecast=1e6)
    scores = score(pd.concat([h1, h6, future]), obs, NOW.to_pydatetime(), windows={"24h": 24})

    row1 = scores[scores["horizon"] == 1].iloc[0]
    assert (row1["n"], row1["expected"], row1["status"]) == (24, 24, "ok")
    assert row1["rmse"] == pytest.approx(2.0)
    assert row1["mae"] == pytest.approx(2.0)
    assert row1["persistence_rmse"] == pytest.approx(4.0)
    row6 = scores[scores["horizon"] == 6].iloc[0]
    assert row6["status"] == "not enough data (5 of 24)"
    assert np.isnan(row6["rmse"])
    table = score_table_markdown(scores, horizons=(1, 6))
    assert "| x | pm2_5 | 24h | 1 | 24 of 24 | 2.0 | 2.0 | 4.0 | 0.500 |" in table
    assert "not enough data (5 of 24)" in table


def test_rolling_windows_cover_their_own_targets() -> None:
    obs = _observations()
    week = pd.date_range(NOW - pd.Timedelta(hours=167), NOW, freq="h")
    errors = np.where(week > NOW - pd.Timedelta(hours=24), 10.0, 0.0)  # bad only on the last day
    scores = score(
        _forecasts(obs, 1, week, errors, np.zeros(len(week))),
        obs,
        NOW.to_pydatetime(),
        windows={"24h": 24, "7d": 168},
    ).set_index("window")
    assert scores.loc["24h", "rmse"] == pytest.approx(10.0)
    assert scores.loc["7d", "rmse"] == pytest.approx(np.sqrt(24 * 100 / 168))
    assert scores.loc["7d", "n"] == 168


def test_missing_actuals_are_not_scored() -> None:
    obs = _observations()
    day = pd.date_range(NOW - pd.Timedelta(hours=23), NOW, freq="h")
    obs.loc[obs["time"].isin(day[:20]), "pm2_5"] = np.nan
    scores = score(_forecasts(obs.fillna(0), 1, day, [1.0] * 24, [1.0] * 24), obs,
                   NOW.to_pydatetime(), windows={"24h": 24})  # fmt: skip
    assert scores.iloc[0]["status"] == "not enough data (4 of 24)"


def test_degradation_compares_matched_horizons() -> None:
    scores = pd.DataFrame(
        {
            "horizon": [1, 24, 6],
            "window": ["7d", "7d", "7d"],
            "rmse": [30.0, 90.0, 1.0],
            "status": ["ok", "ok", "not enough data (1 of 168)"],
        }
    )
    exceeded, ratios = degradation(scores, {1: 20.0, 24: 100.0, 6: 50.0}, factor=1.3)
    assert exceeded
    assert ratios == {1: 1.5, 24: 0.9}
    assert not degradation(scores, {1: 20.0, 24: 100.0}, factor=1.6)[0]
    assert not degradation(scores.iloc[2:], {6: 50.0}, factor=1.0)[0]  # nothing scored yet


def test_accuracy_chart_is_a_png() -> None:
    from airquality_assets.monitoring.chart import accuracy_chart

    obs = _observations()
    week = pd.date_range(NOW - pd.Timedelta(hours=167), NOW, freq="h")
    forecasts = pd.concat(
        [_forecasts(obs, h, week, np.ones(len(week)), np.zeros(len(week))) for h in (1, 6, 24)]
    )
    png = accuracy_chart(obs, forecasts, "x", "pm2_5", NOW.to_pydatetime())
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    # shown at its own size in a Dagster metadata cell (~560 px wide): a wider one is cut off
    assert _png_width(png) <= 560


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # the IHDR chunk's width


def test_a_trend_chart_draws_values_over_the_deployment_clock() -> None:
    from airquality_assets.monitoring.chart import trend_chart

    points = pd.DataFrame(
        {
            "clock": ["2014-12-29T00:30:00+00:00", "2014-12-27T00:30:00+00:00"],
            "rmse": [30.0, 25.0],
            "persistence": [float("nan"), 40.0],
        }
    )
    png = trend_chart(points, "7-day RMSE", "ug/m3")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and _png_width(png) <= 560
    empty = trend_chart(points.assign(rmse=float("nan"), persistence=float("nan")), "t", "y")
    assert empty.startswith(b"\x89PNG\r\n\x1a\n")  # warming up: an empty chart, no error
