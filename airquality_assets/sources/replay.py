"""Offline replay of real Beijing measurements through the OpenWeatherMap / Visual Crossing shapes.

This is the project's embedded default source: it needs no API key and no network, yet the
assets downstream parse byte-for-byte the same JSON shapes as the live clients return
(``{"coord":..,"list":[..]}`` and the VC timeline ``{"queryCost":..,"days":[{.."hours":[..]}]}``).
The data is the UCI "Beijing PM2.5" set (US Embassy station, 2010-2014, CC BY 4.0), converted
once by ``scripts/convert_beijing_pm25.py``; see ``airquality_assets/data/replay/README.md``
for what is measured and what is derived.

The clock. Real APIs answer relative to wall time; the replay answers relative to a fixed,
configurable instant ``now`` inside the data (default 2014-12-31T00:00Z), so a demo and its
tests are reproducible:

* air-pollution ``history`` never returns records after ``now``;
* the weather ``timeline`` mirrors VC: hours up to ``now`` are ``"source":"obs"``; later hours
  up to VC's 15-day forecast horizon (today + 14 days) are ``"source":"fcst"`` (the later
  *measurements*: a perfect forecast, fine for exercising the pipeline but not forecast
  skill); days with no hour at all (beyond the horizon or outside the data) are
  left out of ``days``;
* the weather ``forecast`` issued at any hour the clock has reached is a **stand-in**: the
  timeline shape over the issue's days, hours after the issue hour ``"source":"fcst"`` with
  the bundled observations plus the seeded error model of
  :mod:`airquality_assets.sources.forecast_errors` (target hours may lie after the clock:
  that is what a forecast is for; the values still come from the bundled observations);
* there is no air-pollution forecast: ``forecast`` raises :class:`NotAvailableError`
  rather than invent one.

Only the station's own location is served: a request for another place raises
:class:`SourceError` (status 404), because silently answering "Paris" with Beijing data would
poison every downstream asset.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from airquality_assets.clock import REPLAY_DEFAULT_NOW
from airquality_assets.columns import FORECAST_HOURS
from airquality_assets.data.beijing import (
    OWM_FILE_NAME,
    STATION_LATITUDE,
    STATION_LONGITUDE,
    STATION_NAME,
    VC_FILE_NAME,
)
from airquality_assets.sources.base import Location, NotAvailableError, RawResponse, SourceError
from airquality_assets.sources.forecast_errors import ForecastErrorModel

#: The data set's station as a monitored location (partition key "beijing").
BEIJING = Location(name=STATION_NAME, latitude=STATION_LATITUDE, longitude=STATION_LONGITUDE)

#: Default replay clock (owned by :mod:`airquality_assets.clock`).
DEFAULT_NOW = REPLAY_DEFAULT_NOW

#: How far (degrees of latitude and of longitude) a requested point may be from the station
#: and still count as "Beijing": covers the city (e.g. the 39.9042, 116.4074 city centre).
LOCATION_TOLERANCE_DEG = 0.5

VC_FORECAST_DAYS = 15

_HOUR = 3600
_DAY = 86400
_OBS_TAIL = b'"source":"obs"}'
_FCST_TAIL = b'"source":"fcst"}'
#: Hour fields a stand-in forecast changes, and the decimals VC prints them with.
_FORECAST_DECIMALS: dict[str, int] = {
    "temp": 1,
    "dew": 1,
    "humidity": 2,
    "pressure": 1,
    "windspeed": 1,
    "winddir": 1,
}
_FORECAST_COLUMNS: tuple[str, ...] = tuple(_FORECAST_DECIMALS)


# --------------------------------------------------------------------------- data loading


@dataclass(frozen=True)
class _AirPollutionData:
    epochs: np.ndarray  # int64, sorted, one per record
    records: tuple[bytes, ...]  # each ``list`` element as compact JSON


@dataclass(frozen=True)
class _WeatherData:
    epochs: np.ndarray  # int64, sorted, one per hour object
    records: tuple[bytes, ...]  # each hour object as compact JSON (``"source":"obs"``)
    hours: tuple[dict[str, Any], ...]  # the same hour objects, decoded (forecasts copy them)
    temp: np.ndarray
    dew: np.ndarray
    humidity: np.ndarray
    pressure: np.ndarray
    windspeed: np.ndarray
    winddir: np.ndarray
    rain: np.ndarray  # bool
    snow: np.ndarray  # bool

    def arrays(self, i: int, j: int) -> dict[str, np.ndarray]:
        """The numeric columns of hours ``i:j`` (the ones the error model perturbs)."""
        return {name: getattr(self, name)[i:j] for name in _FORECAST_COLUMNS}


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _read_json_gz(data_dir: str | None, name: str) -> Any:
    if data_dir is None:
        raw = resources.files("airquality_assets.data").joinpath("replay", name).read_bytes()
    else:
        raw = (Path(data_dir) / name).read_bytes()
    return json.loads(gzip.decompress(raw))


def _check_sorted(epochs: np.ndarray, name: str) -> None:
    if epochs.size and not (np.diff(epochs) > 0).all():
        raise ValueError(f"{name}: records must be strictly increasing in time")


@lru_cache(maxsize=8)
def _load_air_pollution(data_dir: str | None) -> _AirPollutionData:
    """Parse once per process (per data dir); records are pre-serialised so pulls just join."""
    doc = _read_json_gz(data_dir, OWM_FILE_NAME)
    items = doc["list"]
    epochs = np.fromiter((item["dt"] for item in items), dtype=np.int64, count=len(items))
    _check_sorted(epochs, OWM_FILE_NAME)
    return _AirPollutionData(epochs=epochs, records=tuple(_compact(item) for item in items))


def _float_array(hours: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if h.get(key) is None else h[key] for h in hours], dtype=float)


@lru_cache(maxsize=8)
def _load_weather(data_dir: str | None) -> _WeatherData:
    """Parse once per process (per data dir), keeping numeric columns for day aggregates."""
    hours = _read_json_gz(data_dir, VC_FILE_NAME)["hours"]
    epochs = np.fromiter((h["datetimeEpoch"] for h in hours), dtype=np.int64, count=len(hours))
    _check_sorted(epochs, VC_FILE_NAME)
    records = tuple(_compact(h) for h in hours)
    if not all(r.endswith(_OBS_TAIL) for r in records):
        raise ValueError(f"{VC_FILE_NAME}: every hour must end with source 'obs'")
    return _WeatherData(
        epochs=epochs,
        records=records,
        hours=tuple(hours),
        temp=_float_array(hours, "temp"),
        dew=_float_array(hours, "dew"),
        humidity=_float_array(hours, "humidity"),
        pressure=_float_array(hours, "pressure"),
        windspeed=_float_array(hours, "windspeed"),
        winddir=_float_array(hours, "winddir"),
        rain=np.array(["rain" in (h.get("preciptype") or ()) for h in hours], dtype=bool),
        snow=np.array(["snow" in (h.get("preciptype") or ()) for h in hours], dtype=bool),
    )


# --------------------------------------------------------------------------- shared behaviour


def _to_utc(value: datetime | str, what: str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got {value!r}")
    return moment.astimezone(UTC)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: float) -> str:
    """A JSON number as the APIs print coordinates: at most 4 decimals."""
    return json.dumps(round(float(value), 4))


class _ReplayBase:
    """Clock, data location and station check shared by both replay sources."""

    source_name: str = "replay"

    def __init__(
        self,
        now: datetime | str | None = None,
        *,
        data_dir: str | Path | None = None,
        station_aliases: tuple[str, ...] = (),
    ) -> None:
        """Create a replay source.

        ``now`` is the replay clock (tz-aware; ISO strings accepted for config files).
        ``data_dir`` overrides the packaged files (tests convert a small CSV into a temp dir).
        ``station_aliases`` are location *names* to serve from the station whatever their
        coordinates: an explicit opt-in, never the default, so a mis-typed coordinate fails.
        """
        self._now = _to_utc(now if now is not None else DEFAULT_NOW, "now")
        self._data_dir = None if data_dir is None else str(data_dir)
        self._aliases = frozenset(station_aliases)

    def now(self) -> datetime:
        """The replay instant (UTC); nothing after it is ever served as an observation."""
        return self._now

    def _now_epoch(self) -> int:
        return math.floor(self._now.timestamp())

    def _check_location(self, location: Location, time_range: str) -> None:
        if not (-90 <= location.latitude <= 90):
            raise SourceError(self.source_name, location.name, time_range, "wrong latitude", 400)
        if not (-180 <= location.longitude <= 180):
            raise SourceError(self.source_name, location.name, time_range, "wrong longitude", 400)
        if location.name in self._aliases:
            return
        near = (
            abs(location.latitude - STATION_LATITUDE) <= LOCATION_TOLERANCE_DEG
            and abs(location.longitude - STATION_LONGITUDE) <= LOCATION_TOLERANCE_DEG
        )
        if not near:
            raise SourceError(
                self.source_name,
                location.name,
                time_range,
                f"replay data covers only the Beijing US Embassy station "
                f"({STATION_LATITUDE}, {STATION_LONGITUDE}); "
                f"({location.latitude}, {location.longitude}) is further than "
                f"{LOCATION_TOLERANCE_DEG} degrees from it",
                404,
            )


# --------------------------------------------------------------------------- air pollution


class ReplayAirPollutionSource(_ReplayBase):
    """:class:`AirPollutionSource` serving the measured PM2.5 in OWM's exact JSON shape.

    Records carry only ``pm2_5`` (the other seven components were not measured) and a
    ``main.aqi`` derived from it; hours with no measurement are absent from ``list``.
    """

    source_name = "replay-openweathermap"

    def _data(self) -> _AirPollutionData:
        return _load_air_pollution(self._data_dir)

    def _respond(
        self, location: Location, endpoint: str, query: str, lo: int, hi: int, began: float
    ) -> RawResponse:
        """Body for records with ``lo <= dt <= hi`` (empty if ``lo > hi``)."""
        data = self._data()
        i = int(np.searchsorted(data.epochs, lo, side="left"))
        j = max(i, int(np.searchsorted(data.epochs, hi, side="right")))
        lon, lat = _num(location.longitude), _num(location.latitude)
        body = b"".join(
            (
                f'{{"coord":{{"lon":{lon},"lat":{lat}}},"list":['.encode(),
                b",".join(data.records[i:j]),
                b"]}",
            )
        )
        url = f"replay://openweathermap/{endpoint}?lat={lat}&lon={lon}{query}"
        return RawResponse(
            body=body, record_count=j - i, duration_s=time.perf_counter() - began, url=url
        )

    def history(self, location: Location, start: datetime, end: datetime) -> RawResponse:
        """Records with ``start <= dt <= end`` and ``dt <= now`` (both bounds inclusive)."""
        began = time.perf_counter()
        start_utc, end_utc = _to_utc(start, "start"), _to_utc(end, "end")
        lo, hi = math.ceil(start_utc.timestamp()), math.floor(end_utc.timestamp())
        time_range = f"{_iso(lo)}..{_iso(hi)}"
        self._check_location(location, time_range)
        if hi < lo:
            raise SourceError(self.source_name, location.name, time_range, "end before start", 400)
        return self._respond(
            location, "history", f"&start={lo}&end={hi}", lo, min(hi, self._now_epoch()), began
        )

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """Not available: the bundled data holds measurements only, and a stand-in made
        from later measurements would be a perfect forecast posing as OWM's."""
        self._check_location(location, f"forecast issued {_iso(_issue_epoch(issued_at))}")
        raise NotAvailableError(
            self.source_name,
            "the air-pollution forecast",
            "not available in replay (the bundled data has measurements only; no stand-in is made)",
        )


