"""The data half (ingestion + frames) for N replayed locations x one year, and an hourly tick.

For each N (default 1, 10, 100) a fresh process with its own DAGSTER_HOME (SQLite, Dagster's
defaults) and data directory serves the bundled station under N names
(``AIRQUALITY_REPLAY_LOCATIONS=N``) and measures:

* ``dagster``: the ``ingestion`` job then the ``frames`` job, each ONE run over every month
  of the year x every location (what the demo and a UI backfill run);
* ``same work, no Dagster``: the same pulls, files, parsing, merging, cleaning and Parquet
  writes called directly (the baseline); ``dagster - baseline`` is Dagster's bookkeeping
  (run start, planned + materialization events, check results, IO manager calls);
* ``hourly tick``: the run the hourly schedule requests (newest hours of every location)
  plus the frames of that month, as one run each.

Run:  nice -n 10 .venv/bin/python benchmarks/scale_locations.py [--locations 1 10 100]
      ... --tick-only --locations 100 --against main   (main's code side by side, ratios)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YEAR_START, YEAR_END = "2014-01-01", "2015-01-01"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _months() -> list[date]:
    return [date(2014, m, 1) for m in range(1, 13)]


def _range_tags(first_month: date, last_month: date, names: list[str]) -> dict[str, str]:
    return {
        RANGE_START_TAG: f"{first_month.isoformat()}|{names[0]}",
        RANGE_END_TAG: f"{last_month.isoformat()}|{names[-1]}",
    }


def _execute(defs, instance, job: str, tags: dict[str, str]) -> float:
    started = time.perf_counter()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
    )
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"{job} run failed: {tags}")
    return seconds


def _baseline(settings, data_dir: Path) -> float:
    """The same work as the two jobs, without Dagster: pull, store, parse, merge, clean, write."""
    import pandas as pd

    from airquality_assets.columns import TIME
    from airquality_assets.sources.replay import ReplayAirPollutionSource, ReplayWeatherSource
    from airquality_assets.sources.spans import month_pull_span
    from airquality_assets.storage import (
        frame_path,
        raw_month_bodies,
        store_raw_span,
        write_frame_atomic,
    )
    from airquality_assets.transforms.cleaning import clean_observations
    from airquality_assets.transforms.merging import merge_hourly
    from airquality_assets.transforms.parsing import parse_many

    started = time.perf_counter()
    now = settings.clock.now()
    air_source, weather_source = ReplayAirPollutionSource(now), ReplayWeatherSource(now)
    for location in settings.locations:
        parsed = {}
        for asset, kind in (("raw_air_quality", "air"), ("raw_weather", "weather")):
            bodies = []
            for month in _months():
                span = month_pull_span(month, now, None)
                if span is None:
                    continue
                if kind == "air":
                    body = air_source.history(location, span.first_hour, span.last_hour).body
                else:
                    span = span.whole_days()
                    body = weather_source.timeline(location, span.first_day, span.last_day).body
                store_raw_span(
                    data_dir, asset, location.name, span.first_hour, span.last_hour, body
                )
                bodies.extend(
                    p.read_bytes() for p in raw_month_bodies(data_dir, asset, location.name, month)
                )
            parsed[kind] = parse_many(bodies, location.name, kind=kind)  # type: ignore[arg-type]
        merged = merge_hourly(parsed["air"], parsed["weather"])
        cleaned, _ = clean_observations(merged)
        for name, frame in (
            ("air_quality_hourly", parsed["air"]),
            ("weather_hourly", parsed["weather"]),
            ("hourly_observations", cleaned),
        ):
            months = frame[TIME].dt.strftime("%Y-%m-01")
            for month in _months():
                part = frame.loc[(months == month.isoformat()).to_numpy()]
                write_frame_atomic(
                    pd.DataFrame(part), frame_path(data_dir, name, location.name, month)
                )
    return time.perf_counter() - started


def _progress(phase: str, seconds: float) -> None:
    """Each phase as it ends, next to the run's DAGSTER_HOME (a long N can be watched)."""
    path = Path(os.environ["DAGSTER_HOME"]).parent / "progress.txt"
    with path.open("a") as handle:
        handle.write(f"{phase} {seconds:.1f} s\n")


