"""Verdicts the asset checks report, as pure functions (no Dagster, no files).

* :func:`freshness_verdict`: is the newest observation within ``max_lag`` of the source's
  clock, and is nothing stamped after it? A replay deployment's present is inside 2014, so
  Dagster's wall-clock freshness policies cannot judge it; the source's clock can.
* :func:`raw_body_verdict`: does a stored raw body parse, how many records does it hold,
  and do they all fall inside the partition's window?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from airquality_assets.columns import TIME


@dataclass(frozen=True)
class Freshness:
    """One location's freshness: ``state`` is ``fresh``, ``stale``, ``future`` or ``never``."""

    state: str
    newest: pd.Timestamp | None
    lag_hours: float | None
    future_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.state == "fresh"

    def describe(self) -> str:
        if self.state == "never":
            return "no observation stored"
        if self.state == "future":
            return (
                f"{self.future_rows} row(s) after the source's clock; newest observation "
                f"{self.newest} ({-self.lag_hours:.0f} h ahead)"  # type: ignore[operator]
            )
        return f"newest observation {self.newest}, {self.lag_hours:.0f} h before the clock"


def freshness_verdict(
    frame: pd.DataFrame | None,
    now: datetime,
    max_lag: timedelta,
    observed_columns: Iterable[str],
) -> Freshness:
    """Judge the newest hour with a value in any of ``observed_columns`` against ``now``.

    Stale when that hour is more than ``max_lag`` before ``now``; future when any row with
    such a value is stamped after ``now`` (a clock or source bug, or forecasts stored as
    observations): data from the future is as wrong as old data.
    """
    columns = [c for c in observed_columns if frame is not None and c in frame]
    if frame is None or not len(frame) or not columns:
        return Freshness("never", None, None)
    observed = frame.loc[frame[columns].notna().any(axis=1), TIME]
    if observed.empty:
        return Freshness("never", None, None)
    clock = pd.Timestamp(now)
    newest = observed.max()
    lag = (clock - newest) / pd.Timedelta(hours=1)
    future = int((observed > clock).sum())
    if future:
        return Freshness("future", newest, float(lag), future)
    if clock - newest > max_lag:
        return Freshness("stale", newest, float(lag))
    return Freshness("fresh", newest, float(lag))


@dataclass(frozen=True)
class RawBodyVerdict:
    """Per partition: parsed or not, records held, records outside the partition's window."""

    partitions: int
    records: int
    unparsable: dict[str, str] = field(default_factory=dict)
    outside_window: dict[str, int] = field(default_factory=dict)
    empty: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.unparsable and not self.outside_window

    def describe(self) -> str | None:
        problems = []
        if self.unparsable:
            first = next(iter(self.unparsable.items()))
            problems.append(f"{len(self.unparsable)} body(ies) do not parse (e.g. {first[0]})")
        if self.outside_window:
            first_key = next(iter(self.outside_window))
            problems.append(
                f"{len(self.outside_window)} partition(s) hold records outside their window "
                f"(e.g. {first_key}: {self.outside_window[first_key]})"
            )
        return "; ".join(problems) or None


def raw_body_verdict(
    parsed: Mapping[str, pd.DataFrame | Exception],
    windows: Mapping[str, tuple[datetime, datetime]],
) -> RawBodyVerdict:
    """Combine per-partition parse results: ``parsed[key]`` is the frame a body parsed to (or
    the error it raised); ``windows[key]`` is the partition's ``[start, end)`` in UTC."""
    unparsable: dict[str, str] = {}
    outside: dict[str, int] = {}
    empty: list[str] = []
    records = 0
    for key, frame in parsed.items():
        if isinstance(frame, Exception):
            unparsable[key] = f"{type(frame).__name__}: {frame}"
            continue
        records += len(frame)
        if not len(frame):
            empty.append(key)
            continue
        start, end = (pd.Timestamp(t) for t in windows[key])
        times = frame[TIME]
        count = int(((times < start) | (times >= end)).sum())
        if count:
            outside[key] = count
    return RawBodyVerdict(len(parsed), records, unparsable, outside, empty)
