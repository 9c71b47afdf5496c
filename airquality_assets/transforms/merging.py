"""Join the air-quality and weather frames onto a full hourly grid per location.

Pure functions (no Dagster). The output is the *raw* grid: every hour from a location's first
to its last observation (of either source) is a row, hours nobody reported are NaN. Cleaning
(outliers, gap interpolation) is a separate step, :mod:`airquality_assets.transforms.cleaning`,
so the two can be tested and reasoned about independently.

Implementation: rows are placed on the grid by integer position ``(t - start) // 1h`` into
preallocated numpy blocks, one per location; that is an outer join plus a reindex without
building an index, sorting or hashing, so a year of one location takes about a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from airquality_assets.columns import AQI, LOCATION, POLLUTANTS, TIME, WEATHER

HOUR_NS = 3_600_000_000_000

#: Value columns of the merged frame, in order.
AIR_VALUE_COLUMNS: tuple[str, ...] = (*POLLUTANTS, AQI)
VALUE_COLUMNS: tuple[str, ...] = (*POLLUTANTS, AQI, *WEATHER)
#: Columns of the merged (and cleaned) frame, in order, before any audit columns.
OBSERVATION_COLUMNS: tuple[str, ...] = (LOCATION, TIME, *VALUE_COLUMNS)


def time_ns(frame: pd.DataFrame) -> np.ndarray:
    """Epoch nanoseconds of ``frame[TIME]``; the column must be tz-aware (any zone, read as UTC).

    Naive timestamps are refused rather than guessed: the contract says UTC tz-aware, and a
    silently localised local time would shift every row by the UTC offset.
    """
    col = frame[TIME]
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        raise TypeError(f"column {TIME!r} must be tz-aware datetime64 (UTC), got {col.dtype}")
    return col.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8


def _value_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """(rows, columns) float64 matrix; a column the frame lacks is all NaN (unknown)."""
    out = np.full((len(frame), len(columns)), np.nan)
    for j, name in enumerate(columns):
        if name in frame.columns:
            out[:, j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _last_positions(pos: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated grid positions keeping the last row: later data (a re-fetch) wins.

    numpy does not promise which of several writes to one index sticks, so duplicates are
    resolved explicitly; the check is one ``np.unique`` only when a repeat exists.
    """
    if pos.size < 2 or np.all(np.diff(pos) > 0):
        return pos, rows
    rev_pos = pos[::-1]
    uniq, first_in_reversed = np.unique(rev_pos, return_index=True)
    return uniq, rows[::-1][first_in_reversed]


def int64_array(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Float values (NaN = missing) -> nullable Int64, rounding to the nearest integer."""
    mask = ~np.isfinite(values)
    return pd.arrays.IntegerArray(np.where(mask, 0, np.rint(values)).astype(np.int64), mask)


def _or_empty(frame: pd.DataFrame, values: Sequence[str]) -> pd.DataFrame:
    """Accept a column-less empty frame (``pd.DataFrame()``, e.g. zero partitions) as empty."""
    if frame.empty and TIME not in frame.columns:
        return build_frame(
            np.empty(0, dtype=np.int64),
            [],
            np.empty(0, dtype=np.int64),
            np.empty((0, len(values))),
            values,
        )
    return frame


def location_codes(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """(int codes, names) of the location column: comparisons on ints, not Python strings."""
    codes, uniques = pd.factorize(frame[LOCATION].astype("string"))
    return codes, [str(u) for u in uniques]


def build_frame(
    codes: np.ndarray,
    names: Sequence[str],
    times_ns: np.ndarray,
    values: np.ndarray,
    columns: Sequence[str],
) -> pd.DataFrame:
    """Assemble an observation frame from numpy blocks with the contract's dtypes.

    ``codes`` index into ``names``; the string column is built through a categorical, which
    skips pandas' per-element validation of a string array.
    """
    location = pd.Categorical.from_codes(codes, categories=list(names)).astype("string")
    data: dict[str, object] = {
        LOCATION: location,
        TIME: pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC"),
    }
    for j, name in enumerate(columns):
        data[name] = int64_array(values[:, j]) if name == AQI else values[:, j]
    return pd.DataFrame(data, columns=[LOCATION, TIME, *columns])


def merge_hourly(air: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Outer-join air quality and weather on (location, hour) over a full hourly grid.

    For each location the grid runs from the first to the last hour seen in *either* frame;
    hours that neither source reported are rows of NaN, so a gap is visible as missing values
    instead of silently absent rows. Columns are :data:`OBSERVATION_COLUMNS` (a contract column
    an input lacks is all NaN; other input columns are ignored). Duplicate (location, time)
    rows within an input keep the last. Output is sorted by location, then time, with a fresh
    RangeIndex; dtypes: location string, time datetime64[ns, UTC], aqi Int64, rest float64.

    Times must already be on whole UTC hours (the parsers floor them); anything else raises
    ``ValueError`` because placing it would need a policy this function should not invent.
    """
    air = _or_empty(air, AIR_VALUE_COLUMNS)
    weather = _or_empty(weather, WEATHER)
    ta, tw = time_ns(air), time_ns(weather)
    for label, t in (("air", ta), ("weather", tw)):
        off = np.count_nonzero(t % HOUR_NS)
        if off:
            raise ValueError(f"{off} {label} row(s) are not on a whole UTC hour; floor them first")
    ca, names_a = location_codes(air)
    cw, names_w = location_codes(weather)
    names = sorted(set(names_a) | set(names_w))
    va = _value_matrix(air, AIR_VALUE_COLUMNS)
    vw = _value_matrix(weather, WEATHER)
    ha, hw = ta // HOUR_NS, tw // HOUR_NS

    n_air = len(AIR_VALUE_COLUMNS)
    blocks_code, blocks_t, blocks_v = [], [], []
    for code, name in enumerate(names):
        ia = ca == (names_a.index(name) if name in names_a else -2)
        iw = cw == (names_w.index(name) if name in names_w else -2)
        hours = [h for h in (ha[ia], hw[iw]) if len(h)]
        start = min(int(h.min()) for h in hours)
        end = max(int(h.max()) for h in hours)
        n = end - start + 1
        block = np.full((n, len(VALUE_COLUMNS)), np.nan)
        pos, rows = _last_positions(ha[ia] - start, va[ia])
        block[pos, :n_air] = rows
        pos, rows = _last_positions(hw[iw] - start, vw[iw])
        block[pos, n_air:] = rows
        blocks_code.append(np.full(n, code, dtype=np.int64))
        blocks_t.append(np.arange(start, end + 1, dtype=np.int64) * HOUR_NS)
        blocks_v.append(block)
    if not names:
        return build_frame(
            np.empty(0, dtype=np.int64),
            [],
            np.empty(0, dtype=np.int64),
            np.empty((0, len(VALUE_COLUMNS))),
            VALUE_COLUMNS,
        )
    return build_frame(
        np.concatenate(blocks_code),
        names,
        np.concatenate(blocks_t),
        np.concatenate(blocks_v),
        VALUE_COLUMNS,
    )
