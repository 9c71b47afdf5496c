"""``GET /forecast/page``: the stored forecasts as a page for people, rendered on the server.

One section per location: the newest forecast's next 24 hours drawn as inline SVG over the
OWM AQI bands of its pollutant with its prediction interval as a band, a table of the same
values, intervals and bands, the last 7 days of stored forecasts issued 1 and 24 hours
ahead against what was observed, their accuracy by horizon (and the share inside the
interval), with the model version and issue time. Plain HTML and SVG: no script, no
stylesheet or font from anywhere, so it renders the same offline, behind a proxy or in a
test.

What was observed comes from the store itself: every stored issue keeps the value observed
at its issue hour (``last_observed``), so the observation of hour T is what the issue at T
recorded. Hours no forecast was issued at have no observation here, and the chart says so
when there are none at all. Like :mod:`airquality_assets.serving.latest`, this module only
reads through the reader it is handed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np
import pandas as pd

from airquality_assets.aqi import AQI_BREAKPOINTS, has_aqi_scale
from airquality_assets.serving.latest import ForecastReader, forecast_body

#: OWM's names for bands 1-5 and the colours the page gives them.
BAND_NAMES = ("Good", "Fair", "Moderate", "Poor", "Very poor")
BAND_COLOURS = ("#3a9d5d", "#a3c644", "#f2c230", "#ef8a2f", "#d2343f")
#: Sections on one page (a load test stores a thousand locations: ask for one by name).
MAX_LOCATIONS = 12
HISTORY = timedelta(days=7)
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 30, 14, 34


class HistoryReader(ForecastReader, Protocol):
    """The page also reads a window of stored issues."""

    def read(self, start: datetime, end: datetime, locations: Sequence[str]) -> pd.DataFrame: ...


@dataclass(frozen=True)
class Scale:
    """Maps (time, value) to SVG coordinates inside the plot area."""

    start: pd.Timestamp
    end: pd.Timestamp
    top: float

    def x(self, at: pd.Timestamp) -> float:
        span = max((self.end - self.start).total_seconds(), 1.0)
        return LEFT + (WIDTH - LEFT - RIGHT) * (at - self.start).total_seconds() / span

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - min(value, self.top) / self.top)


def _nice_top(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    peak = max(finite, default=10.0) * 1.1
    step = 10 ** np.floor(np.log10(max(peak, 1.0)))
    return float(np.ceil(peak / step) * step)


def _band_rects(pollutant: str, scale: Scale) -> str:
    """Horizontal AQI bands behind the plot (light), up to the axis top."""
    if not has_aqi_scale(pollutant):
        return ""
    edges = (0.0, *AQI_BREAKPOINTS[pollutant], float("inf"))
    parts = []
    for band in range(5):
        low, high = edges[band], min(edges[band + 1], scale.top)
        if low >= scale.top:
            break
        y_top, y_low = scale.y(high), scale.y(low)
        parts.append(
            f'<rect class="band band-{band + 1}" x="{LEFT}" y="{y_top:.1f}" '
            f'width="{WIDTH - LEFT - RIGHT}" height="{y_low - y_top:.1f}" '
            f'fill="{BAND_COLOURS[band]}" fill-opacity="0.18"><title>{BAND_NAMES[band]}: '
            f"{low:g}-{edges[band + 1]:g} ug/m3</title></rect>"
        )
    return "".join(parts)


def _axes(scale: Scale, ticks: Sequence[pd.Timestamp], label: str) -> str:
    parts = [
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#555"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = scale.top * fraction
        parts.append(
            f'<text x="{LEFT - 6}" y="{scale.y(value) + 4:.1f}" text-anchor="end">{value:g}</text>'
        )
    for at in ticks:
        parts.append(
            f'<text x="{scale.x(at):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{escape(at.strftime(label))}</text>"
        )
    return "".join(parts)


def _polyline(points: Sequence[tuple[float, float]], css: str, colour: str, dash: str = "") -> str:
    """One polyline per run of known points (a gap breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if np.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline class="{css}" fill="none" stroke="{colour}" stroke-width="2"{dashes} '
        f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in run)}"/>'
        for run in runs
        if run
    )


