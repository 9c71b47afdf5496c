"""Faults injected into observations, to see the operating loop react (simulation, benchmark).

Each fault starts at an instant and changes what a *sensor* would have reported from then on:

* ``recalibration``: pm2_5 reads 1.5x the true value (a re-calibrated monitor);
* ``stuck``: pm2_5 repeats the last good value for 48 h (a frozen monitor);
* ``fahrenheit``: temperature (and feels-like, dew point) reported in degrees F.

They apply to a frame (benchmark) or to the raw API bodies (the simulation's replay source),
so downstream code sees them exactly as it would see a real fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from airquality_assets.columns import TIME

KINDS = ("recalibration", "stuck", "fahrenheit")
STUCK_HOURS = 48
RECALIBRATION_FACTOR = 1.5
_F_COLUMNS = ("temp", "feelslike", "dew")


@dataclass(frozen=True)
class Fault:
    kind: str
    start: datetime

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {KINDS}")
        if self.start.tzinfo is None:
            raise ValueError("fault start must be tz-aware (UTC)")

    @property
    def start_epoch(self) -> int:
        return int(self.start.timestamp())

    def affects(self, epoch: np.ndarray) -> np.ndarray:
        after = epoch >= self.start_epoch
        if self.kind == "stuck":
            return after & (epoch < self.start_epoch + STUCK_HOURS * 3600)
        return after


def apply_to_frame(
    frame: pd.DataFrame, fault: Fault, stuck_value: float | None = None
) -> pd.DataFrame:
    """A copy of an hourly frame (one location, sorted by time) with the fault applied."""
    out = frame.copy()
    epoch = pd.DatetimeIndex(out[TIME]).asi8 // 10**9
    hit = fault.affects(epoch)
    if fault.kind == "recalibration":
        out.loc[hit, "pm2_5"] = out.loc[hit, "pm2_5"] * RECALIBRATION_FACTOR
    elif fault.kind == "stuck":
        if stuck_value is None:
            before = out.loc[epoch < fault.start_epoch, "pm2_5"].dropna()
            stuck_value = float(before.iloc[-1]) if len(before) else 0.0
        out.loc[hit, "pm2_5"] = stuck_value
    else:
        for column in _F_COLUMNS:
            if column in out.columns:
                out.loc[hit, column] = out.loc[hit, column] * 9 / 5 + 32
    return out


def apply_to_air_body(body: bytes, fault: Fault, stuck_value: float) -> bytes:
    """An OpenWeatherMap Air Pollution body (``{"list": [...]}``) with the fault applied."""
    if fault.kind == "fahrenheit":
        return body
    doc = json.loads(body)
    for item in doc.get("list", []):
        if not fault.affects(np.array([item["dt"]]))[0]:
            continue
        components = item.get("components", {})
        if components.get("pm2_5") is None:
            continue
        if fault.kind == "recalibration":
            components["pm2_5"] = round(components["pm2_5"] * RECALIBRATION_FACTOR, 2)
        else:
            components["pm2_5"] = stuck_value
    return json.dumps(doc, separators=(",", ":")).encode()


def apply_to_weather_body(body: bytes, fault: Fault) -> bytes:
    """A Visual Crossing timeline body with the fault applied (only ``fahrenheit`` touches it)."""
    if fault.kind != "fahrenheit":
        return body
    doc = json.loads(body)
    for day in doc.get("days", []):
        for hour in day.get("hours", []):
            if not fault.affects(np.array([hour["datetimeEpoch"]]))[0]:
                continue
            for column in _F_COLUMNS:
                if hour.get(column) is not None:
                    hour[column] = round(hour[column] * 9 / 5 + 32, 1)
    return json.dumps(doc, separators=(",", ":")).encode()


class FaultyAirPollutionSource:
    """An air-pollution source whose answers carry ``fault`` (wraps any source)."""

    def __init__(self, inner, fault: Fault) -> None:
        self.inner = inner
        self.fault = fault
        self.source_name = f"{inner.source_name}+{fault.kind}"

    def _stuck_value(self, location) -> float:
        from datetime import timedelta

        before = self.fault.start - timedelta(hours=6)
        doc = json.loads(self.inner.history(location, before, self.fault.start).body)
        values = [
            i["components"]["pm2_5"]
            for i in doc.get("list", [])
            if i["dt"] < self.fault.start_epoch and i["components"].get("pm2_5") is not None
        ]
        return float(values[-1]) if values else 0.0  # fmt: skip

    def _wrap(self, response, location):
        import dataclasses

        stuck = self._stuck_value(location) if self.fault.kind == "stuck" else 0.0
        return dataclasses.replace(
            response, body=apply_to_air_body(response.body, self.fault, stuck)
        )

    def history(self, location, start, end):
        return self._wrap(self.inner.history(location, start, end), location)

    def forecast(self, location, issued_at):
        """Unchanged: a fault is a sensor's, and a forecast comes from a model, not a sensor."""
        return self.inner.forecast(location, issued_at)

    def now(self):
        return self.inner.now()


class FaultyWeatherSource:
    """A weather source whose answers carry ``fault`` (only ``fahrenheit`` changes them)."""

    def __init__(self, inner, fault: Fault) -> None:
        self.inner = inner
        self.fault = fault
        self.source_name = f"{inner.source_name}+{fault.kind}"

    def timeline(self, location, start, end):
        import dataclasses

        response = self.inner.timeline(location, start, end)
        return dataclasses.replace(response, body=apply_to_weather_body(response.body, self.fault))

    def forecast(self, location, issued_at):
        """Unchanged: a fault is a sensor's, and a forecast comes from a model, not a sensor."""
        return self.inner.forecast(location, issued_at)

    def now(self):
        return self.inner.now()
