"""Completeness measured against the hours that should exist, not the rows that do.

OpenWeatherMap leaves a missing hour out of its answer instead of sending it as null, so the
share of NaN among stored rows reads 0 % for a station with 4 % gaps. Here the expected
hours come from the partition's time window (clipped at the source's clock), and every
column is counted against them: missing hours, share, longest gap, and the columns a
station never reports at all. A never-reported column is named as such and has no gap
statistics (it is not one gap as long as the window). The same figures exist per (month,
location), the unit of a partition. Pure: no Dagster, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from airquality_assets.columns import LOCATION, TIME

_HOUR_NS = 3_600_000_000_000


def expected_hours(start: pd.Timestamp | str, end: pd.Timestamp | str) -> pd.DatetimeIndex:
    """Every whole UTC hour in ``[start, end)`` (``start`` rounded up, ``end`` down)."""
    first = _utc(start).ceil("h")
    stop = _utc(end).floor("h")
    if stop <= first:
        return pd.DatetimeIndex([], tz="UTC", name=TIME)
    return pd.date_range(first, stop, freq="h", inclusive="left", name=TIME)


def windows_hours(windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> pd.DatetimeIndex:
    """The union of the expected hours of several ``[start, end)`` windows, sorted."""
    parts = [expected_hours(start, end) for start, end in windows]
    if not parts:
        return pd.DatetimeIndex([], tz="UTC", name=TIME)
    return parts[0].append(parts[1:]).unique().sort_values()


def longest_run(mask: np.ndarray, breaks: np.ndarray | None = None) -> int:
    """Length of the longest run of True in ``mask``; a True in ``breaks`` starts a new run."""
    if not mask.any():
        return 0
    change = np.ones(len(mask), dtype=bool)
    change[1:] = mask[1:] != mask[:-1]
    if breaks is not None:
        change |= breaks
    return int(np.bincount(np.cumsum(change)[mask]).max())


def longest_run_by_group(
    mask: np.ndarray, breaks: np.ndarray, groups: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per group, the longest run of True in ``mask``; ``breaks`` must be True wherever the
    group changes (so no run spans two groups), and may be True elsewhere too."""
    out = np.zeros(n_groups, dtype=np.int64)
    if not mask.any():
        return out
    change = np.ones(len(mask), dtype=bool)
    change[1:] = mask[1:] != mask[:-1]
    change |= breaks
    run_id = np.cumsum(change) - 1
    lengths = np.bincount(run_id[mask], minlength=int(run_id[-1]) + 1)
    np.maximum.at(out, groups[np.flatnonzero(change)], lengths)
    return out


@dataclass(frozen=True)
class ColumnCompleteness:
    column: str
    expected_hours: int
    missing_hours: int
    longest_gap_hours: int

    @property
    def missing_share(self) -> float:
        return self.missing_hours / self.expected_hours if self.expected_hours else 0.0


@dataclass(frozen=True)
class Verdict:
    """What :meth:`Completeness.judge` found: the judged columns' figures (over the locations
    judged), those over the threshold, the (month, location) pairs over it, and the
    never-reported (column -> locations) it left out."""

    judged: dict[str, ColumnCompleteness]
    failing: dict[str, ColumnCompleteness]
    months: dict[str, dict[str, float]]
    excused: dict[str, list[str]]

    @property
    def passed(self) -> bool:
        return not self.failing and not self.months


