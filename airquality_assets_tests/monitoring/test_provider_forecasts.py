"""OWM forecast issues become forecast-store rows scored on the same pairs as the champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from airquality_assets.monitoring.provider_forecasts import PROVIDER_MODEL, provider_forecast_rows
from airquality_assets.monitoring.scoring import FORECAST_COLUMNS, score

ISSUE = datetime(2024, 3, 4, 0, tzinfo=UTC)


def _body(start: datetime, values: list[float | None]) -> bytes:
    """An OWM forecast body in the exact wire shape (compact JSON, ``list`` from the current
    hour, every component)."""
    rows = []
    for i, v in enumerate(values):
        components = {"co": 290.0, "no": 0.5, "no2": 28.0, "o3": 21.0, "so2": 4.0,
                      "pm2_5": v, "pm10": 15.0, "nh3": 1.1}  # fmt: skip
        rows.append({"main": {"aqi": 2}, "components": components,
                     "dt": int(start.timestamp()) + 3600 * i})  # fmt: skip
    doc = {"coord": {"lon": -0.1278, "lat": 51.5074}, "list": rows}
    return json.dumps(doc, separators=(",", ":")).encode()


def _observations(hours: int, value: float) -> pd.DataFrame:
    times = pd.date_range(ISSUE, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame({"location": "london", "time": times, "pm2_5": value})


def test_an_issue_becomes_one_row_per_lead_hour_with_persistence_at_the_issue_hour() -> None:
    body = _body(ISSUE, [10.0, 11.0, 12.0, None, 14.0])
    rows = provider_forecast_rows([(ISSUE, body)], "london", ["pm2_5"], _observations(6, 9.0),
                                  horizons=range(1, 4))  # fmt: skip
    assert list(rows.columns) == list(FORECAST_COLUMNS)
    # the current hour (lead 0) is not a forecast; leads past the horizons are left out
    assert rows["horizon"].tolist() == [1, 2, 3]
    assert rows["forecast"].iloc[:2].tolist() == [11.0, 12.0] and np.isnan(rows["forecast"].iloc[2])
    assert (rows["last_observed"] == 9.0).all()  # observed at the issue hour
    assert (rows["model_name"] == PROVIDER_MODEL).all()
    assert (rows["target_time"] - rows["issued_at"]).tolist() == [pd.Timedelta(hours=h)
                                                                 for h in (1, 2, 3)]  # fmt: skip


def test_an_issue_hour_without_an_observation_has_no_persistence_pair() -> None:
    later = datetime(2024, 3, 5, 0, tzinfo=UTC)
    rows = provider_forecast_rows([(later, _body(later, [1.0, 2.0]))], "london", ["pm2_5"],
                                  _observations(6, 9.0), horizons=[1])  # fmt: skip
    assert len(rows) == 1 and np.isnan(rows["last_observed"].iloc[0])


def test_provider_rows_score_like_the_champions() -> None:
    """Hourly issues over a day, forecast = truth + 2 at every lead: RMSE 2 at each horizon."""
    truth = 20.0
    observations = _observations(30, truth)
    issues = [
        (ISSUE + pd.Timedelta(hours=i), _body(ISSUE + pd.Timedelta(hours=i), [truth + 2.0] * 4))
        for i in range(24)
    ]
    rows = provider_forecast_rows(issues, "london", ["pm2_5"], observations, horizons=[1, 3])
    now = ISSUE + pd.Timedelta(hours=26)
    scores = score(rows, observations, now, windows={"24h": 24})
    ok = scores[scores["status"] == "ok"].set_index("horizon")
    assert ok.loc[1, "rmse"] == 2.0 and ok.loc[3, "rmse"] == 2.0
    assert ok.loc[1, "persistence_rmse"] == 0.0  # constant truth: persistence is exact


def test_no_issues_give_an_empty_frame_with_the_store_columns() -> None:
    rows = provider_forecast_rows([], "london", ["pm2_5"], _observations(2, 1.0), horizons=[1])
    assert rows.empty and list(rows.columns) == list(FORECAST_COLUMNS)
