"""Parse raw OpenWeatherMap Air Pollution and Visual Crossing Timeline bodies into hourly frames.

Pure functions (no Dagster, no I/O): the raw assets keep API bodies unchanged and these turn
them into the typed per-hour frames validated by :mod:`airquality_assets.schemas`.

Decisions, all documented here once:

* **Time key.** OWM rows are keyed by ``list[].dt`` and Visual Crossing rows by
  ``hours[].datetimeEpoch`` (UTC seconds). Visual Crossing's local ``datetime`` strings repeat on
  a fall-back day (25 hours) and skip an hour on a spring-forward day (23 hours), so they are
  never used.
* **Whole hours: floor, not reject.** A timestamp that is not on a whole UTC hour is floored to
  it and counted in ``attrs["off_hour_floored"]``. Visual Crossing reports hours in *local*
  time, so locations with a fractional UTC offset (India +5:30, Nepal +5:45, Adelaide +9:30)
  get half-hour UTC epochs for every row; rejecting them would throw away their whole weather
  series, while flooring labels each observation with the UTC hour in which it was taken (a
  shift of under an hour, the same convention OWM uses). If flooring makes two rows collide,
  the later one wins like any other duplicate.
* **Duplicates.** Rows repeating a (location, time) are dropped keeping the *last* occurrence
  (in body order, then list order), so a re-fetched day passed after the original overrides
  it. The count is in ``attrs["duplicates_dropped"]``.
* **Missing values.** A missing key and JSON ``null`` both mean "unknown" -> NaN, never 0.
  A row without a time key cannot be placed; it is skipped and counted in
  ``attrs["rows_without_time"]``.
* **Precipitation type.** ``is_rain`` = 1.0 when ``preciptype`` contains ``"rain"`` or
  ``"freezingrain"``; ``is_snow`` = 1.0 when it contains ``"snow"`` or ``"ice"`` (ice pellets
  and sleet are frozen precipitation, which matters to air quality like snow does: wet
  deposition and a shallow cold boundary layer). Both flags can be 1 (mixed precipitation).
  ``null`` is VC's "no precipitation" and gives 0.0, unless the hour's ``precip`` says
  otherwise: ``precip`` null means nothing is known about precipitation that hour (a station
  that never reports it sends null in every hour), ``precip`` above 0 means something fell
  of an unnamed type; both give NaN (unknown, never "dry"). An *absent* ``preciptype`` key
  means the source does not report the type at all and gives NaN too (the clients never ask
  for ``options=nonulls``); an absent ``precip`` key with a type reported (the replay source:
  the station counted rain and snow hours, not amounts) leaves the type to speak. Matching
  is case-insensitive; unknown types set neither flag.
* **Values are stored as returned.** Impossible values (a negative concentration) are *not*
  repaired here; :func:`airquality_assets.transforms.cleaning.clean_observations` removes and
  counts them, so the raw frames stay a faithful record of what the API said.

Result statistics travel in ``DataFrame.attrs`` (keys in :data:`PARSE_STAT_KEYS`), so the
functions return plain frames that Dagster IO managers store without a wrapper. ``attrs`` are
not guaranteed to survive later pandas operations; read them straight after parsing.

Speed: bodies are decoded once with :mod:`json`, and every column is built with one list
comprehension + one ``numpy`` conversion over all rows of all bodies; there is no per-row
pandas work. :func:`parse_many` parses many bodies (a year of them: one per month, or 365
small daily ones in benchmarks/parse_merge.py) in a single frame build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from airquality_assets.columns import (
    AQI,
    FORECAST_HOURS,
    ISSUE_TIME,
    LEAD,
    LOCATION,
    POLLUTANTS,
    TIME,
    WEATHER,
)

Body = bytes | bytearray | str | Mapping[str, Any]
Kind = Literal["air", "weather"]

#: Keys of ``DataFrame.attrs`` set by every parser.
PARSE_STAT_KEYS: tuple[str, ...] = ("duplicates_dropped", "off_hour_floored", "rows_without_time")

#: Columns of the air-quality frame, in order.
AIR_COLUMNS: tuple[str, ...] = (LOCATION, TIME, *POLLUTANTS, AQI)
#: Columns of the weather frame, in order.
WEATHER_FRAME_COLUMNS: tuple[str, ...] = (LOCATION, TIME, *WEATHER)
#: Columns of the weather-forecast frame, in order.
FORECAST_FRAME_COLUMNS: tuple[str, ...] = (LOCATION, ISSUE_TIME, TIME, LEAD, *WEATHER)

#: Weather columns read directly from a numeric key of the same name in each hour object.
_WEATHER_NUMERIC: tuple[str, ...] = tuple(c for c in WEATHER if c not in ("is_rain", "is_snow"))
_RAIN_TYPES = frozenset({"rain", "freezingrain"})
_SNOW_TYPES = frozenset({"snow", "ice"})

_HOUR_S = 3600
# Default for absent keys: numpy converts a float NaN much faster than a None.
_NAN = float("nan")


def _decode(body: Body) -> Mapping[str, Any]:
    """Return the decoded JSON object; bodies arrive as stored bytes, text or already-parsed."""
    if isinstance(body, Mapping):
        return body
    doc = json.loads(body)
    if not isinstance(doc, Mapping):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _floats(values: list[Any]) -> np.ndarray:
    """Convert JSON numbers (int, float, None) to float64 with None -> NaN.

    The fast path is one numpy call; the slow path only runs when a body carries something
    that is not a number (e.g. a string), which then becomes NaN rather than crashing a day.
    """
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(
            [
                float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                for v in values
            ],
            dtype=np.float64,
        )


def _epochs(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Return (valid-row mask, int64 epoch seconds of the valid rows)."""
    arr = _floats(values)
    valid = np.isfinite(arr)
    return valid, arr[valid].astype(np.int64)