def next_24h_svg(body: dict[str, Any], pollutant: str) -> str:
    """The newest forecast's values for ``pollutant`` over its horizons, coloured by band."""
    times = [pd.Timestamp(t) for t in body["times"]]
    values = body["pollutants"][pollutant]["values"]
    bands = body["pollutants"][pollutant]["aqi"] or [None] * len(values)
    issued = pd.Timestamp(body["issued_at"])
    scale = Scale(issued, times[-1], _nice_top([*values, *(entry_upper(body, pollutant))]))
    ticks = [issued + pd.Timedelta(hours=h) for h in range(0, int(body["horizons"][-1]) + 1, 6)]
    series = [
        (scale.x(t), scale.y(v) if v is not None else float("nan"))
        for t, v in zip(times, values, strict=True)
    ]
    dots = []
    for (x, y), value, band, at in zip(series, values, bands, times, strict=True):
        if value is None:
            continue
        colour = BAND_COLOURS[band - 1] if band else "#777"
        name = BAND_NAMES[band - 1] if band else "no band"
        dots.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" '
            f'stroke="#222" stroke-width="0.5"><title>{at:%d %b %H:%M} UTC: {value:g} ug/m3 '
            f"({name})</title></circle>"
        )
    return _svg(
        f"{pollutant} forecast for the next {body['horizons'][-1]} h",
        _band_rects(pollutant, scale)
        + _interval_band(times, body["pollutants"][pollutant], scale)
        + _axes(scale, ticks, "%H:%M")
        + _polyline(series, "forecast", "#222")
        + "".join(dots),
    )


def entry_upper(body: dict[str, Any], pollutant: str) -> list[float]:
    """The interval's upper bounds (none stored: empty), so the axis holds the band."""
    return [v for v in body["pollutants"][pollutant].get("upper") or [] if v is not None]


def _interval_band(times: Sequence[pd.Timestamp], entry: dict[str, Any], scale: Scale) -> str:
    """The prediction interval as a shaded polygon (nothing for a forecast without one)."""
    lower, upper = entry.get("lower"), entry.get("upper")
    if not lower or not upper:
        return ""
    known = [(t, lo, hi) for t, lo, hi in zip(times, lower, upper, strict=True)
             if lo is not None and hi is not None]  # fmt: skip
    if len(known) < 2:
        return ""
    top = [f"{scale.x(t):.1f},{scale.y(hi):.1f}" for t, _, hi in known]
    bottom = [f"{scale.x(t):.1f},{scale.y(lo):.1f}" for t, lo, _ in reversed(known)]
    level = entry.get("level")
    name = f"{level:.0%} prediction interval" if level else "prediction interval"
    return (
        f'<polygon class="interval" points="{" ".join(top + bottom)}" fill="#2f6db5" '
        f'fill-opacity="0.22" stroke="none"><title>{name}</title></polygon>'
    )


