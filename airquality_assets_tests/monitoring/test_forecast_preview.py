"""The forecasts asset's preview: the newest issue, a few horizons, rounded."""

from __future__ import annotations

import pandas as pd

from airquality_assets.monitoring.forecast_preview import forecast_preview
from airquality_assets.monitoring.scoring import empty_forecasts


def _issue(hour: int, offset: float) -> pd.DataFrame:
    issued = pd.Timestamp("2014-03-02", tz="UTC") + pd.Timedelta(hours=hour)
    return pd.DataFrame(
        {
            "pollutant": "pm2_5",
            "issued_at": issued,
            "horizon": range(1, 25),
            "forecast": [offset + h + 0.04 for h in range(1, 25)],
        }
    )


def test_the_newest_issue_at_the_shown_horizons() -> None:
    day = pd.concat([_issue(3, 100.0), _issue(22, 200.0), _issue(5, 300.0)], ignore_index=True)
    lines = forecast_preview(day).splitlines()
    assert lines[0] == "| pollutant | issued (UTC) | +1 h | +6 h | +12 h | +24 h |"
    assert lines[2] == "| pm2_5 | 2014-03-02 22:00 | 201.0 | 206.0 | 212.0 | 224.0 |"
    assert len(lines) == 3


def test_a_horizon_not_forecast_is_blank_and_an_empty_day_says_so() -> None:
    short = _issue(0, 0.0).query("horizon <= 6")
    assert forecast_preview(short).splitlines()[2].endswith("| 1.0 | 6.0 |  |  |")
    assert forecast_preview(empty_forecasts()) == "_no forecast stored for this day_"
