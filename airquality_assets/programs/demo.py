"""Run the main job on the embedded default and say where to look.

``bash scripts/demo.sh`` (the README's first command) sets up the environment and runs this
module. It materializes the whole graph for the bundled data: the data half as single-run
backfills over every month and location (:func:`run_data_half`), then the model half, then
the loop's forecasts of the last day (what the service's ``GET /forecast`` reads).
Everything is recorded in the project's Dagster instance (``dagster.yaml`` at the root), so
``dg dev`` shows the runs, assets, checks and metadata afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

from airquality_assets.programs.local_runs import run_job
from airquality_assets.settings import Settings, project_root

# Step-level progress, without Dagster's per-event DEBUG lines (thousands per backfill).
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run(
    code_location, instance, job_name: str, tags: dict[str, str], label: str, run_config=RUN_CONFIG
):
    started = time.perf_counter()
    result = run_job(code_location, instance, job_name, tags=tags, run_config=run_config)
    seconds = time.perf_counter() - started
    print(f"  {label}: {'succeeded' if result.success else 'FAILED'} in {seconds:.1f} s")
    if not result.success:
        failures = [
            f"{e.step_key}: {e.event_specific_data.error.message.strip()}"  # type: ignore[union-attr]
            for e in result.all_events
            if e.is_step_failure
        ]
        raise SystemExit(f"{label} failed (run {result.run_id}):\n  " + "\n  ".join(failures))
    return result


def _materialization_metadata(result, asset: str) -> dict[str, object]:
    """Plain values of the metadata ``asset`` recorded in this run (last event wins)."""
    values: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key.to_user_string() == asset:
            values.update({k: v.value for k, v in materialization.metadata.items()})
    return values


def run_data_half(code_location, instance, settings: Settings, start: str, end: str) -> None:
    """Pull every month that ``start``..``end`` (UTC days) touches for every location, then
    build their frames in ONE run, then the newest month again on its own.

    A single-run backfill records its partitions' materializations in no particular order
    (Dagster keeps the run's partition keys in a set), so an asset's "latest
    materialization" would be an arbitrary month. The demo therefore pulls the newest month
    in a run of its own after the history, and ends with the newest month's frames
    recomputed alone, as the hourly tick does in production: each asset's latest event is
    then its newest partition. The frames run covers every month so each month is cleaned
    with both neighbouring months as context."""
    from airquality_assets.defs.data.jobs import FRAMES_JOB, INGESTION_JOB
    from airquality_assets.defs.partitions import range_tags

    first_month = date.fromisoformat(start).replace(day=1)
    last_month = date.fromisoformat(end).replace(day=1)
    locations = settings.location_names
    count = len(locations)

    def tags(first: date, last: date) -> dict[str, str]:
        return range_tags(first.isoformat(), last.isoformat(), locations)

    where = f"{count} location(s), months {first_month:%Y-%m}..{last_month:%Y-%m}"
    newest = f"{count} location(s), month {last_month:%Y-%m}"
    if last_month > first_month:
        history = (last_month - timedelta(days=1)).replace(day=1)
        label = f"raw pulls, {count} location(s), months {first_month:%Y-%m}..{history:%Y-%m}"
        _run(code_location, instance, INGESTION_JOB, tags(first_month, history), label)
    last = tags(last_month, last_month)
    _run(code_location, instance, INGESTION_JOB, last, f"raw pulls, {newest}")
    whole = tags(first_month, last_month)
    _run(code_location, instance, FRAMES_JOB, whole, f"hourly frames, {where}")
    if last_month > first_month:
        label = f"hourly frames, {newest} (the latest materialization)"
        _run(code_location, instance, FRAMES_JOB, last, label)


def run_training(code_location, instance, settings: Settings) -> None:
    """The model half in one run: tensors, grid search, evaluation, promotion gate."""
    from airquality_assets.defs.model.jobs import TRAINING_JOB

    result = _run(
        code_location, instance, TRAINING_JOB, {}, f"model half ({settings.profile} profile)"
    )
    evaluation = _materialization_metadata(result, "model_evaluation")
    for key in ("candidate", "test_rmse_mean", "rmse_ratio_vs_persistence", "rmse_ratio_vs_ridge"):
        if key in evaluation:
            value = evaluation[key]
            print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    for check in result.get_asset_check_evaluations():
        if check.passed:
            outcome = "passed"
        else:  # a WARN check informs; only an ERROR one means something is broken
            warn = check.severity.value == "WARN"
            outcome = "warning" if warn else "FAILED"
        detail = f": {check.description}" if check.description and not check.passed else ""
        print(f"  check {check.asset_key.to_user_string()}.{check.check_name}: {outcome}{detail}")
    decision = _materialization_metadata(result, "champion_model")
    if "reason" in decision:
        print(f"  promotion: {decision['reason']}")


def run_forecasts(code_location, instance, settings: Settings, day: date) -> None:
    """The loop's ``forecasts`` for ``day`` (every whole hour up to the clock) with the new
    champion, per location: what ``GET /forecast`` and the forecast page read, so both have
    something to show right after the demo (the schedule that issues them is off)."""
    from airquality_assets.defs.loop.jobs import FORECASTS_JOB

    for location in settings.location_names:
        key = f"{day.isoformat()}|{location}"
        result = _run(
            code_location, instance, FORECASTS_JOB, {"dagster/partition": key},
            f"forecasts, {key}",
        )  # fmt: skip
        issued = _materialization_metadata(result, "forecasts").get("issued")
        print(f"  forecasts issued for {key}: {issued} hour(s)")
        for check in result.get_asset_check_evaluations():
            outcome = "passed" if check.passed else check.severity.value
            print(f"  check forecasts.{check.check_name}: {outcome}: {check.description}")


def last_complete_day(settings: Settings) -> date:
    """The last UTC day wholly before the source's clock (and inside the partitions): a pull
    of the day in progress would store hours after "now" (Visual Crossing answers them with
    forecasts), which the freshness check rightly reports as data from the future."""
    last = settings.clock.now().date() - timedelta(days=1)
    if settings.end_date is not None:
        last = min(last, settings.end_date - timedelta(days=1))
    return last


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Every partition the deployment declares (all five bundled years by default): the
    # partitions the UI shows are then filled, and the model trains on three years.
    parser.add_argument("--start", default=settings.start_date.isoformat(), help="first UTC day")
    parser.add_argument(
        "--end",
        default=last_complete_day(settings).isoformat(),
        help="last UTC day (default: the last whole day before the source's clock)",
    )
    parser.add_argument(
        "--data-only", action="store_true", help="run only the data half (no training)"
    )
    args = parser.parse_args(argv)

    from airquality_assets.programs.local_runs import use_project_instance

    home = use_project_instance()
    import warnings

    import dagster as dg

    # Beta/preview notices about APIs this project chose on purpose are not for demo users.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)

    from airquality_assets.programs.local_runs import load_code_location

    print(f"airquality-assets demo: source={settings.source}, data in {settings.data_dir}")
    print(f"  DAGSTER_HOME={home}")
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    with load_code_location(instance, working_directory=str(project_root())) as location:
        run_data_half(location, instance, settings, args.start, args.end)
        if not args.data_only:
            run_training(location, instance, settings)
            day = date.fromisoformat(args.end)
            if day >= settings.forecasts_start:
                run_forecasts(location, instance, settings, day)
            else:  # an --end before the loop's first issue day: no such forecasts partition
                first = settings.forecasts_start
                print(f"  forecasts: {day} is before the loop's first issue day {first}")
                print("  (AIRQUALITY_FORECASTS_START_DATE sets it); none issued")
    print(f"done in {time.perf_counter() - started:.1f} s.")
    print("Look at it:")
    print(f"  Dagster UI:  DAGSTER_HOME={home} .venv/bin/dg dev   # http://127.0.0.1:3000")
    print(f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}")
    if not args.data_only:
        print("  serve:       bash scripts/serve.sh   # then the curl examples in the README")
    print(f"  files:       {settings.storage_root}/raw, {settings.storage_root}/frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