def accuracy_by_horizon(history: pd.DataFrame, pollutant: str, now: pd.Timestamp) -> pd.DataFrame:
    """Per horizon over the stored week: pairs, MAE and RMSE of the forecast and of
    persistence against what was observed at the target hour (the value the issue at that
    hour recorded), and the share inside the stored interval (NaN without intervals)."""
    mine = history[history["pollutant"].astype(str) == pollutant]
    columns = ["horizon", "n", "mae", "rmse", "persistence_rmse", "coverage"]
    if mine.empty:
        return pd.DataFrame(columns=columns)
    issued = pd.to_datetime(mine["issued_at"], utc=True)
    observed = (mine.assign(issued_at=issued).drop_duplicates("issued_at").set_index("issued_at"))[
        "last_observed"
    ].astype(float)
    target = pd.to_datetime(mine["target_time"], utc=True)
    actual = observed.reindex(target).to_numpy()
    frame = pd.DataFrame(
        {
            "horizon": mine["horizon"].astype(int).to_numpy(),
            "error": np.maximum(mine["forecast"].astype(float).to_numpy(), 0.0) - actual,
            "naive": mine["last_observed"].astype(float).to_numpy() - actual,
            "lower": mine["lower"].astype(float).to_numpy() if "lower" in mine else np.nan,
            "upper": mine["upper"].astype(float).to_numpy() if "upper" in mine else np.nan,
            "actual": actual,
        }
    )
    frame = frame[np.isfinite(frame["actual"]) & (target <= now).to_numpy()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for horizon, g in frame.groupby("horizon"):
        bounded = g.dropna(subset=["lower", "upper"])
        inside = (bounded["actual"] >= bounded["lower"]) & (bounded["actual"] <= bounded["upper"])
        rows.append(
            {
                "horizon": int(horizon),
                "n": len(g),
                "mae": float(g["error"].abs().mean()),
                "rmse": float(np.sqrt((g["error"] ** 2).mean())),
                "persistence_rmse": float(np.sqrt((g["naive"] ** 2).mean())),
                "coverage": float(inside.mean()) if len(bounded) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=columns)


#: The horizons the accuracy table shows (all 24 would be a wall of numbers).
ACCURACY_HORIZONS = (1, 3, 6, 12, 18, 24)


def _accuracy_table(scores: pd.DataFrame, pollutant: str) -> str:
    shown = scores[scores["horizon"].isin(ACCURACY_HORIZONS)]
    if shown.empty:
        return '<p class="no-accuracy">No forecast of the last 7 days can be scored yet.</p>'
    rows = "".join(
        f"<tr><td>+{r.horizon} h</td><td>{r.n}</td><td>{r.mae:.1f}</td><td>{r.rmse:.1f}</td>"
        f"<td>{r.persistence_rmse:.1f}</td><td>"
        + ("-" if not np.isfinite(r.coverage) else f"{r.coverage:.0%}")
        + "</td></tr>"
        for r in shown.itertuples()
    )
    return (
        f'<table class="accuracy"><caption>{escape(pollutant)}: accuracy by horizon, last 7 '
        "days (ug/m3)</caption><tr><th>ahead</th><th>pairs</th><th>MAE</th><th>RMSE</th>"
        f"<th>persistence RMSE</th><th>in interval</th></tr>{rows}</table>"
    )


def history_frame(history: pd.DataFrame, pollutant: str) -> pd.DataFrame:
    """Per target hour: ``observed`` and the forecasts issued ``h`` hours before it, for the
    shortest and the longest stored horizon (1 and 24 for the project's models)."""
    mine = history[history["pollutant"].astype(str) == pollutant]
    if mine.empty:
        return pd.DataFrame(columns=["observed"])
    issued = pd.to_datetime(mine["issued_at"], utc=True)
    observed = (
        mine.assign(issued_at=issued)
        .drop_duplicates("issued_at")
        .set_index("issued_at")["last_observed"]
        .astype(float)
        .rename("observed")
    )
    target = pd.to_datetime(mine["target_time"], utc=True)
    columns = [observed]
    for horizon in sorted({int(mine["horizon"].min()), int(mine["horizon"].max())}):
        at = mine["horizon"].astype(int) == horizon
        series = pd.Series(
            np.maximum(mine.loc[at, "forecast"].astype(float).to_numpy(), 0.0),
            index=target[at].to_numpy(),
            name=f"{horizon}h",
        )
        columns.append(series[~series.index.duplicated()])
    return pd.concat(columns, axis=1).sort_index()


def history_svg(frame: pd.DataFrame, pollutant: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """Observed against the forecasts issued 1 and 24 h ahead, over ``start..end``."""
    frame = frame[(frame.index >= start) & (frame.index <= end)]
    scale = Scale(start, end, _nice_top(frame.to_numpy(dtype=float).ravel().tolist()))
    ticks = [start + pd.Timedelta(days=d) for d in range(0, 8)]
    lines = _band_rects(pollutant, scale) + _axes(scale, ticks, "%d %b")
    styles = {"observed": ("#111", ""), "1h": ("#2f6db5", ""), "24h": ("#c4572a", "5 3")}
    for column in frame.columns:
        colour, dash = styles.get(column, ("#777", "2 2"))
        points = [(scale.x(t), scale.y(v)) for t, v in frame[column].astype(float).items()]
        css = "observed" if column == "observed" else f"ahead ahead-{column}"
        lines += _polyline(points, css, colour, dash)
    return _svg(f"{pollutant}: last 7 days, observed and forecast", lines)


def _svg(title: str, content: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{content}</svg>"
    )


def _table(body: dict[str, Any], pollutant: str) -> str:
    entry = body["pollutants"][pollutant]
    bands = entry["aqi"] or [None] * len(entry["values"])
    rows = []
    for horizon, at, value, band in zip(
        body["horizons"], body["times"], entry["values"], bands, strict=True
    ):
        shown = "-" if value is None else f"{value:.1f}"
        interval = _range(entry, len(rows))
        cell = (
            f'<td class="aqi" style="background:{BAND_COLOURS[band - 1]}">{BAND_NAMES[band - 1]}'
            "</td>"
            if band
            else "<td>-</td>"
        )
        rows.append(
            f"<tr><td>+{horizon} h</td><td>{escape(pd.Timestamp(at).strftime('%d %b %H:%M'))}"
            f"</td><td>{shown}</td><td>{interval}</td>{cell}</tr>"
        )
    return (
        f"<table><caption>{escape(pollutant)}, ug/m3</caption><tr><th>ahead</th>"
        f"<th>hour (UTC)</th><th>value</th><th>{_interval_heading(entry)}</th><th>AQI</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _interval_heading(entry: dict[str, Any]) -> str:
    level = entry.get("level")
    return f"{level:.0%} interval" if level else "interval"


def _range(entry: dict[str, Any], i: int) -> str:
    lower, upper = entry.get("lower") or [], entry.get("upper") or []
    if i >= len(lower) or lower[i] is None or upper[i] is None:
        return "-"
    return f"{lower[i]:.0f}-{upper[i]:.0f}"


def _legend() -> str:
    swatches = "".join(
        f'<span class="swatch" style="background:{colour}"></span>{name} '
        for colour, name in zip(BAND_COLOURS, BAND_NAMES, strict=True)
    )
    return f'<p class="legend">OWM air quality index: {swatches}</p>'


def _section(
    location: str,
    latest: pd.DataFrame,
    history: pd.DataFrame,
    now: pd.Timestamp,
    max_age: timedelta,
) -> str:
    head = f'<section id="{escape(location, quote=True)}"><h2>{escape(location)}</h2>'
    if latest.empty:
        return head + "<p>No forecast stored for this location.</p></section>"
    body = forecast_body(latest)
    issued = pd.Timestamp(body["issued_at"])
    model = body["model"]
    computed = f", computed {escape(body['computed_at'])}" if body["computed_at"] else ""
    parts = [
        head,
        f'<p class="meta">Issued <time>{escape(body["issued_at"])}</time>{computed} by '
        f"{escape(model['name'])} version <b>{escape(model['version'])}</b>.</p>",
    ]
    age = (now - issued).to_pytimedelta()
    if age > max_age:
        parts.append(
            f'<p class="stale">Stale: issued {age.total_seconds() / 3600:.1f} h before the '
            f"clock ({now:%Y-%m-%dT%H:%M:%SZ}); the loop has issued nothing newer.</p>"
        )
    start = now - pd.Timedelta(HISTORY)
    for pollutant in body["pollutants"]:
        parts.append(f"<h3>{escape(pollutant)}: the next {body['horizons'][-1]} hours</h3>")
        parts.append(next_24h_svg(body, pollutant))
        parts.append(_table(body, pollutant))
        parts.append(f"<h3>{escape(pollutant)}: the last 7 days</h3>")
        frame = history_frame(history, pollutant)
        if frame["observed"].notna().any():
            parts.append(history_svg(frame, pollutant, start, now))
            ahead = [c for c in frame.columns if c != "observed"]
            parts.append(
                '<p class="key"><span class="k observed"></span>observed '
                + "".join(
                    f'<span class="k ahead-{c}"></span>forecast issued {c} ahead ' for c in ahead
                )
                + "</p>"
            )
        else:
            parts.append(
                '<p class="no-observations">No observations stored with the forecasts of '
                "the last 7 days, so there is nothing to compare them with.</p>"
            )
        parts.append(_accuracy_table(accuracy_by_horizon(history, pollutant, now), pollutant))
    return "".join(parts) + "</section>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:760px;color:#222}
h1{font-size:1.4rem}h2{border-bottom:1px solid #ccc;margin-top:2rem}h3{font-size:1rem}
svg{display:block;background:#fff;border:1px solid #ddd}svg text{font-size:11px;fill:#333}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}caption{text-align:left}
.swatch,.k{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}
.k{height:3px}.k.observed{background:#111}.k.ahead-1h{background:#2f6db5}
.k.ahead-24h{background:#c4572a}.stale{color:#a00;font-weight:bold}.meta{color:#444}
"""


def render_page(
    reader: HistoryReader,
    now: datetime,
    max_age: timedelta,
    location: str | None = None,
) -> tuple[int, str]:
    """(status, HTML): every stored location (up to :data:`MAX_LOCATIONS`), or one; 404 for
    a location with no stored forecast."""
    stored = reader.locations()
    clock = pd.Timestamp(now)
    if location is not None:
        if location not in stored:
            return 404, _html(
                "Unknown location",
                f"<p>No forecast stored for {escape(location[:200])}.</p>" + _index(stored),
            )
        chosen = [location]
    else:
        chosen = stored[:MAX_LOCATIONS]
    start = clock - pd.Timedelta(HISTORY) - pd.Timedelta(hours=24)  # issues reaching the window
    sections = [
        _section(name, reader.latest(name), reader.read(start, clock, [name]), clock, max_age)
        for name in chosen
    ]
    if not stored:
        sections = ["<p>No forecast stored yet: the loop's <code>forecasts</code> asset "
                    "writes them.</p>"]  # fmt: skip
    more = ""
    if location is None and len(stored) > MAX_LOCATIONS:
        more = f"<p>{len(stored) - MAX_LOCATIONS} more locations: {_index(stored)}</p>"
    intro = (
        f'<p class="meta">Clock: {clock:%Y-%m-%d %H:%M} UTC. Values in ug/m3, as the '
        "loop issued them; the shaded band is the prediction interval calibrated when the "
        "model was trained.</p>"
    )
    return 200, _html("Air-quality forecast", intro + _legend() + "".join(sections) + more)


def _index(stored: Sequence[str]) -> str:
    links = ", ".join(
        f'<a href="?location={escape(quote(name, safe=""), quote=True)}">{escape(name)}</a>'
        for name in stored[:200]
    )
    return f"<p>Stored: {links or 'none'}</p>"


def _html(title: str, content: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{content}</body></html>"
    )