# --------------------------------------------------------------------------- weather


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.mean()), 1) if finite.size else None


def _max(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.max()), 1) if finite.size else None


def _min(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(finite.min()), 1) if finite.size else None


def _as_day(value: date, what: str) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"{what} must be a date (a UTC day), not a datetime: {value!r}")
    return value


class ReplayWeatherSource(_ReplayBase):
    """:class:`WeatherSource` serving the station's hourly weather in VC's timeline shape.

    Days are UTC days (the live client sends ``timezone=Z``). Day objects carry only the
    aggregates that can be computed honestly from the hours served: ``tempmax``/``tempmin``,
    means of ``temp``/``dew``/``humidity``/``pressure``, ``windspeed`` as the hourly maximum
    (VC's own convention) and the union of the hours' ``preciptype``. ``error_model`` makes
    the stand-in forecasts (default: :class:`ForecastErrorModel` at scale 1, seed 0).
    """

    source_name = "replay-visualcrossing"

    def __init__(
        self,
        now: datetime | str | None = None,
        *,
        data_dir: str | Path | None = None,
        station_aliases: tuple[str, ...] = (),
        error_model: ForecastErrorModel | None = None,
    ) -> None:
        super().__init__(now, data_dir=data_dir, station_aliases=station_aliases)
        self._error_model = error_model or ForecastErrorModel()

    def _data(self) -> _WeatherData:
        return _load_weather(self._data_dir)

    def timeline(self, location: Location, start: date, end: date) -> RawResponse:
        """Hourly weather for the UTC days ``start`` .. ``end`` inclusive (see module doc)."""
        began = time.perf_counter()
        first, last = _as_day(start, "start"), _as_day(end, "end")
        time_range = f"{first.isoformat()}..{last.isoformat()}"
        self._check_location(location, time_range)
        if last < first:
            raise SourceError(
                self.source_name,
                location.name,
                time_range,
                "Bad API Request:To date cannot be before the from date",
                400,
            )
        data = self._data()
        epoch_day0 = date(1970, 1, 1)
        lo = (first - epoch_day0).days * _DAY
        now_epoch = self._now_epoch()
        horizon = (now_epoch // _DAY + VC_FORECAST_DAYS) * _DAY  # exclusive
        hi = min((last - epoch_day0).days * _DAY + _DAY, horizon)  # exclusive
        i = int(np.searchsorted(data.epochs, lo, side="left"))
        j = max(i, int(np.searchsorted(data.epochs, hi, side="left")))
        obs_end = int(np.searchsorted(data.epochs, now_epoch, side="right"))

        day_bodies = _day_bodies(data, i, j, obs_end, data.arrays(i, j), None)
        n_obs = max(0, min(j, obs_end) - i)
        query_cost = max(1, n_obs + (1 if j - i > n_obs else 0))  # VC bills a forecast as 1
        head, address = _timeline_head(location, query_cost)
        body = b"".join((head, b",".join(day_bodies), b"]}"))
        url = (
            f"replay://visualcrossing/timeline/{address}/{first.isoformat()}/{last.isoformat()}"
            "?unitGroup=metric&include=days,hours&timezone=Z"
        )
        return RawResponse(
            body=body, record_count=j - i, duration_s=time.perf_counter() - began, url=url
        )

    def forecast(self, location: Location, issued_at: datetime) -> RawResponse:
        """The stand-in forecast issued at ``issued_at`` (floored to the hour), for any issue
        the clock has reached: the UTC days from the issue hour's day to the day
        :data:`~airquality_assets.columns.FORECAST_HOURS` hours later, in the timeline
        shape (as the live client asks VC for them). Hours up to the issue hour are the
        observations (``"source":"obs"``), later ones the observations plus the error model
        (``"source":"fcst"``); a ``description`` says it is a stand-in. Deterministic per
        (location name, issue, error model): a re-pull is byte-identical."""
        began = time.perf_counter()
        issue = _issue_epoch(issued_at)
        time_range = f"forecast issued {_iso(issue)}"
        self._check_location(location, time_range)
        if issue > self._now_epoch():
            raise SourceError(
                self.source_name,
                location.name,
                time_range,
                f"not issued yet: the replay clock is at {_iso(self._now_epoch())}",
                400,
            )
        data = self._data()
        lo = issue // _DAY * _DAY
        hi = (issue + FORECAST_HOURS * _HOUR) // _DAY * _DAY + _DAY  # exclusive
        i = int(np.searchsorted(data.epochs, lo, side="left"))
        j = max(i, int(np.searchsorted(data.epochs, hi, side="left")))
        obs_end = max(i, min(j, int(np.searchsorted(data.epochs, issue, side="right"))))
        arrays = data.arrays(i, j)
        forecast: dict[str, np.ndarray] = {}
        if j > obs_end:
            leads = (data.epochs[obs_end:j] - issue) // _HOUR
            model = self._error_model
            errors = model.errors_at(location.name, np.array([issue]), int(leads.max()))
            picked = {name: e[0, leads - 1] for name, e in errors.items()}
            observed = {name: values[obs_end - i :] for name, values in arrays.items()}
            values = model.apply(observed, picked)
            for name in arrays:  # rounded as VC prints them; the day aggregates see these
                forecast[name] = np.round(values[name], _FORECAST_DECIMALS[name])
                arrays[name] = np.concatenate((arrays[name][: obs_end - i], forecast[name]))
        day_bodies = _day_bodies(data, i, j, obs_end, arrays, forecast)
        head, address = _timeline_head(location, 1, _stand_in_description(self._error_model))
        body = b"".join((head, b",".join(day_bodies), b"]}"))
        first = datetime.fromtimestamp(lo, UTC).date().isoformat()
        last = datetime.fromtimestamp(hi - _DAY, UTC).date().isoformat()
        model = self._error_model
        url = (
            f"replay://visualcrossing/timeline/{address}/{first}/{last}"
            f"?unitGroup=metric&include=days,hours&timezone=Z&issued={_iso(issue)}"
            f"&error_scale={model.scale:g}&error_seed={model.seed}"
        )
        return RawResponse(
            body=body, record_count=j - i, duration_s=time.perf_counter() - began, url=url
        )


def _issue_epoch(issued_at: datetime | str) -> int:
    """An issue time as epoch seconds, floored to its UTC hour."""
    return math.floor(_to_utc(issued_at, "issued_at").timestamp()) // _HOUR * _HOUR


def _stand_in_description(model: ForecastErrorModel) -> str:
    return (
        "Replay stand-in forecast: the bundled observations plus a seeded error model "
        f"(scale {model.scale:g}, seed {model.seed}); not a forecast anyone issued."
    )


def _timeline_head(
    location: Location, query_cost: int, description: str | None = None
) -> tuple[bytes, str]:
    """The body up to the ``days`` array's opening bracket (VC's key order), and the address."""
    lat, lon = _num(location.latitude), _num(location.longitude)
    address = f"{lat},{lon}"
    described = f'"description":{json.dumps(description)},' if description is not None else ""
    head = (
        f'{{"queryCost":{query_cost},"latitude":{lat},"longitude":{lon},'
        f'"resolvedAddress":{json.dumps(address)},"address":{json.dumps(address)},'
        f'"timezone":"Z","tzoffset":0.0,{described}"days":['
    )
    return head.encode(), address


def _day_bodies(
    data: _WeatherData,
    i: int,
    j: int,
    obs_end: int,
    arrays: dict[str, np.ndarray],
    forecast: dict[str, np.ndarray] | None,
) -> list[bytes]:
    """Day objects for hours ``i:j``: hours from ``obs_end`` on are ``"source":"fcst"``,
    with their values from ``forecast`` (aligned with them) when given, else as observed.
    ``arrays`` are the values the day aggregates are computed from (aligned with ``i:j``)."""
    bodies: list[bytes] = []
    pos = i
    while pos < j:
        day_start = int(data.epochs[pos]) // _DAY * _DAY
        stop = max(pos + 1, int(np.searchsorted(data.epochs[:j], day_start + _DAY, "left")))
        first_fcst = min(stop, max(pos, obs_end))
        hours = list(data.records[pos:first_fcst])
        if first_fcst < stop and forecast is None:
            hours.extend(r[: -len(_OBS_TAIL)] + _FCST_TAIL for r in data.records[first_fcst:stop])
        elif first_fcst < stop:
            hours.append(_forecast_hours(data, first_fcst, stop, forecast, first_fcst - obs_end))
        n_obs = max(0, min(stop, obs_end) - pos)
        day = {name: values[pos - i : stop - i] for name, values in arrays.items()}
        bodies.append(_day_body(data, pos, stop, n_obs, day_start, day, hours))
        pos = stop
    return bodies


def _day_body(
    data: _WeatherData,
    i: int,
    j: int,
    n_obs: int,
    day_start: int,
    values: dict[str, np.ndarray],
    hours: list[bytes],
) -> bytes:
    """One day object: aggregates of ``values`` (the day's hours as served), then its hours."""
    source = "obs" if n_obs == j - i else ("fcst" if n_obs == 0 else "comb")
    kinds = [k for k, flags in (("rain", data.rain), ("snow", data.snow)) if flags[i:j].any()]
    day = {
        "datetime": datetime.fromtimestamp(day_start, tz=UTC).strftime("%Y-%m-%d"),
        "datetimeEpoch": day_start,
        "tempmax": _max(values["temp"]),
        "tempmin": _min(values["temp"]),
        "temp": _mean(values["temp"]),
        "dew": _mean(values["dew"]),
        "humidity": _mean(values["humidity"]),
        "preciptype": kinds or None,
        "windspeed": _max(values["windspeed"]),
        "pressure": _mean(values["pressure"]),
        "stations": None,
        "source": source,
    }
    return b"".join((_compact(day)[:-1], b',"hours":[', b",".join(hours), b"]}"))


def _forecast_hours(
    data: _WeatherData, i: int, j: int, forecast: dict[str, np.ndarray], offset: int
) -> bytes:
    """Hours ``i:j`` as forecast hour objects, comma-joined: the observed objects with the
    forecast's (rounded) values from index ``offset`` on, ``"source":"fcst"``."""
    n = j - i
    values = {name: v[offset : offset + n].tolist() for name, v in forecast.items()}
    hours = []
    for k in range(n):
        out = dict(data.hours[i + k])
        for name, column in values.items():
            value = column[k]
            if value == value:  # not NaN
                out[name] = value
            elif name in out:
                out[name] = None
        out["stations"] = None
        out["source"] = "fcst"
        hours.append(out)
    return _compact(hours)[1:-1]


def replay_locations(count: int) -> list[Location]:
    """``count`` location names all served from the bundled station (a load-test mode).

    Deterministic: ``beijing`` alone for 1, else ``beijing-001`` .. ``beijing-<count>``, each
    at the station's coordinates, so every name is a distinct partition with identical,
    real data: the cost of N locations, measured without N data sets.
    """
    if count < 1:
        raise ValueError(f"replay location count must be >= 1, got {count}")
    if count == 1:
        return [BEIJING]
    width = max(3, len(str(count)))
    return [
        Location(f"{BEIJING.name}-{i:0{width}d}", BEIJING.latitude, BEIJING.longitude)
        for i in range(1, count + 1)
    ]


__all__ = [
    "BEIJING",
    "DEFAULT_NOW",
    "LOCATION_TOLERANCE_DEG",
    "ReplayAirPollutionSource",
    "ReplayWeatherSource",
    "replay_locations",
]
