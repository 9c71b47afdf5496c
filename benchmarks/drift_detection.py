"""Benchmark: does drift detection catch real faults fast, without crying wolf?

Replays 2014 of the bundled Beijing data day by day, as the daily ``drift_report`` does:
each day, the last 7 days of observations against the seasonal training reference (the same
weeks of the reference years, +-14 days). Reports

* the false-alarm rate on unshifted data: share of the 52 weekly windows of 2014 at ERROR
  (goal: at most 1 in 10), and the share of daily evaluations at ERROR / WARN;
* per fault (pm2_5 x1.5, pm2_5 stuck 48 h, temperature in F), injected on the 1st and 15th
  of every month Jan-Nov (22 trials each): days from the fault's start to the first ERROR
  (goal: within 7 days) and to the first retraining request (the sensor's decision logic,
  with its cool-down, run from 14 days before the fault).

The baseline to read it against is the unshifted row: a fault's detection only means
something at a false-alarm rate that low.

Run: ``python benchmarks/drift_detection.py [--reference-start 2012-01-01]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from airquality_assets.columns import TIME
from airquality_assets.monitoring.drift import (
    ERROR,
    WARN,
    DriftThresholds,
    compare,
    seasonal_reference,
)
from airquality_assets.monitoring.faults import KINDS, Fault, apply_to_frame
from airquality_assets.monitoring.retrain import RetrainPolicy, RetrainState, decide
from airquality_assets.sources.replay import BEIJING, ReplayAirPollutionSource, ReplayWeatherSource
from airquality_assets.transforms.cleaning import clean_observations
from airquality_assets.transforms.merging import merge_hourly
from airquality_assets.transforms.parsing import parse_many

WINDOW_HOURS = 24 * 7
MAX_DELAY_DAYS = 30


def load_observations(start: date, end: date) -> pd.DataFrame:
    """Hourly observations of the bundled station, through the project's own parsing and
    cleaning (one body per source for the whole range)."""
    now = datetime.combine(end, datetime.min.time(), tzinfo=UTC)
    air = ReplayAirPollutionSource(now=now).history(
        BEIJING, datetime.combine(start, datetime.min.time(), tzinfo=UTC), now
    )
    weather = ReplayWeatherSource(now=now).timeline(BEIJING, start, end - timedelta(days=1))
    merged = merge_hourly(
        parse_many([air.body], BEIJING.name, kind="air"),
        parse_many([weather.body], BEIJING.name, kind="weather"),
    )
    cleaned, _ = clean_observations(merged, audit_columns=False)
    return cleaned


def evaluate(frame: pd.DataFrame, day: datetime, ref_start: datetime, ref_end: datetime,
             thresholds: DriftThresholds):  # fmt: skip
    """The drift verdict on the 7 days before ``day``."""
    window_start = day - timedelta(hours=WINDOW_HOURS)
    times = frame[TIME]
    current = frame[(times >= window_start) & (times < day)]
    reference = seasonal_reference(frame, window_start, day, ref_start, ref_end)
    return compare(current, reference, WINDOW_HOURS, thresholds=thresholds)


def weekly_days(year_start: datetime) -> list[datetime]:
    return [year_start + timedelta(days=7 * (w + 1)) for w in range(51)]


def recalibration_separability(
    frame: pd.DataFrame, days: list[datetime], ref_start: datetime, ref_end: datetime
) -> str:
    """Why a x1.5 gain is hard to see in a week: the normal week-to-week spread of the median
    log pm2_5 against the seasonal reference, next to the shift the fault adds (ln 1.5)."""
    shifts = []
    for day in days:
        window_start = day - timedelta(hours=WINDOW_HOURS)
        current = frame[(frame[TIME] >= window_start) & (frame[TIME] < day)]["pm2_5"]
        reference = seasonal_reference(frame, window_start, day, ref_start, ref_end)["pm2_5"]
        if current.notna().sum() and reference.notna().sum():
            shifts.append(
                np.log(np.clip(current.median(), 1, None))
                - np.log(np.clip(reference.median(), 1, None))
            )
    shifts_a = np.asarray(shifts)
    threshold = float(np.quantile(shifts_a, 0.9))  # a test alarming on 1 normal week in 10
    caught = float(np.mean(shifts_a + np.log(1.5) > threshold))
    return (
        f"pm2_5 x1.5 separability: weekly median log pm2_5 minus its seasonal reference's, "
        f"normal weeks: mean {shifts_a.mean():+.2f}, sd {shifts_a.std():.2f}; the fault adds "
        f"{np.log(1.5):.2f}. A threshold alarming on 10 % of normal weeks ({threshold:+.2f}) "
        f"would catch {caught:.0%} of faulty weeks."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference-start",
        default="2012-01-01",
        help="first day of the reference years (the demo trains from 2012)",
    )
    parser.add_argument("--year", type=int, default=2014)
    args = parser.parse_args()  # fmt: skip
    thresholds = DriftThresholds()
    policy = RetrainPolicy()
    ref_start = datetime.fromisoformat(args.reference_start).replace(tzinfo=UTC)
    year_start = datetime(args.year, 1, 1, tzinfo=UTC)
    ref_end = year_start

    started = time.perf_counter()
    frame = load_observations(ref_start.date(), date(args.year + 1, 1, 1))
    load_s = time.perf_counter() - started
    t0 = time.perf_counter()
    days = [year_start + timedelta(days=d) for d in range(7, 365)]
    daily = {d: evaluate(frame, d, ref_start, ref_end, thresholds) for d in days}
    weekly = [daily[d] for d in weekly_days(year_start)]
    eval_s = (time.perf_counter() - t0) / len(days)
    weekly_errors = sum(r.status == ERROR for r in weekly)
    print(f"loaded {len(frame)} hours in {load_s:.1f} s; one evaluation {eval_s * 1000:.0f} ms")
    print(f"thresholds: out of range warn {thresholds.out_of_range_warn}, error "
          f"{thresholds.out_of_range_error}; "
          f"stuck >= {thresholds.stuck_error_hours} h on {thresholds.stuck_features}")  # fmt: skip
    print()
    print("| data | trials | ERROR within 7 d | days to ERROR (median / max) "
          "| days to retrain request (median / max) | false alarms |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    daily_err = np.mean([r.status == ERROR for r in daily.values()])
    daily_warn = np.mean([r.status == WARN for r in daily.values()])
    print(f"| unshifted {args.year} | {len(weekly)} weeks | - | - | - | "
          f"{weekly_errors} of {len(weekly)} weeks ERROR ({weekly_errors / len(weekly):.0%}); "
          f"daily: {daily_err:.0%} ERROR, {daily_warn:.0%} WARN |")  # fmt: skip
    starts = [datetime(args.year, m, d, tzinfo=UTC) for m in range(1, 12) for d in (1, 15)]
    for kind in KINDS:
        error_delays: list[float] = []
        retrain_delays: list[float] = []
        for start in starts:
            fault = Fault(kind, start)
            faulty = apply_to_frame(frame, fault)
            state = RetrainState()
            error_at = retrain_at = None
            for d in range(-14, MAX_DELAY_DAYS + 1):
                day = start + timedelta(days=d)
                result = (evaluate(faulty, day, ref_start, ref_end, thresholds) if d > 0
                          else daily.get(day) or evaluate(frame, day, ref_start, ref_end,
                                                          thresholds))  # fmt: skip
                decision = decide(day, result.status == ERROR, False, state, policy)
                state = decision.state
                if d > 0 and result.status == ERROR and error_at is None:
                    error_at = d
                if d > 0 and decision.request and retrain_at is None:
                    retrain_at = d
                if error_at is not None and retrain_at is not None:
                    break
            error_delays.append(error_at if error_at is not None else np.inf)
            retrain_delays.append(retrain_at if retrain_at is not None else np.inf)
        within = sum(d <= 7 for d in error_delays)

        def fmt(values: list[float]) -> str:
            found = [v for v in values if np.isfinite(v)]
            if not found:
                return f"none within {MAX_DELAY_DAYS} d"
            missed = len(values) - len(found)
            tail = f" ({missed} missed in {MAX_DELAY_DAYS} d)" if missed else ""
            return f"{statistics.median(found):.0f} / {max(found):.0f}{tail}"

        label = {"recalibration": "pm2_5 x1.5", "stuck": "pm2_5 stuck 48 h",
                 "fahrenheit": "temperature in F"}[kind]  # fmt: skip
        print(f"| {label} | {len(starts)} | {within} of {len(starts)} | {fmt(error_delays)} | "
              f"{fmt(retrain_delays)} | - |")  # fmt: skip
    print()
    print(recalibration_separability(frame, weekly_days(year_start), ref_start, ref_end))
    print(f"\n(whole benchmark {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
