"""The bookkeeping cost of the forecast issue cadence: one month, 6-hourly vs 3-hourly vs hourly.

For each cadence (``AIRQUALITY_FORECAST_ISSUE_HOURS``: default 6, 3, 1) and one location x
one month of the bundled data (March 2014), in a fresh data directory:

* ``pull + store``: every issue of the month from the replay source (the stand-in forecast
  body: observations + the seeded error model) written atomically, one file per issue (what
  ``raw_weather_forecast`` does, minus Dagster);
* ``read + parse``: every stored body read back and parsed into the ``weather_forecasts``
  frame (:func:`~airquality_assets.transforms.parsing.parse_weather_forecasts`), then
  validated against its Pandera schema and written as the partition's Parquet file;
* ``dagster``: the same month as one run of ``raw_weather_forecast`` + ``weather_forecasts``
  on a temporary instance (run start, events, the schema check, the IO manager), so the
  difference to the two above is Dagster's share;
* storage: raw files and bytes, frame rows and Parquet bytes; and what a live deployment
  pays per location and day (Visual Crossing bills a forecast as 1 record of the free 1000;
  OpenWeatherMap one call each).

Median of ``--repeats`` for the direct path (one Dagster run per cadence). Ratios are
against 6-hourly.

Run: ``nice -n 10 .venv/bin/python benchmarks/forecast_issue_cadence.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from airquality_assets.schemas import WeatherForecastsSchema, validate_lazily
from airquality_assets.sources.replay import BEIJING, ReplayWeatherSource
from airquality_assets.sources.spans import month_issues
from airquality_assets.storage import (
    frame_path,
    raw_issue_bodies,
    raw_issue_time,
    store_raw_issue,
    write_frame_atomic,
)
from airquality_assets.transforms.parsing import parse_weather_forecasts

MONTH = date(2014, 3, 1)
CADENCES = (6, 3, 1)
ASSET = "raw_weather_forecast"


@dataclass
class Measured:
    hours: int
    issues: int
    pull_s: float
    parse_s: float
    raw_bytes: int
    rows: int
    parquet_bytes: int
    dagster_s: float | None = None


def _median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _direct(hours: int, repeats: int) -> Measured:
    source = ReplayWeatherSource()  # the clock (2014-12-31) has passed the whole month
    issues = month_issues(MONTH, source.now(), hours)
    source.forecast(BEIJING, issues[0])  # load the bundled data once, outside the timing
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)

        def pull() -> None:
            for issue in issues:
                store_raw_issue(base, ASSET, "beijing", issue, source.forecast(BEIJING, issue).body)

        def parse() -> int:
            paths = raw_issue_bodies(base, ASSET, "beijing", MONTH)
            frame = parse_weather_forecasts(
                [(raw_issue_time(p), p.read_bytes()) for p in paths], "beijing"
            )
            ok, _, message = validate_lazily(WeatherForecastsSchema, frame)
            assert ok, message
            write_frame_atomic(frame, frame_path(base, "weather_forecasts", "beijing", MONTH))
            return len(frame)

        pull_s = _median(pull, repeats)
        parse_s = _median(parse, repeats)
        rows = parse()
        raw = raw_issue_bodies(base, ASSET, "beijing", MONTH)
        parquet = frame_path(base, "weather_forecasts", "beijing", MONTH)
        return Measured(
            hours=hours,
            issues=len(raw),
            pull_s=pull_s,
            parse_s=parse_s,
            raw_bytes=sum(p.stat().st_size for p in raw),
            rows=rows,
            parquet_bytes=parquet.stat().st_size,
        )


def _dagster(hours: int) -> float:
    import dagster as dg

    from airquality_assets.defs.data.frames import WEATHER_FORECASTS, frame_assets
    from airquality_assets.defs.data.ingestion import RAW_WEATHER_FORECAST, ingestion_assets
    from airquality_assets.defs.partitions import build_partitions, range_tags
    from airquality_assets.defs.resources import build_resources
    from airquality_assets.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder) / "data", forecast_issue_hours=hours)
        partitions = build_partitions(settings)
        wanted = {RAW_WEATHER_FORECAST, WEATHER_FORECASTS}
        assets = [
            a
            for a in [*ingestion_assets(partitions), *frame_assets(partitions)]
            if a.key.to_user_string() in wanted
        ]
        with dg.instance_for_test(temp_dir=folder) as instance:
            started = time.perf_counter()
            result = dg.materialize(
                assets,
                resources=build_resources(settings),
                instance=instance,
                tags=range_tags(MONTH.isoformat(), MONTH.isoformat(), ["beijing"]),
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            seconds = time.perf_counter() - started
        assert result.success
        return seconds


def _ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}x" if base else "   - "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-dagster", action="store_true", help="skip the Dagster runs")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    results = []
    for hours in CADENCES:
        measured = _direct(hours, args.repeats)
        if not args.no_dagster:
            measured.dagster_s = _dagster(hours)
        results.append(measured)
    base = results[0]
    print(
        f"one location x {MONTH:%B %Y}, replay stand-in forecasts (48 h each); "
        f"direct path median of {args.repeats}, one Dagster run each; ratios vs 6-hourly"
    )
    header = "".join(f"{f'every {m.hours} h':>22}" for m in results)
    print(f"{'':26}{header}")

    def row(label: str, value: Callable[[Measured], float], unit: Callable[[float], str]):
        cells = "".join(f"{unit(value(m)):>14} {_ratio(value(m), value(base)):>7}" for m in results)
        print(f"{label:26}{cells}")

    row("issues", lambda m: m.issues, lambda v: f"{v:.0f}")
    row("pull + store", lambda m: m.pull_s, lambda v: f"{v * 1000:.0f} ms")
    row("read + parse + validate", lambda m: m.parse_s, lambda v: f"{v * 1000:.0f} ms")
    if not args.no_dagster:
        row("dagster run (both)", lambda m: m.dagster_s or 0.0, lambda v: f"{v:.2f} s")
    row("raw bytes", lambda m: m.raw_bytes, lambda v: f"{v / 1e6:.2f} MB")
    row("frame rows", lambda m: m.rows, lambda v: f"{v:,.0f}")
    row("frame parquet", lambda m: m.parquet_bytes, lambda v: f"{v / 1e3:.0f} kB")
    row("VC records / loc / day", lambda m: 24 / m.hours, lambda v: f"{v:.0f} of 1000")
    row("OWM calls / loc / day", lambda m: 24 / m.hours, lambda v: f"{v:.0f}")
    per_issue = [m.raw_bytes / m.issues for m in results]
    print(f"{'raw bytes per issue':26}" + "".join(f"{v / 1e3:>14.1f} kB{'':5}" for v in per_issue))


if __name__ == "__main__":
    main()