def child(n: int, tick_only: bool = False) -> dict[str, float]:
    """One N, in this (fresh) process: Dagster run times, the baseline, the hourly tick.

    ``tick_only``: back-fill only the month the tick pulls (December), then time the tick;
    no baseline (a quicker measurement of the hourly path for a large N)."""
    warnings.filterwarnings("ignore")
    import dagster as dg

    from airquality_assets.definitions import defs as load_defs
    from airquality_assets.defs.data.jobs import FRAMES_JOB, INGESTION_JOB
    from airquality_assets.settings import Settings

    settings = Settings.from_env()
    names = settings.location_names
    assert len(names) == n, f"expected {n} locations, got {len(names)}"
    started = time.perf_counter()
    defs = load_defs()
    load_s = time.perf_counter() - started
    instance = dg.DagsterInstance.get()
    months = _months()[-1:] if tick_only else _months()
    tags = _range_tags(months[0], months[-1], names)
    ingestion_s = _execute(defs, instance, INGESTION_JOB, tags)
    _progress("ingestion", ingestion_s)
    frames_s = _execute(defs, instance, FRAMES_JOB, tags)
    _progress("frames", frames_s)

    from airquality_assets.defs.data.schedules import newest_partition_requests

    tick = newest_partition_requests(settings.clock.now(), names)
    assert len(tick) == 1, "the hourly tick must be one run for all locations"
    tick_ingestion_s = _execute(defs, instance, INGESTION_JOB, dict(tick[0].tags))
    tick_frames_s = _execute(defs, instance, FRAMES_JOB, dict(tick[0].tags))
    _progress("tick", tick_ingestion_s + tick_frames_s)
    baseline_s = float("nan")
    if not tick_only:
        data_dir = Path(os.environ["AIRQUALITY_DATA_DIR"]).parent / "baseline"
        baseline_s = _baseline(settings, data_dir)
        _progress("baseline", baseline_s)
    return {
        "locations": n,
        "load_s": load_s,
        "ingestion_s": ingestion_s,
        "frames_s": frames_s,
        "baseline_s": baseline_s,
        "tick_ingestion_s": tick_ingestion_s,
        "tick_frames_s": tick_frames_s,
    }


def checkout(ref: str, into: Path) -> Path:
    """The tree of ``ref`` (e.g. ``main``) as plain files, to run its code side by side."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_one(n: int, tick_only: bool = False, tree: Path = ROOT) -> dict[str, float]:
    """One N in a fresh process running the code of ``tree`` (this checkout, or another
    ref's files first on the path: its own copy of this script, with its own package)."""
    with tempfile.TemporaryDirectory(prefix=f"scale-{n}-") as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "AIRQUALITY_DATA_DIR": str(Path(tmp) / "data"),
            "AIRQUALITY_SOURCE": "replay",
            "AIRQUALITY_REPLAY_LOCATIONS": str(n),
            "AIRQUALITY_START_DATE": YEAR_START,
            "AIRQUALITY_END_DATE": YEAR_END,
        }
        env.pop("AIRQUALITY_LOCATIONS", None)
        if tree != ROOT:
            env["PYTHONPATH"] = str(tree)
        script = tree / "benchmarks" / "scale_locations.py"
        out = subprocess.run(
            [sys.executable, str(script), "--child", str(n)]
            + (["--tick-only"] if tick_only else []),
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"N={n} failed:\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["load_average"] = os.getloadavg()[0]
        return result


def _tick_table(locations: list[int], against: str | None) -> int:
    """The ``--tick-only`` table; with ``against``, REF's run then this checkout's per N (same
    machine, minutes apart: the load average at the end of each run is printed beside it)."""
    print(
        "| locations | code | definitions load | December back-fill (raw + frames) "
        "| hourly tick (pull + frames) | load average |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="scale-ref-") as tmp:
        trees = [(against, checkout(against, Path(tmp)))] if against else []
        trees.append(("this checkout", ROOT))
        for n in locations:
            ticks: dict[str, dict[str, float]] = {}
            for label, tree in trees:
                r = run_one(n, tick_only=True, tree=tree)
                ticks[label] = r
                tick = r["tick_ingestion_s"] + r["tick_frames_s"]
                print(
                    f"| {n} | {label} | {r['load_s']:.1f} s | "
                    f"{r['ingestion_s'] + r['frames_s']:.1f} s "
                    f"({r['ingestion_s']:.1f} + {r['frames_s']:.1f}) | {tick:.1f} s "
                    f"({r['tick_ingestion_s']:.1f} + {r['tick_frames_s']:.1f}) | "
                    f"{r['load_average']:.1f} |",
                    flush=True,
                )
            if against:
                new, old = ticks["this checkout"], ticks[against]
                ratio = (new["tick_ingestion_s"] + new["tick_frames_s"]) / (
                    old["tick_ingestion_s"] + old["tick_frames_s"]
                )
                print(
                    f"| {n} | ratio (this / {against}) | {new['load_s'] / old['load_s']:.2f}x "
                    f"| | {ratio:.2f}x | |",
                    flush=True,
                )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--tick-only",
        action="store_true",
        help="back-fill only December, then time the hourly tick (no year, no baseline)",
    )
    parser.add_argument(
        "--against",
        metavar="REF",
        help="with --tick-only: also run REF's code (e.g. main) for each N, alternating, "
        "and print the ratios (this checkout / REF)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.tick_only)))
        return 0
    if args.tick_only:
        return _tick_table(args.locations, args.against)
    print(
        "| locations | ingestion run | frames run | data half | per location | same work, "
        "no Dagster | Dagster bookkeeping | hourly tick (pull + frames) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.locations:
        r = run_one(n)
        total = r["ingestion_s"] + r["frames_s"]
        book = total - r["baseline_s"]
        tick = r["tick_ingestion_s"] + r["tick_frames_s"]
        print(
            f"| {n} | {r['ingestion_s']:.1f} s | {r['frames_s']:.1f} s | {total:.1f} s | "
            f"{total / n:.2f} s | {r['baseline_s']:.1f} s | {book:.1f} s ({book / total:.0%}) | "
            f"{tick:.1f} s ({r['tick_ingestion_s']:.1f} + {r['tick_frames_s']:.1f}) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
