"""A day's stored forecasts as a small table for the asset page: the newest issue's values
at a few horizons per pollutant, rounded, so the page shows what was forecast (the file
holds up to 24 issues x 24 horizons x pollutants)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from airquality_assets import markdown

PREVIEW_HORIZONS: tuple[int, ...] = (1, 6, 12, 24)


def forecast_preview(day: pd.DataFrame, horizons: Sequence[int] = PREVIEW_HORIZONS) -> str:
    """``| pollutant | issued | +1 h | +6 h | ... |`` for the day's newest issue hour, values
    to one decimal (blank where that horizon was not forecast); a note when none."""
    if not len(day):
        return "_no forecast stored for this day_"
    issued = pd.to_datetime(day["issued_at"], utc=True)
    newest = issued.max()
    rows = day[issued == newest]
    header = ["pollutant", "issued (UTC)", *(f"+{h} h" for h in horizons)]
    body = []
    for pollutant, group in rows.groupby("pollutant", sort=True):
        by_h = dict(zip(group["horizon"].astype(int), group["forecast"].astype(float), strict=True))
        body.append(
            [
                pollutant,
                f"{newest:%Y-%m-%d %H:%M}",
                *("" if h not in by_h else f"{by_h[h]:.1f}" for h in horizons),
            ]
        )
    return markdown.table(header, body, right_aligned=range(2, 2 + len(horizons)))
