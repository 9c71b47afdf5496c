"""The chart a person looks at: last week's observations and what was forecast for them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from airquality_assets.columns import LOCATION, TIME


def accuracy_chart(
    observations: pd.DataFrame,
    forecasts: pd.DataFrame,
    location: str,
    pollutant: str,
    now: datetime,
    horizons: Sequence[int] = (1, 6, 24),
    days: int = 7,
) -> bytes:
    """PNG: the last ``days`` of observed ``pollutant`` with, for each target hour, the
    forecasts issued 1, 6 and 24 h earlier (one line per horizon), and the prediction
    interval of the longest of them as a band where one is stored."""
    import matplotlib

    matplotlib.use("Agg")  # headless: Dagster workers and CI have no display
    import matplotlib.pyplot as plt

    end = pd.Timestamp(now)
    start = end - pd.Timedelta(days=days)
    obs = observations[
        (observations[LOCATION] == location)
        & (observations[TIME] > start)
        & (observations[TIME] <= end)
    ]
    fc = forecasts[
        (forecasts[LOCATION] == location)
        & (forecasts["pollutant"] == pollutant)
        & (forecasts["target_time"] > start)
        & (forecasts["target_time"] <= end)
    ]
    figure, axis = plt.subplots(figsize=(10, 3.5))
    band = fc[fc["horizon"] == max(horizons)].sort_values("target_time")
    if "lower" in band.columns and band["lower"].notna().any():
        axis.fill_between(
            band["target_time"], band["lower"].astype(float), band["upper"].astype(float),
            color="tab:green", alpha=0.15, lw=0, label=f"{max(horizons)} h interval",
        )  # fmt: skip
    axis.plot(obs[TIME], obs[pollutant], color="black", lw=1.4, label="observed")
    for h in horizons:
        rows = fc[fc["horizon"] == h].sort_values("target_time")
        axis.plot(rows["target_time"], rows["forecast"], lw=1, label=f"issued {h} h earlier")
    axis.set_title(f"{location} {pollutant}: last {days} days, observed vs forecast")
    axis.set_ylabel("µg/m³")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", ncol=len(horizons) + 2)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
