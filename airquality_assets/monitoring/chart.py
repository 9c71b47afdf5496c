"""The chart a person looks at: last week's observations and what was forecast for them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from airquality_assets.columns import LOCATION, TIME

#: Figure size (inches) and resolution: ~540 px wide, the width of a metadata value cell
#: in the Dagster UI, which shows the image at its own size (a wider one is cut off).
FIGSIZE = (6.0, 2.8)
DPI = 90


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
    figure, axis = plt.subplots(figsize=FIGSIZE)
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
    axis.set_title(f"{location} {pollutant}: last {days} days, observed vs forecast", fontsize=10)
    axis.set_ylabel("µg/m³")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="x-small", ncol=3)
    figure.autofmt_xdate()
    return _png(figure)


def _png(figure: object) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # type: ignore[attr-defined]
    plt.close(figure)
    return buffer.getvalue()


def trend_chart(points: pd.DataFrame, title: str, ylabel: str) -> bytes:
    """PNG: each numeric column of ``points`` over its ``clock`` column, the deployment's
    clock (a replay instant, or the wall clock when live). Dagster's own plots put a value
    at the time its event was written, so twelve simulated days run in five minutes of
    them; this one puts it at the time the value is about."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = points.assign(clock=pd.to_datetime(points["clock"], utc=True)).sort_values("clock")
    figure, axis = plt.subplots(figsize=FIGSIZE)
    drawn = False
    for column in ordered.columns.drop("clock"):
        values = pd.to_numeric(ordered[column], errors="coerce")
        axis.plot(ordered["clock"], values, marker="o", ms=3, lw=1.2, label=column)
        drawn = drawn or bool(values.notna().any())
    if len(ordered):  # the clocks' span, also when no value is drawn (warming up)
        pad = pd.Timedelta(hours=12)
        axis.set_xlim(ordered["clock"].min() - pad, ordered["clock"].max() + pad)
    if not drawn:
        axis.text(0.5, 0.5, "no values yet", transform=axis.transAxes, ha="center")
    axis.set_title(title, fontsize=10)
    axis.set_xlabel("deployment clock (UTC)")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="x-small")
    figure.autofmt_xdate()
    return _png(figure)