@dataclass(frozen=True)
class Completeness:
    """Per column over all locations: sums of missing hours, the longest gap anywhere (in a
    location that reports the column at all). ``per_month`` holds the same figures for each
    (month, location), keyed like ``by_month``."""

    expected_hours: int
    rows_in_window: int
    columns: dict[str, ColumnCompleteness]
    never_reported: dict[str, list[str]]  # column -> locations that never report it
    # "YYYY-MM|location" -> column -> missing share of that month's expected hours
    by_month: dict[str, dict[str, float]] = field(default_factory=dict)
    per_month: dict[str, Completeness] = field(default_factory=dict)

    @property
    def empty_columns(self) -> list[str]:
        """Columns with no value at all, in every location of the window."""
        return [
            c
            for c, v in self.columns.items()
            if v.expected_hours and v.missing_hours == v.expected_hours
        ]

    def months_over(self, columns: Sequence[str], threshold: float) -> dict[str, dict[str, float]]:
        """The (month, location) pairs where a column in ``columns`` misses more than
        ``threshold`` of its expected hours, with those columns' shares."""
        found: dict[str, dict[str, float]] = {}
        for key, shares in self.by_month.items():
            over = {c: s for c, s in shares.items() if c in columns and s > threshold}
            if over:
                found[key] = over
        return found

    @property
    def locations(self) -> list[str]:
        """The locations measured, in order (from the (month, location) keys)."""
        return list(dict.fromkeys(key.split("|", 1)[1] for key in self.per_month))

    def excused(self, columns: Sequence[str]) -> dict[str, list[str]]:
        """column of ``columns`` -> the locations that never report it although another of
        ``columns`` has values there: the station answers, it just does not measure this one
        (named once, not judged). A location where none of ``columns`` has a value is not
        excused: its data are missing, not a sensor."""
        columns = list(columns)
        silent = {c: set(self.never_reported.get(c, ())) for c in columns}
        answering = {loc for loc in self.locations if any(loc not in silent[c] for c in columns)}
        return {
            c: [loc for loc in self.locations if loc in silent[c] and loc in answering]
            for c in columns
            if silent[c] & answering
        }

    def judge(
        self, watch: Sequence[str], threshold: float, excusable: Sequence[str] = ()
    ) -> Verdict:
        """The columns of ``watch`` missing more than ``threshold`` of their expected hours,
        over the run or in any one (month, location), leaving out the (column, location)
        pairs :meth:`excused` among ``excusable`` (a never-reported column fails nothing)."""
        excused = self.excused([c for c in excusable if c in watch])
        judged: dict[str, ColumnCompleteness] = {}
        for column in watch:
            if column not in self.columns:
                continue
            skip = set(excused.get(column, ()))
            parts = [
                month.columns[column]
                for key, month in self.per_month.items()
                if key.split("|", 1)[1] not in skip and column in month.columns
            ]
            total = self.columns[column]
            if skip or not parts:
                total = ColumnCompleteness(
                    column,
                    sum(p.expected_hours for p in parts),
                    sum(p.missing_hours for p in parts),
                    total.longest_gap_hours,
                )
            judged[column] = total
        months: dict[str, dict[str, float]] = {}
        for key, shares in self.by_month.items():
            location = key.split("|", 1)[1]
            over = {
                c: share
                for c, share in shares.items()
                if c in judged and share > threshold and location not in excused.get(c, ())
            }
            if over:
                months[key] = over
        failing = {c: v for c, v in judged.items() if v.missing_share > threshold}
        return Verdict(judged=judged, failing=failing, months=months, excused=excused)

    def as_metadata(self) -> dict[str, object]:
        """Gap lengths only for columns with at least one value (an empty column is named in
        ``never_reported``, not given a gap as long as the window)."""
        empty = set(self.empty_columns)
        return {
            "expected_hours": self.expected_hours,
            "rows_in_window": self.rows_in_window,
            "missing_hours": {c: v.missing_hours for c, v in self.columns.items()},
            "missing_share": {c: round(v.missing_share, 4) for c, v in self.columns.items()},
            "longest_gap_hours": {
                c: v.longest_gap_hours for c, v in self.columns.items() if c not in empty
            },
            "never_reported": {c: locs for c, locs in self.never_reported.items()},
        }


