"""High-pollution alerts for people: one message when an episode starts, one when it is over.

The operators' check alerts say the pipeline is unwell; these say the *air* will be. The
``pollution_alert_sensor`` hands this module each location's newest stored forecast; an
*episode* starts at the first issue whose next 24 h reach the configured OWM band
(default 4, "Poor") for any pollutant with a scale, and ends at the first issue that no
longer does (after ``clear_after`` consecutive such issues: a forecast that dips under the
band for a few hours and comes back is one episode, not two). Each start sends one alert
(location, band, the hours at or above it, the peak and its prediction interval), each
end one "over"; an issue already seen changes nothing, so re-evaluating the same
forecast never repeats a message. The state (open episodes, the last issue seen per
location) is the sensor's cursor.

Delivery is the caller's (Apprise, as the check alerts): a message that cannot be
delivered leaves the state where it was for that location, so the next tick tries again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from airquality_assets.aqi import aqi_band, has_aqi_scale

BAND_NAMES = ("Good", "Fair", "Moderate", "Poor", "Very poor")
DEFAULT_BAND = 4
#: Hourly issues below the band in a row before an episode is over: half a day of forecasts
#: that no longer reach it (each looking 24 h ahead), so a short clean spell inside a smog
#: week does not end the episode and start another.
CLEAR_AFTER = 12
START, OVER = "high pollution", "over"


@dataclass(frozen=True)
class Outlook:
    """What one issue says about the next 24 h at one location."""

    location: str
    issued_at: str
    reached: bool
    band: int  # worst band forecast (0: unknown)
    pollutant: str | None = None
    hours: tuple[str, ...] = ()  # target hours at or above the threshold band
    peak: float = float("nan")
    peak_at: str | None = None
    peak_lower: float = float("nan")
    peak_upper: float = float("nan")
    model: str = ""


def outlook(rows: pd.DataFrame, threshold: int, within_hours: int = 24) -> Outlook | None:
    """The outlook of one location's newest issue (its stored rows), or None when empty."""
    if rows.empty:
        return None
    first = rows.iloc[0]
    issued = pd.Timestamp(first["issued_at"])
    issued = issued.tz_localize("UTC") if issued.tzinfo is None else issued.tz_convert("UTC")
    near = rows[rows["horizon"].astype(int) <= within_hours]
    best: Outlook | None = None
    worst_band, hours = 0, set()
    for pollutant in sorted(near["pollutant"].astype(str).unique()):
        if not has_aqi_scale(pollutant):
            continue
        mine = near[near["pollutant"].astype(str) == pollutant].sort_values("horizon")
        values = np.maximum(mine["forecast"].astype(float).to_numpy(), 0.0)
        bands = np.asarray(aqi_band(pollutant, values), dtype=float)
        bands = np.nan_to_num(bands, nan=0.0).astype(int)
        worst_band = max(worst_band, int(bands.max(initial=0)))
        times = pd.to_datetime(mine["target_time"], utc=True)
        over = bands >= threshold
        hours.update(t.isoformat() for t in times[over])
        if not over.any():
            continue
        i = int(np.nanargmax(values))
        low = mine["lower"].astype(float).to_numpy() if "lower" in mine else None
        high = mine["upper"].astype(float).to_numpy() if "upper" in mine else None
        candidate = Outlook(
            location=str(first["location"]),
            issued_at=issued.isoformat(),
            reached=True,
            band=int(bands.max()),
            pollutant=pollutant,
            peak=float(values[i]),
            peak_at=times.iloc[i].isoformat(),
            peak_lower=float(low[i]) if low is not None else float("nan"),
            peak_upper=float(high[i]) if high is not None else float("nan"),
            model=f"{first['model_name']} v{first['model_version']}",
        )
        if best is None or (candidate.band, candidate.peak) > (best.band, best.peak):
            best = candidate
    if best is None:
        return Outlook(str(first["location"]), issued.isoformat(), False, worst_band)
    return Outlook(**{**asdict(best), "band": max(worst_band, best.band),
                      "hours": tuple(sorted(hours))})  # fmt: skip


