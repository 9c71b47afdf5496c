"""``GET /forecast``: the newest stored forecast of one location, as issued, with AQI bands.

``POST /predict`` wants the caller to bring 24 hours of observations; the loop's
``forecasts`` asset already issues a forecast every hour and stores it
(:class:`~airquality_assets.monitoring.forecasting.ForecastStore`). This module answers a
GET from that store: no model run, the values exactly as issued (clipped at 0 ug/m3 and
banded as ``/predict`` does), in ``/predict``'s per-location shape plus ``issued_at``,
``computed_at`` and the issuing model.

It is pure: the service hands in a reader of the store (anything with ``locations()`` and
``latest(location)``: the monitoring package's store, which serving may not import), the
deployment's clock and the staleness limit. The body depends only on what is stored, so
its hash is a stable ``ETag``; ``Last-Modified`` is when the forecast was computed (its
issue time when the store does not record that). A newest forecast older than the limit is
a 503 saying so (the loop has stopped issuing), not an old answer passed off as current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from airquality_assets.aqi import aqi_band, has_aqi_scale, overall_aqi
from airquality_assets.columns import LOCATION
from airquality_assets.serving.request import (
    MAX_LOCATION_NAME,
    ModelRef,
    PollutantForecast,
    RequestError,
)

#: How many stored locations a 404 names (a load test stores a thousand).
NAMED_LOCATIONS = 20
#: Every answer (200 or 304) is revalidated: a new forecast is issued every hour.
CACHE_CONTROL = "no-cache"


class ForecastReader(Protocol):
    """What the endpoint reads: the forecast store's listing and newest issue."""

    def locations(self) -> list[str]: ...

    def latest(self, location: str) -> pd.DataFrame: ...


class LatestForecast(BaseModel):
    """The ``GET /forecast`` answer: one location's newest stored forecast."""

    model_config = ConfigDict(protected_namespaces=())
    model: ModelRef = Field(description="the champion that issued this forecast")
    units: str
    location: str
    issued_at: str = Field(description="the issue hour: inputs are observations up to it")
    computed_at: str | None = Field(
        description="when the loop computed it; null: the store does not record it"
    )
    horizons: list[int]
    times: list[str] = Field(description="target hour per horizon: issued_at + horizon")
    pollutants: dict[str, PollutantForecast]
    aqi: list[int] | None = Field(description="worst band across pollutants per horizon")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers and body bytes (empty for 304)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _iso(moment: pd.Timestamp) -> str:
    return moment.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    moment = pd.Timestamp(value)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def forecast_body(rows: pd.DataFrame) -> dict[str, Any]:
    """The answer for one issue's stored rows (one location, one ``issued_at``).

    Values are clipped at 0 ug/m3 and banded on the clipped value, as ``/predict`` does; a
    non-finite stored value is ``null`` with band ``null`` (unknown, never "Good").
    """
    first = rows.iloc[0]
    issued = _timestamp(first["issued_at"])
    assert issued is not None
    computed = _timestamp(first["computed_at"]) if "computed_at" in rows.columns else None
    horizons = sorted(int(h) for h in rows["horizon"].unique())
    pollutants: dict[str, Any] = {}
    bands: dict[str, np.ndarray] = {}
    for pollutant in sorted(rows["pollutant"].astype(str).unique()):
        mine = rows[rows["pollutant"].astype(str) == pollutant]
        series = mine.set_index("horizon")["forecast"].astype(float).reindex(horizons)
        values = np.maximum(series.to_numpy(dtype=np.float64), 0.0)
        known = np.isfinite(values)
        rounded = [round(float(v), 4) if ok else None for v, ok in zip(values, known, strict=True)]
        entry: dict[str, Any] = {"values": rounded, "aqi": None}
        entry.update(_interval(mine, horizons))
        if has_aqi_scale(pollutant):
            band = aqi_band(pollutant, np.where(known, values, np.nan))
            bands[pollutant] = band
            entry["aqi"] = [int(b) if b else None for b in band]
        pollutants[pollutant] = entry
    overall = overall_aqi(bands).tolist() if bands else None
    return {
        "model": {"name": str(first["model_name"]), "version": str(first["model_version"])},
        "units": "ug/m3",
        "location": str(first[LOCATION]),
        "issued_at": _iso(issued),
        "computed_at": _iso(computed) if computed is not None else None,
        "horizons": horizons,
        "times": [_iso(issued + pd.Timedelta(hours=h)) for h in horizons],
        "pollutants": pollutants,
        "aqi": None if overall is None else [int(b) if b else None for b in overall],
    }