def _finish(
    columns: dict[str, np.ndarray],
    seconds: np.ndarray,
    location: str,
    order: Sequence[str],
    rows_without_time: int,
) -> pd.DataFrame:
    """Floor to the hour, drop duplicate hours keeping the last, sort, build the frame once."""
    floored = seconds - np.mod(seconds, _HOUR_S)
    off_hour = int(np.count_nonzero(floored != seconds))
    # Stable sort keeps input order within equal times, so the last of each run is the last
    # occurrence in the input.
    idx = np.argsort(floored, kind="stable")
    sorted_s = floored[idx]
    keep = np.ones(len(idx), dtype=bool)
    if len(idx) > 1:
        keep[:-1] = sorted_s[1:] != sorted_s[:-1]
    idx = idx[keep]
    data: dict[str, Any] = {
        LOCATION: _repeat_string(location, len(idx)),
        TIME: pd.DatetimeIndex(
            floored[idx].astype("datetime64[s]").astype("datetime64[ns]")
        ).tz_localize("UTC"),
    }
    for name in order:
        if name in (LOCATION, TIME):
            continue
        values = columns[name][idx]
        data[name] = values if name != AQI else _to_int64(values)
    frame = pd.DataFrame(data, columns=list(order))
    frame.attrs.update(
        duplicates_dropped=int(len(keep) - np.count_nonzero(keep)),
        off_hour_floored=off_hour,
        rows_without_time=int(rows_without_time),
    )
    return frame


def _repeat_string(value: str, n: int) -> pd.arrays.StringArray:
    """``n`` copies of ``value`` as a pandas string array (via a categorical: no per-item check)."""
    codes = np.zeros(n, dtype=np.int8)
    return pd.Categorical.from_codes(codes, categories=[value]).astype("string")


def _to_int64(values: np.ndarray) -> pd.arrays.IntegerArray:
    """AQI is an integer index that can be missing: nullable Int64 (``4.0`` -> 4)."""
    mask = ~np.isfinite(values)
    ints = np.where(mask, 0, np.rint(values)).astype(np.int64)
    return pd.arrays.IntegerArray(ints, mask)


