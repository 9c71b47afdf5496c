"""Benchmark: cleaning a year of one location's hourly grid, project code vs plain pandas.

Synthetic but realistic hourly data (every pollutant and weather column, 5 % of hours
missing at random, a few spikes), merged onto the full grid with ``merge_hourly``. Both sides
start from that grid:

* project: ``clean_observations`` (bounds, the Hampel spike rule with its neighbour
  conditions, gap-aware interpolation of short gaps, audit columns);
* reference: per pollutant a centred ``rolling(25).median()`` / MAD Hampel filter, then
  ``interpolate(limit=3, limit_area="inside")`` on every value column.

The reference does *less* (no neighbour conditions, no circular wind direction, no audit
columns, and ``limit=3`` still fills the first hours of a long gap), so the ratio understates
the difference. Prints median times over several repeats and the ratio.

Run: ``python benchmarks/cleaning.py [--repeats 7]`` (from the repository root).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from parse_merge import median_seconds  # run as a script: benchmarks/ is on sys.path

from airquality_assets.columns import AQI, LOCATION, POLLUTANTS, TIME, WEATHER
from airquality_assets.transforms.cleaning import clean_observations
from airquality_assets.transforms.merging import VALUE_COLUMNS, merge_hourly
from airquality_assets.transforms.parsing import parse_many

HOURS = 8760
T0 = pd.Timestamp("2024-01-01T00:00Z")


def grid(rng: np.random.Generator) -> pd.DataFrame:
    keep = rng.uniform(size=HOURS) > 0.05
    times = [T0 + pd.Timedelta(hours=h) for h in np.flatnonzero(keep)]
    n = len(times)
    air = parse_many([], "", kind="air").reindex(range(n))
    air[LOCATION] = pd.array(["a"] * n, dtype="string")
    air[TIME] = times
    for p in POLLUTANTS:
        values = rng.gamma(2, 20, n)
        values[rng.integers(0, n, 10)] *= 15  # isolated spikes
        air[p] = values
    air[AQI] = pd.array(rng.integers(1, 6, n), dtype="Int64")
    weather = parse_many([], "", kind="weather").reindex(range(n))
    weather[LOCATION] = pd.array(["a"] * n, dtype="string")
    weather[TIME] = times
    for column in WEATHER:
        weather[column] = rng.uniform(0, 1, n)
    weather["pressure"] = rng.normal(1013, 8, n)  # hPa: inside the physical bounds
    return merge_hourly(air, weather)


def reference(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for p in POLLUTANTS:
        series = out[p]
        median = series.rolling(25, center=True, min_periods=12).median()
        mad = (series - median).abs().rolling(25, center=True, min_periods=12).median()
        out.loc[(series - median).abs() > 6 * 1.4826 * mad, p] = np.nan
    numeric = [c for c in VALUE_COLUMNS if c != AQI]
    out[numeric] = out[numeric].interpolate(limit=3, limit_area="inside")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    frame = grid(np.random.default_rng(3))
    cleaned, stats = clean_observations(frame)
    assert len(cleaned) == len(frame)
    ours_s = median_seconds(lambda: clean_observations(frame), args.repeats)
    theirs_s = median_seconds(lambda: reference(frame), args.repeats)
    print(
        f"a year of one location ({len(frame)} hours x {len(VALUE_COLUMNS)} columns, "
        f"{stats.outliers_total} outliers, {stats.interpolated_total} values filled), "
        f"median of {args.repeats}:"
    )
    print(f"  project clean_observations        : {ours_s * 1000:8.1f} ms")
    print(f"  reference rolling Hampel + interp : {theirs_s * 1000:8.1f} ms")
    print(f"  speed-up                          : {theirs_s / ours_s:8.1f}x")


if __name__ == "__main__":
    main()