def _interval(rows: pd.DataFrame, horizons: list[int]) -> dict[str, Any]:
    """``lower``/``upper`` per horizon as stored (null where unknown); nothing for a
    forecast stored without an interval (an older champion, an older store)."""
    if "lower" not in rows.columns or not rows["lower"].notna().any():
        return {}
    out: dict[str, Any] = {}
    for side in ("lower", "upper"):
        series = rows.set_index("horizon")[side].astype(float).reindex(horizons)
        out[side] = [round(float(v), 4) if np.isfinite(v) else None for v in series]
    return out


def etag_for(body: bytes) -> str:
    """A strong ETag: the body's hash (the body is a function of what is stored)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison over a list of tags (``W/`` ignored), or ``*``."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def _not_modified_since(if_modified_since: str, last_modified: pd.Timestamp) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unparseable date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        return False
    return last_modified.floor("s") <= pd.Timestamp(since)


def _error(status: int, field_: str, reason: str, code: str) -> Answer:
    body = json.dumps(RequestError.one(status, field_, reason, code).to_body(), ensure_ascii=True)
    return Answer(
        status,
        {"content-type": "application/json", "cache-control": "no-store"},
        body.encode("ascii"),
    )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


@dataclass(frozen=True)
class LatestForecasts:
    """Answers ``GET /forecast?location=...`` from the store, against the deployment's
    clock; ``max_age`` is the staleness limit (``AIRQUALITY_FORECAST_MAX_AGE_HOURS``)."""

    reader: ForecastReader
    now: Callable[[], datetime]
    max_age: timedelta

    def answer(
        self,
        location: str | None,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
    ) -> Answer:
        """200 with the body; 304 when the client's validator matches; 404 for a location
        with no stored forecast; 422 without ``location``; 503 when the newest is stale."""
        if not location:
            return _error(
                422, "location", "a query parameter: /forecast?location=<name>", "missing"
            )
        rows = self.reader.latest(location)
        if rows.empty:
            return _error(404, "location", self._unknown(location), "unknown_location")
        body = forecast_body(rows)
        issued = pd.Timestamp(body["issued_at"])
        now = pd.Timestamp(self.now())
        age = (now - issued).to_pytimedelta()
        if age > self.max_age:
            return _error(503, "issued_at", self._stale(location, issued, now, age), "stale")
        data = json.dumps(body, ensure_ascii=True, allow_nan=False).encode("ascii")
        modified = pd.Timestamp(body["computed_at"] or body["issued_at"])
        headers = {
            "etag": etag_for(data),
            "last-modified": format_datetime(modified.to_pydatetime(), usegmt=True),
            "cache-control": CACHE_CONTROL,
        }
        if if_none_match is not None:  # it takes precedence over If-Modified-Since
            if _matches(if_none_match, headers["etag"]):
                return Answer(304, headers)
        elif if_modified_since is not None and _not_modified_since(if_modified_since, modified):
            return Answer(304, headers)
        return Answer(200, {**headers, "content-type": "application/json"}, data)

    def _unknown(self, location: str) -> str:
        location = location[:MAX_LOCATION_NAME]  # echoed back: bounded
        stored = self.reader.locations()
        if not stored:
            return (
                f"no forecast stored for {location!r}: the store holds none yet (the loop's "
                "`forecasts` asset writes them)"
            )
        return f"no forecast stored for {location!r}; stored: {_named(stored)}"

    def _stale(self, location: str, issued: pd.Timestamp, now: pd.Timestamp, age: timedelta) -> str:
        return (
            f"the newest forecast for {location!r} was issued at {_iso(issued)}, "
            f"{_hours(age)} before the clock ({_iso(now)}); the limit is "
            f"{_hours(self.max_age)} (AIRQUALITY_FORECAST_MAX_AGE_HOURS): the loop has "
            "issued nothing newer (is `hourly_forecast_schedule` running?)"
        )


def _named(locations: Sequence[str]) -> str:
    shown = ", ".join(locations[:NAMED_LOCATIONS])
    more = len(locations) - NAMED_LOCATIONS
    return shown + (f" (+{more} more)" if more > 0 else "")
