"""The page for people, rendered from a store the loop's ForecastStore wrote: its content,
without a browser (the SVG is parsed as XML; colours, lines and messages are asserted)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from airquality_assets.monitoring.forecasting import ForecastStore, forecast_frame
from airquality_assets.serving.page import BAND_COLOURS, render_page

from .conftest import STORED_HORIZONS, STORED_TARGETS

NOW = pd.Timestamp("2014-12-30T18:00Z")
SVG = "{http://www.w3.org/2000/svg}"


def store_week(base: Path, location: str, observed: float = np.nan) -> None:
    """Hourly issues over the 8 days up to NOW: pm2_5 forecast = 5 x horizon + hour of day,
    observed at the issue hour = the hour of day (or ``observed`` when given)."""
    issued = pd.date_range(NOW - pd.Timedelta(days=8), NOW, freq="h")
    hour = issued.hour.to_numpy(dtype=float)
    values = np.stack(
        [np.stack([5.0 * h + hour, np.full(len(hour), 2.0)], axis=1) for h in STORED_HORIZONS],
        axis=1,
    )
    last = np.stack([hour if np.isnan(observed) else np.full(len(hour), observed),
                     np.zeros(len(hour))], axis=1)  # fmt: skip
    if not np.isnan(observed) and observed < 0:
        last[:] = np.nan
    frame = forecast_frame(
        location, issued, values, last, STORED_TARGETS, STORED_HORIZONS, "airquality-lstm", "7"
    )
    store = ForecastStore(base)
    for day, rows in frame.groupby(frame["issued_at"].dt.date):
        store.append(location, day, rows)


def page(base: Path, location: str | None = None, max_age_h: float = 3) -> tuple[int, str]:
    return render_page(ForecastStore(base), NOW.to_pydatetime(), timedelta(hours=max_age_h),
                       location)  # fmt: skip


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(match) for match in re.findall(r"<svg .*?</svg>", html)]


def test_the_next_24_hours_in_band_colours_and_the_week_against_observations(
    tmp_path: Path,
) -> None:
    store_week(tmp_path, "beijing")
    status, html = page(tmp_path)
    assert status == 200 and html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert 'id="beijing"' in html and "version <b>7</b>" in html
    assert "Issued <time>2014-12-30T18:00:00Z</time>" in html
    assert "prediction interval" in html and "Stale" not in html

    charts = {svg.get("aria-label"): svg for svg in svgs(html)}
    pm_next = charts["pm2_5 forecast for the next 24 h"]
    nh3_next = charts["nh3 forecast for the next 24 h"]
    # The newest issue (18:00): pm2_5 = 5 h + 18 -> 23, 48, 138: bands 2, 3 and 5.
    points = pm_next.findall(f"{SVG}circle")
    assert [p.get("fill") for p in points] == [BAND_COLOURS[1], BAND_COLOURS[2], BAND_COLOURS[4]]
    assert "19:00 UTC: 23 ug/m3 (Fair)" in points[0].find(f"{SVG}title").text
    assert [r.get("fill") for r in pm_next.findall(f"{SVG}rect")] == list(BAND_COLOURS)
    # NH3 has no AQI scale: grey points, no band background.
    assert {p.get("fill") for p in nh3_next.findall(f"{SVG}circle")} == {"#777"}
    assert nh3_next.findall(f"{SVG}rect") == []
    assert "<td>+24 h</td><td>31 Dec 18:00</td><td>138.0</td>" in html

    pm_week = charts["pm2_5: last 7 days, observed and forecast"]
    classes = [line.get("class") for line in pm_week.findall(f"{SVG}polyline")]
    assert classes == ["observed", "ahead ahead-1h", "ahead ahead-24h"]
    observed = pm_week.findall(f"{SVG}polyline")[0].get("points").split()
    assert len(observed) == 7 * 24 + 1  # every hour of the 7 days, in one unbroken line
    assert "forecast issued 24h ahead" in html


def test_stale_and_missing_observations_are_said_on_the_page(tmp_path: Path) -> None:
    store_week(tmp_path, "delhi", observed=-1.0)  # no observation stored with the issues
    status, html = page(tmp_path, max_age_h=3)
    assert status == 200
    assert "No observations stored with the forecasts of the last 7 days" in html
    assert "last 7 days, observed" not in html  # the comparison chart is left out
    late = render_page(ForecastStore(tmp_path), (NOW + pd.Timedelta(hours=5)).to_pydatetime(),
                       timedelta(hours=3))[1]  # fmt: skip
    assert "Stale: issued 5.0 h before the clock (2014-12-30T23:00:00Z)" in late


def test_one_location_unknown_ones_and_an_empty_store(tmp_path: Path) -> None:
    status, html = page(tmp_path)
    assert status == 200 and "No forecast stored yet" in html
    store_week(tmp_path, "beijing")
    store_week(tmp_path, "a&b")
    status, html = page(tmp_path, "a&b")
    assert status == 200 and 'id="a&amp;b"' in html and 'id="beijing"' not in html
    status, html = page(tmp_path, "<paris>")
    assert status == 404 and "&lt;paris&gt;" in html and "<paris>" not in html
    assert '<a href="?location=a%26b">a&amp;b</a>' in html