def _air_rows(docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for doc in docs:
        items = doc.get("list")
        if items is None:
            raise ValueError(
                "not an OWM Air Pollution body: no 'list' key "
                f"(keys: {sorted(doc)[:8]}); error bodies must be handled by the source"
            )
        rows.extend(items)
    return rows


def _air_frame(rows: list[Mapping[str, Any]], location: str) -> pd.DataFrame:
    valid, seconds = _epochs([r.get("dt") for r in rows])
    if not valid.all():
        rows = [r for r, ok in zip(rows, valid, strict=True) if ok]
    comps = [r.get("components") or {} for r in rows]
    mains = [r.get("main") or {} for r in rows]
    columns = {name: _floats([c.get(name, _NAN) for c in comps]) for name in POLLUTANTS}
    columns[AQI] = _floats([m.get("aqi", _NAN) for m in mains])
    return _finish(columns, seconds, location, AIR_COLUMNS, int((~valid).sum()))


def _weather_rows(docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    for doc in docs:
        days = doc.get("days")
        if days is None:
            raise ValueError(
                "not a Visual Crossing Timeline body: no 'days' key "
                f"(keys: {sorted(doc)[:8]}); error bodies must be handled by the source"
            )
        for day in days:
            rows.extend(day.get("hours") or ())
    return rows


_ABSENT = object()


def _precip_flags(types: list[Any], amounts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(is_rain, is_snow) from ``preciptype`` arrays: null -> 0.0 (VC: no precipitation)
    only where the hour's ``precip`` does not contradict it; absent key -> NaN (not
    reported: unknown). ``precip`` null (nothing known about precipitation in that hour: a
    station that never reports it sends null in every hour) or above 0 (it fell, of an
    unnamed type) makes a null type unknown too, never "dry"."""
    unknown = np.array(
        [
            t is _ABSENT or (t is None and (a is None or (_is_number(a) and a > 0)))
            for t, a in zip(types, amounts, strict=True)
        ],
        dtype=bool,
    )
    rain = np.where(unknown, np.nan, 0.0)
    snow = rain.copy()
    # Most hours have no precipitation (null), so only the few arrays are looked at.
    for i, pt in [(i, pt) for i, pt in enumerate(types) if pt and pt is not _ABSENT]:
        if isinstance(pt, list | tuple):
            kinds = {str(t).lower() for t in pt}
            rain[i] = not kinds.isdisjoint(_RAIN_TYPES)
            snow[i] = not kinds.isdisjoint(_SNOW_TYPES)
    return rain, snow


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _weather_columns(rows: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Every weather column of VC hour objects, one numpy conversion each."""
    columns = {name: _floats([r.get(name, _NAN) for r in rows]) for name in _WEATHER_NUMERIC}
    columns["is_rain"], columns["is_snow"] = _precip_flags(
        [r.get("preciptype", _ABSENT) for r in rows], [r.get("precip", _ABSENT) for r in rows]
    )
    return columns


def _weather_frame(rows: list[Mapping[str, Any]], location: str) -> pd.DataFrame:
    valid, seconds = _epochs([r.get("datetimeEpoch") for r in rows])
    if not valid.all():
        rows = [r for r, ok in zip(rows, valid, strict=True) if ok]
    columns = _weather_columns(rows)
    return _finish(columns, seconds, location, WEATHER_FRAME_COLUMNS, int((~valid).sum()))


def parse_air_pollution(body: Body, location: str) -> pd.DataFrame:
    """One OWM Air Pollution body (history or forecast) -> hourly air-quality frame.

    Columns :data:`AIR_COLUMNS`: ``location`` (string), ``time`` (datetime64[ns, UTC], from
    ``dt``), the 8 pollutants as float64 (a missing or null component is NaN, never 0) and
    ``aqi`` as nullable Int64. ``coord`` is ignored, so both its object and array forms work.
    An empty ``list`` gives an empty frame with the same columns and dtypes. Parse statistics
    are in ``attrs`` (see :data:`PARSE_STAT_KEYS`).
    """
    return _air_frame(_air_rows([_decode(body)]), location)


def parse_weather(body: Body, location: str) -> pd.DataFrame:
    """One Visual Crossing Timeline body -> hourly weather frame (rows from ``days[].hours[]``).

    Columns :data:`WEATHER_FRAME_COLUMNS`: ``location``, ``time`` (from ``datetimeEpoch``), and
    every weather column as float64 (absent key or null -> NaN), plus ``is_rain``/``is_snow``
    derived from ``preciptype`` (see module docstring). Days without ``hours`` (statistical
    forecast days) contribute no rows. ``currentConditions`` is ignored: it is not on the hour.
    """
    return _weather_frame(_weather_rows([_decode(body)]), location)


def body_kind(body: Body) -> Kind:
    """``"air"`` for an OWM body (has ``list``), ``"weather"`` for Visual Crossing (``days``)."""
    doc = _decode(body)
    if "list" in doc:
        return "air"
    if "days" in doc:
        return "weather"
    raise ValueError(f"unrecognised body: neither 'list' nor 'days' in keys {sorted(doc)[:8]}")


def parse_many(bodies: Iterable[Body], location: str, kind: Kind | None = None) -> pd.DataFrame:
    """Parse many bodies of one kind for one location into a single frame, built once.

    Rows of all bodies are pooled before any column is built, which is much faster than
    parsing each body and ``pd.concat``-ing 365 small frames. Duplicated hours across bodies
    keep the one from the *later* body, so pass bodies in fetch order (a re-fetched day last).
    ``kind`` is detected from the first body when omitted; mixing kinds raises ``ValueError``,
    and so does an empty ``bodies`` without ``kind`` (the columns would be unknown).
    """
    docs = [_decode(b) for b in bodies]
    if kind is None:
        if not docs:
            raise ValueError("parse_many got no bodies and no kind; pass kind='air'|'weather'")
        kind = body_kind(docs[0])
    if kind == "air":
        return _air_frame(_air_rows(docs), location)
    if kind == "weather":
        return _weather_frame(_weather_rows(docs), location)
    raise ValueError(f"kind must be 'air' or 'weather', got {kind!r}")


def parse_weather_forecasts(
    bodies: Iterable[tuple[Any, Body]], location: str, max_lead: int = FORECAST_HOURS
) -> pd.DataFrame:
    """Stored forecast bodies (Visual Crossing timeline shape), each with its issue time,
    -> one long frame: a row per (issue, target hour) with lead 1..``max_lead``.

    Columns :data:`FORECAST_FRAME_COLUMNS`: ``location``, ``issue_time`` and ``time``
    (datetime64[ns, UTC]; ``time`` from ``datetimeEpoch`` like :func:`parse_weather`, so
    local times and DST never matter), ``lead`` (int64 hours, ``(time - issue_time) / 1 h``)
    and the weather columns with the names, units and missing-value rules of
    ``weather_hourly``. Hours at or before the issue hour (the rest of the issue's first
    day, VC's observations) and after ``max_lead`` are left out; a repeated hour within an
    issue keeps the last, as :func:`parse_weather` does. Sorted by issue, then time.
    Issue times are tz-aware datetimes or pandas timestamps on whole UTC hours.
    """
    rows: list[Mapping[str, Any]] = []
    issue_of_row: list[int] = []
    for issued_at, body in bodies:
        issue = pd.Timestamp(issued_at)
        if issue.tzinfo is None:
            raise ValueError(f"issue time must be timezone-aware (UTC), got {issued_at!r}")
        issue_s = int(issue.tz_convert("UTC").value // 10**9)
        if issue_s % _HOUR_S:
            raise ValueError(f"issue time must be on a whole UTC hour, got {issued_at!r}")
        body_rows = _weather_rows([_decode(body)])
        rows.extend(body_rows)
        issue_of_row.extend([issue_s] * len(body_rows))
    valid, seconds = _epochs([r.get("datetimeEpoch") for r in rows])
    issues = np.asarray(issue_of_row, dtype=np.int64)[valid]
    floored = seconds - np.mod(seconds, _HOUR_S)
    lead = (floored - issues) // _HOUR_S
    keep = (lead >= 1) & (lead <= max_lead)
    if not valid.all():
        rows = [r for r, ok in zip(rows, valid, strict=True) if ok]
    kept_rows = [r for r, ok in zip(rows, keep, strict=True) if ok]
    issues, floored, lead = issues[keep], floored[keep], lead[keep]
    columns = _weather_columns(kept_rows)
    # sort by (issue, time), stable, so the last of a repeated hour is the last in its body
    idx = np.lexsort((floored, issues))
    last = np.ones(len(idx), dtype=bool)
    if len(idx) > 1:
        same = (issues[idx][1:] == issues[idx][:-1]) & (floored[idx][1:] == floored[idx][:-1])
        last[:-1] = ~same
    idx = idx[last]

    def utc(values: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(
            values.astype("datetime64[s]").astype("datetime64[ns]")
        ).tz_localize("UTC")

    data: dict[str, Any] = {
        LOCATION: _repeat_string(location, len(idx)),
        ISSUE_TIME: utc(issues[idx]),
        TIME: utc(floored[idx]),
        LEAD: lead[idx].astype(np.int64),
    }
    data.update({name: columns[name][idx] for name in WEATHER})
    frame = pd.DataFrame(data, columns=list(FORECAST_FRAME_COLUMNS))
    frame.attrs.update(
        duplicates_dropped=int(len(last) - np.count_nonzero(last)),
        rows_without_time=int((~valid).sum()),
        off_hour_floored=int(np.count_nonzero(floored != seconds[keep])),
    )
    return frame