@dataclass(frozen=True)
class PollutionAlert:
    kind: str  # START or OVER
    outlook: Outlook
    threshold: int
    started: str | None = None  # the episode's first issue (for OVER)

    @property
    def title(self) -> str:
        o = self.outlook
        if self.kind == START:
            return f"Air quality alert: {o.location} {BAND_NAMES[o.band - 1]} (band {o.band})"
        return f"Air quality alert over: {o.location}"

    @property
    def body(self) -> str:
        o = self.outlook
        if self.kind == OVER:
            return (
                f"{o.location}: the forecast issued at {o.issued_at[:16]} no longer reaches "
                f"{BAND_NAMES[self.threshold - 1]} (band {self.threshold}) within 24 h; the "
                f"episode that started with the forecast of {(self.started or '?')[:16]} is over."
            )
        interval = (
            f" (interval {o.peak_lower:.0f}-{o.peak_upper:.0f})"
            if np.isfinite(o.peak_lower) and np.isfinite(o.peak_upper)
            else ""
        )
        return (
            f"{o.location}: {o.pollutant} forecast to reach {BAND_NAMES[o.band - 1]} (band "
            f"{o.band}, alert at {self.threshold}) in {len(o.hours)} of the next 24 h: "
            f"{_hour_span(o.hours)}. Peak {o.peak:.0f} ug/m3{interval} at "
            f"{(o.peak_at or '')[:16]} UTC. Forecast issued {o.issued_at[:16]} UTC by {o.model}."
        )

    @property
    def notify_type(self) -> str:
        return "warning" if self.kind == START else "success"


def _hour_span(hours: tuple[str, ...]) -> str:
    if not hours:
        return "-"
    return hours[0][:16] if len(hours) == 1 else f"{hours[0][:16]} to {hours[-1][:16]} UTC"


@dataclass
class EpisodeState:
    """The sensor's cursor: per location the last issue seen, the open episode's first
    issue, and how many issues in a row were below the band."""

    last_issue: dict[str, str] = field(default_factory=dict)
    open_since: dict[str, str] = field(default_factory=dict)
    below: dict[str, int] = field(default_factory=dict)

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> EpisodeState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(dict(data.get("last_issue", {})), dict(data.get("open_since", {})),
                   dict(data.get("below", {})))  # fmt: skip


@dataclass
class EpisodeOutcome:
    state: EpisodeState
    delivered: list[PollutionAlert] = field(default_factory=list)
    failed: list[PollutionAlert] = field(default_factory=list)


def step(
    outlooks: Mapping[str, Outlook | None],
    state: EpisodeState,
    deliver: Callable[[PollutionAlert], bool],
    threshold: int = DEFAULT_BAND,
    clear_after: int = CLEAR_AFTER,
) -> EpisodeOutcome:
    """Advance every location by its newest outlook; deliver the alerts that causes."""
    new = EpisodeState(dict(state.last_issue), dict(state.open_since), dict(state.below))
    outcome = EpisodeOutcome(new)
    for location, seen in sorted(outlooks.items()):
        if seen is None or new.last_issue.get(location) == seen.issued_at:
            continue  # nothing new: never the same message twice
        alert: PollutionAlert | None = None
        below = 0
        if seen.reached:
            if location not in new.open_since:
                alert = PollutionAlert(START, seen, threshold)
        elif location in new.open_since:
            below = new.below.get(location, 0) + 1
            if below >= clear_after:
                alert = PollutionAlert(OVER, seen, threshold, new.open_since[location])
        if alert is not None:
            try:
                ok = bool(deliver(alert))
            except Exception:  # a channel's bug must not kill the sensor
                ok = False
            if not ok:
                outcome.failed.append(alert)
                continue  # state unchanged for this location: the next tick retries
            outcome.delivered.append(alert)
            if alert.kind == START:
                new.open_since[location] = seen.issued_at
            else:
                new.open_since.pop(location, None)
                below = 0
        new.below[location] = below if location in new.open_since else 0
        new.last_issue[location] = seen.issued_at
    return outcome
