"""Which test RMSE a week of stored forecasts is judged against.

The degraded verdict divides the 7-day RMSE by a model's test RMSE. Taken against the
champion of the moment, a promotion re-based the ratio at once: in the Fahrenheit
simulation the week's forecasts were all the old champion's, the new one's test RMSE on its
gate windows was higher, so the check sent "resolved" the morning after the promotion
while the fault went on and the 7-day RMSE kept rising. The bar is therefore the
strictest reference among the champion and every version that issued a forecast scored in
the window: a promotion lowers it only once the old version's forecasts have left the week.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import pandas as pd


def window_issuers(forecasts: pd.DataFrame, now: datetime, hours: int) -> list[tuple[str, str]]:
    """``(model_name, model_version)`` of the stored forecasts whose target hour lies in
    ``(now - hours, now]`` (the rows :func:`airquality_assets.monitoring.scoring.score`
    scores for that window), sorted."""
    if forecasts.empty:
        return []
    now_ts = pd.Timestamp(now)
    target = pd.to_datetime(forecasts["target_time"], utc=True)
    rows = forecasts[(target > now_ts - pd.Timedelta(hours=hours)) & (target <= now_ts)]
    pairs = rows[["model_name", "model_version"]].dropna().astype(str).drop_duplicates()
    return sorted(map(tuple, pairs.to_numpy().tolist()))  # type: ignore[arg-type]


def strictest_reference(references: Iterable[Mapping[int, float]]) -> dict[int, float]:
    """Per horizon, the lowest positive test RMSE among ``references``."""
    out: dict[int, float] = {}
    for reference in references:
        for horizon, rmse in reference.items():
            if rmse and rmse > 0 and (int(horizon) not in out or rmse < out[int(horizon)]):
                out[int(horizon)] = float(rmse)
    return out