def measure_completeness(
    frame: pd.DataFrame,
    expected: Mapping[str, pd.DatetimeIndex],
    columns: Sequence[str],
) -> Completeness:
    """Count, per column, the expected hours (per location) that are absent or NaN.

    ``expected`` maps each location to its expected hours (see :func:`windows_hours`); rows
    outside them are ignored. A column absent from the frame is missing at every hour. A
    column with no value at all in a location's window is listed in ``never_reported``.
    """
    total_expected = 0
    rows_in_window = 0
    missing = dict.fromkeys(columns, 0)
    longest = dict.fromkeys(columns, 0)
    never: dict[str, list[str]] = {}
    by_month: dict[str, dict[str, float]] = {}
    per_month: dict[str, Completeness] = {}
    by_location = (
        dict(tuple(frame.groupby(LOCATION, observed=True, sort=False))) if len(frame) else {}
    )
    for location, hours in expected.items():
        hour_ids = hours.asi8 // _HOUR_NS if len(hours) else np.empty(0, dtype=np.int64)
        if len(hour_ids) == 0:
            continue
        total_expected += len(hour_ids)
        breaks = np.concatenate(([True], np.diff(hour_ids) != 1))
        rows = by_location.get(location)
        if rows is None:
            rows = frame.iloc[0:0]
        row_ids = (
            pd.DatetimeIndex(rows[TIME]).asi8 // _HOUR_NS if len(rows) else np.empty(0, np.int64)
        )
        position = pd.Index(hour_ids).get_indexer(row_ids)
        inside = position >= 0
        rows_in_window += int(inside.sum())
        # months since 1970 (UTC), then "YYYY-MM" labels: strftime per hour costs seconds
        month_ids = hour_ids.astype("datetime64[h]").astype("datetime64[M]").astype(np.int64)
        month_codes, month_uniques = pd.factorize(month_ids, sort=True)
        months = np.asarray(month_uniques).astype("datetime64[M]").astype(str)
        per_month_hours = np.bincount(month_codes, minlength=len(months))
        per_month_rows = np.bincount(month_codes[position[inside]], minlength=len(months))
        month_breaks = breaks.copy()
        month_breaks[1:] |= month_codes[1:] != month_codes[:-1]
        month_columns: list[dict[str, ColumnCompleteness]] = [{} for _ in months]
        month_never: list[dict[str, list[str]]] = [{} for _ in months]
        for column in columns:
            present = np.zeros(len(hour_ids), dtype=bool)
            if column in rows.columns and len(rows):
                known = rows[column].notna().to_numpy()
                present[position[inside & known]] = True
            absent_hours = ~present
            missing[column] += int(absent_hours.sum())
            if present.any():  # an empty column is named below, not measured as one gap
                longest[column] = max(longest[column], longest_run(absent_hours, breaks))
            else:
                never.setdefault(column, []).append(str(location))
            absent_per_month = np.bincount(month_codes[absent_hours], minlength=len(months))
            longest_per_month = longest_run_by_group(
                absent_hours, month_breaks, month_codes, len(months)
            )
            for i, count in enumerate(absent_per_month):
                empty = count == per_month_hours[i]
                if empty:
                    month_never[i][column] = [str(location)]
                month_columns[i][column] = ColumnCompleteness(
                    column,
                    int(per_month_hours[i]),
                    int(count),
                    0 if empty else int(longest_per_month[i]),
                )
        for i, month in enumerate(months):
            key = f"{month}|{location}"
            shares = {c: v.missing_share for c, v in month_columns[i].items()}
            by_month[key] = shares
            per_month[key] = Completeness(
                expected_hours=int(per_month_hours[i]),
                rows_in_window=int(per_month_rows[i]),
                columns=month_columns[i],
                never_reported=month_never[i],
                by_month={key: shares},
            )
    return Completeness(
        expected_hours=total_expected,
        rows_in_window=rows_in_window,
        columns={c: ColumnCompleteness(c, total_expected, missing[c], longest[c]) for c in columns},
        never_reported=never,
        by_month=by_month,
        per_month=per_month,
    )


def _utc(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
