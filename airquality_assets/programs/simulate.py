"""Watch the operating loop run: advance the replay clock day by day through part of 2014.

``bash scripts/simulate.sh --days 60`` (after ``bash scripts/demo.sh``) moves the replay
clock one simulated day at a time and lets the real schedules, sensors and assets do the
rest: each day it evaluates the schedules (``build_schedule_context``) and sensors
(``build_sensor_context``) against the project's Dagster instance, exactly the functions the
daemon calls, records each evaluation as a tick (``programs.ticks``), and executes every run
they request with that instance, created from the code location's job (``local_runs``), so
runs (under their jobs and on the timeline), ticks, asset
materializations, check results, MLflow runs and bentos land where ``dagster dev`` and the
MLflow UI show them. Alerts go to a receiver this command starts on 127.0.0.1 (and to
``--alert-urls`` as well), which counts what arrives. A fault can be injected from a given
day (``--fault``).

A simulation is a deployment of its own, in one folder (``--dir``, by default
``<data dir>/simulation``) emptied at every start: the pulled history, frames and forecasts,
the MLflow registry with the artifacts it points to, the BentoML store and the Dagster
instance. The same command run twice therefore gives the same timeline, and no registry
alias is ever left pointing at deleted artifacts. A failed run of any job shows in the
timeline and makes the command exit with status 1.

Per simulated day D (clock in UTC):

1. 23:05  ``hourly_ingestion_schedule``  -> ingestion of day D (the replay source answers
   up to the clock; a fault, if any, is applied by the source);
2.        the frames of D's month (what the eager automation condition does in a deployment;
   here requested directly, see docs/operations.md);
3. 23:10  ``hourly_forecast_schedule``   -> ``forecasts`` of (D, location): the 24 hourly
   forecasts of the day, each from the observations up to its issue hour;
   then ``pollution_alert_sensor`` on the day's newest forecast (subscribers' alerts go to
   the same receiver, under ``/subscribers``);
4. D+1 00:30 ``daily_monitoring_schedule`` -> ``forecast_accuracy`` and ``drift_report``;
5.        ``check_alert_sensor`` and ``retraining_sensor``; a requested retrain runs the
   model half at this clock.

Schedules are evaluated once per simulated day at their last tick of the day: the forecast
run issues every hour of the day not yet issued, so one evaluation stands for 24 ticks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from typing_extensions import override

from airquality_assets.monitoring.alerts import parse_urls
from airquality_assets.settings import Settings

FAULTS = ("recalibration", "stuck", "fahrenheit")
SIM_MODEL_NAME = "airquality-lstm-sim"
SIM_EXPERIMENT = "airquality-simulation"
SIMULATION_TAG = "airquality/simulation_id"
#: Which step of the simulation launched a run (the daemon's own runs carry a sensor's name).
STEP_TAG = "airquality/simulation"
LOG_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: Every step in this process, as ``execute_in_process`` would (no process per step).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


RECEIVED: list[dict] = []


def pollution_alerts(received: list[dict]) -> list[dict]:
    """The subscribers' high-pollution alerts among what the receiver got."""
    return [a for a in distinct_alerts(received) if str(a.get("title", "")).startswith(
        "Air quality alert")]  # fmt: skip


def distinct_alerts(received: list[dict]) -> list[dict]:
    """The alerts as the receiver got them, a redelivery counted once (Apprise resends to
    every URL when one of several failed)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for alert in received:
        key = (str(alert.get("title")), str(alert.get("message")))
        if key not in seen:
            seen.add(key)
            out.append(alert)
    return out


class _Receiver(BaseHTTPRequestHandler):
    """A stand-in alert channel: records every JSON body Apprise posts."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            RECEIVED.append(json.loads(body))
        except ValueError:
            RECEIVED.append({"raw": body.decode(errors="replace")})
        self.send_response(200)
        self.end_headers()

    @override
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


def start_receiver() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"json://127.0.0.1:{server.server_address[1]}/alerts"


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    runs: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, what: str, seconds: float, runs: int = 1) -> None:
        self.seconds[what] += seconds
        self.runs[what] += runs


def _merge(*configs: dict) -> dict:
    out: dict = {}
    for config in configs:
        for key, value in config.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge(out[key], value)
            else:
                out[key] = value
    return out


def retrain_outcome(result) -> dict:
    """What a retraining run decided, for the timeline: promoted or not, both models' scores
    on the gate's window, and the bento it built (the champion's, new only when promoted)."""
    if not result.success:
        return {"promoted": "run failed"}
    from airquality_assets.programs.run_outcomes import champion_decision

    decision = champion_decision(result)
    if decision is None:
        return {"promoted": "no champion_model"}
    champion = decision.champion_score
    scores = "no champion"
    if champion is not None:
        scores = f"{decision.candidate_score:.1f} vs {champion:.1f}"
    evidence = dict(decision.evidence)
    if "gate_p_better" in evidence:
        from airquality_assets.ml.significance import format_p

        scores += (
            f", p {format_p(float(evidence['gate_p_better']))}, "
            f"{evidence['gate_windows_used']} of {evidence['gate_windows']} windows clean"
        )
    outcome = {
        "promoted": f"{'yes' if decision.promoted else 'no'} ({scores})",
        "version": decision.new_version,
        "gate": decision.reason,
    }
    for event in result.get_asset_materialization_events():
        if event.asset_key and event.asset_key.path[-1] == "bento":
            metadata = event.materialization.metadata  # type: ignore[union-attr]
            outcome["bento"] = str(getattr(metadata["bento_tag"], "value", metadata["bento_tag"]))
            outcome["bento_rebuilt"] = bool(getattr(metadata["rebuilt"], "value", False))
    return outcome


def forecasts_issued(results) -> str:
    """The timeline's "forecasts issued (model)" cell: how many, by which version, and how
    many with a filled input; FAILED when a forecast run failed."""
    issued, filled, models = 0, 0, set()
    for result in results:
        if not result.success:
            return "FAILED"
        for m in result.get_asset_materialization_events():
            metadata = m.materialization.metadata  # type: ignore[union-attr]
            issued += int(metadata["issued"].value)
            if "issued_with_filled_inputs" in metadata:
                filled += int(metadata["issued_with_filled_inputs"].value)
            if "model" in metadata:
                models.add(str(metadata["model"].value).rsplit(" ", 1)[-1])
    text = f"{issued} ({', '.join(sorted(models))})" if models else str(issued)
    return f"{text}, {filled} filled" if filled else text


class Simulation:
    def __init__(self, args: argparse.Namespace) -> None:
        import dagster as dg

        from airquality_assets.definitions import defs as load_defs

        self.dg = dg
        self.args = args
        self.defs = load_defs()
        self.repository = self.defs.get_repository_def()
        self.instance = dg.DagsterInstance.get()
        # Runs created from the code location's jobs (so the UI files them under their jobs
        # and on the timeline) and ticks filed under its schedules and sensors.
        from contextlib import ExitStack

        from airquality_assets.programs.local_runs import load_code_location

        self.exit_stack = ExitStack()
        self.location = self.exit_stack.enter_context(load_code_location(self.instance))
        self.timings = Timings()
        self.fault_start = args.start + timedelta(days=args.fault_day) if args.fault else None
        self.retrains: list[dict] = []
        self.failures: list[str] = []
        """Every failed run, as ``<what> <date>: <error>``: the command then exits 1."""
        self.simulation_id = uuid.uuid4().hex[:8]

    # ------------------------------------------------------------------ clock and config
    def clock_config(self, now: datetime) -> dict:
        """Run config moving the run's clock: the whole ``deployment`` resource config (run
        config replaces a resource's config as a whole) with ``replay_now`` at ``now``."""
        return {"resources": {"deployment": {"config": self.deployment_at(now).run_config()}}}

    def fault_config(self) -> dict:
        if not self.args.fault:
            return {}
        fault = {"fault": self.args.fault, "fault_start": self.fault_start.isoformat()}
        return {
            "resources": {
                "air_pollution_source": {"config": fault},
                "weather_source": {"config": fault},
            }
        }

    def deployment_at(self, now: datetime):
        return self.defs.resources["deployment"].at(now)  # type: ignore[index]

    def resources_for(self, definition, now: datetime) -> dict:
        """The resources a schedule or sensor asks for, the deployment's at clock ``now``
        (only those: initialising the others, e.g. dagster-mlflow's run, has effects)."""
        wanted = set(definition.required_resource_keys)
        resources = {k: v for k, v in self.defs.resources.items() if k in wanted}  # type: ignore[union-attr]
        if "deployment" in wanted:
            resources["deployment"] = self.deployment_at(now)
        return resources

    # ------------------------------------------------------------------ execution
    def execute(
        self,
        job_name: str,
        request,
        now: datetime,
        origin: str,
        what: str,
        extra_config: dict | None = None,
    ):
        """Execute a run request the way the daemon would launch it, with this instance."""
        from airquality_assets.programs.local_runs import run_job

        tags = dict(request.tags or {})
        if request.run_key:
            tags["dagster/run_key"] = request.run_key
        tags[origin[0]] = origin[1]
        tags[SIMULATION_TAG] = self.simulation_id
        from airquality_assets.defs.loop.jobs import CLOCK_TAG

        tags.setdefault(CLOCK_TAG, now.isoformat())  # the simulated clock, shown on the run
        # The data jobs already run in one process (their executor takes no such choice).
        executor = self.defs.resolve_job_def(job_name).executor_def
        run_config = _merge(
            LOG_CONFIG,
            {} if executor.name == "in_process" else IN_PROCESS,
            request.run_config or {},
            self.clock_config(now),
            extra_config or {},
        )
        started = time.perf_counter()
        result = run_job(
            self.location,
            self.instance,
            job_name,
            tags=tags,
            run_config=run_config,
            partition_key=request.partition_key,
        )
        self.timings.add(what, time.perf_counter() - started)
        if not result.success:
            from airquality_assets.defs.loop.alerts import root_cause

            failures = [
                f"{e.step_key}: {root_cause(e.event_specific_data.error)[:300]}"  # type: ignore[union-attr]
                for e in result.all_events
                if e.is_step_failure
            ]
            print(f"    {what} run {result.run_id[:8]} FAILED: {'; '.join(failures)}")
            self.failures.append(f"{what} at {now:%Y-%m-%d %H:%M}: {'; '.join(failures)}")
        return result

    def already_ran(self, run_key: str) -> bool:
        """The daemon never launches a run key twice; a simulation is its own deployment."""
        tags = {"dagster/run_key": run_key, SIMULATION_TAG: self.simulation_id}
        runs = self.instance.get_runs(filters=self.dg.RunsFilter(tags=tags), limit=1)
        return bool(runs)

    def tick_schedule(self, name: str, now: datetime, what: str, extra_config: dict | None = None):
        schedule = self.defs.resolve_schedule_def(name)
        started = time.perf_counter()
        with self.dg.build_schedule_context(
            instance=self.instance,
            # The tick happens in wall time, as in a deployment; the replay clock (the
            # deployment resource) is the simulated one. Partitions are validated against
            # the tick's time, and every bundled day is complete in wall time.
            scheduled_execution_time=datetime.now(UTC),
            # Every resource the schedule asks for (the ingestion schedule reads the raw
            # store to find the forecast issues not pulled yet), the clock at ``now``.
            resources=self.resources_for(schedule, now),
            repository_def=self.repository,
        ) as context:
            try:
                data = schedule.evaluate_tick(context)
            except Exception as error:
                self.record_tick("schedule", name, error=error)
                raise
        self.timings.add("schedule evaluation", time.perf_counter() - started)
        results = []
        for request in data.run_requests or []:
            if request.run_key and self.already_ran(request.run_key):
                continue  # the daemon skips a run key it has launched before
            results.append(
                self.execute(
                    schedule.job_name,
                    request,
                    now,
                    ("dagster/schedule_name", name),
                    what,
                    extra_config,
                )
            )
        self.record_tick("schedule", name, data, results)
        return results

    def record_tick(self, kind: str, name: str, data=None, results=(), error=None) -> None:
        """File the evaluation as a tick of ``name``, as the daemon does (``programs.ticks``)."""
        from airquality_assets.programs.ticks import record_tick

        record_tick(
            self.instance,
            self.location,
            kind,
            name,
            datetime.now(UTC),  # the tick's wall time, as its runs' (see tick_schedule)
            run_ids=[r.run_id for r in results],
            run_keys=[r.run_key for r in (data.run_requests or []) if r.run_key] if data else [],
            skip_reason=(data.skip_message if data else None)
            or (None if results else "no run requested"),
            cursor=getattr(data, "cursor", None),
            error=error,
        )

    def tick_sensor(self, name: str, now: datetime):
        sensor = self.defs.resolve_sensor_def(name)
        cursor = self.cursors.get(name)
        started = time.perf_counter()
        resources = self.resources_for(sensor, now)
        with self.dg.build_sensor_context(
            instance=self.instance, cursor=cursor, resources=resources, definitions=self.defs
        ) as context:
            try:
                data = sensor.evaluate_tick(context)
            except Exception as error:
                self.record_tick("sensor", name, error=error)
                raise
        self.timings.add("sensor evaluation", time.perf_counter() - started)
        self.cursors[name] = data.cursor
        requests = [
            r for r in (data.run_requests or []) if not (r.run_key and self.already_ran(r.run_key))
        ]
        if not requests:  # else the caller records the tick with the runs it launched
            self.record_tick("sensor", name, data)
        return data, requests

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        settings = self.defs.resources["deployment"].settings  # type: ignore[index]
        self.cursors: dict[str, str | None] = {}  # a simulation starts its sensors afresh
        start = self.args.start
        print(
            f"simulation {self.simulation_id} (runs tagged {SIMULATION_TAG}="
            f"{self.simulation_id}): {self.args.days} days from {start:%Y-%m-%d}, model "
            f"{settings.model_name!r}, fault: "
            + (f"{self.args.fault} from {self.fault_start:%Y-%m-%d}" if self.args.fault else "none")
        )
        self.prepare_history(start)
        self.bootstrap(start)
        print()
        print(
            "| day | date | forecasts issued (model) | 7-day RMSE (model / persistence) | drift "
            "| alerts sent | retrain requested | promoted |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for d in range(self.args.days):
            self.day(d, start + timedelta(days=d))
        return 0

    def prepare_history(self, start: datetime) -> None:
        """The simulation's own world: raw pulls and frames of every month up to ``start``,
        pulled at the start clock into the simulation's folder. The demo's files already
        hold all of 2014, and a pull never re-fetches stored hours, so simulating on them
        would inject no fault."""
        from airquality_assets.defs.data.jobs import FRAMES_JOB, INGESTION_JOB
        from airquality_assets.defs.partitions import range_tags

        settings = self.defs.resources["deployment"].settings  # type: ignore[index]
        first = settings.start_date.replace(day=1)
        last = start.date().replace(day=1)
        print(f"  pulling and framing the history {first:%Y-%m}..{last:%Y-%m} into "
              f"{settings.storage_root} ...")  # fmt: skip
        tags = range_tags(first.isoformat(), last.isoformat(), settings.location_names)
        for job, what in ((INGESTION_JOB, "history pulls"), (FRAMES_JOB, "history frames")):
            request = self.dg.RunRequest(tags=tags)
            result = self.execute(job, request, start, (STEP_TAG, what), what)
            if not result.success:
                raise SystemExit(f"{what} failed: the simulation needs the history first")

    def bootstrap(self, start: datetime) -> None:
        """The loop needs a champion trained before the simulated period: train one at a
        clock ``--champion-age-days`` before ``start`` (a deployed champion is rarely fresh;
        the moving split keeps its test window before that clock)."""
        from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG
        from airquality_assets.defs.model.jobs import TRAINING_JOB

        mlflow = self.defs.resources["mlflow"]  # type: ignore[index]
        mlflow.setup_for_execution(None)  # type: ignore[arg-type]
        clock = start - timedelta(days=self.args.champion_age_days)
        print(f"  training the first champion at clock {clock:%Y-%m-%d %H:%M} ...")
        result = self.execute(
            TRAINING_JOB,
            self.dg.RunRequest(tags={RETRAIN_REASON_TAG: "bootstrap"}),
            clock,
            (STEP_TAG, "bootstrap"),
            "training (bootstrap)",
        )
        from airquality_assets.programs.run_outcomes import champion_decision

        decision = champion_decision(result) if result.success else None
        print(f"  bootstrap: {decision.reason if decision else 'FAILED'}")

    def day(self, d: int, day_start: datetime) -> None:
        from airquality_assets.defs.loop.jobs import RETRAIN_REASON_TAG
        from airquality_assets.defs.model.jobs import TRAINING_JOB

        end_of_day = day_start + timedelta(hours=23, minutes=5)
        self.tick_schedule(
            "hourly_ingestion_schedule", end_of_day, "ingestion", self.fault_config()
        )
        self.frames(day_start, end_of_day)
        at = day_start + timedelta(hours=23, minutes=10)
        forecast_runs = self.tick_schedule("hourly_forecast_schedule", at, "forecasts")
        issued_text = forecasts_issued(forecast_runs)
        pollution_before = len(pollution_alerts(RECEIVED))
        self.tick_sensor("pollution_alert_sensor", at)  # the day's newest forecast (23:00)
        pollution = pollution_alerts(RECEIVED)[pollution_before:]
        morning = day_start + timedelta(days=1, minutes=30)
        monitoring = self.tick_schedule("daily_monitoring_schedule", morning, "monitoring")
        monitoring_failed = any(not r.success for r in monitoring)
        alerts_before = len(distinct_alerts(RECEIVED))
        self.tick_sensor("check_alert_sensor", morning)
        self.tick_sensor("run_failure_sensor", morning)
        self.tick_sensor("mlflow_run_sweep_sensor", morning)  # a failed run's MLflow runs
        retrain_tick, requests = self.tick_sensor("retraining_sensor", morning)
        requested = promoted = ""
        retrain_runs = []
        for request in requests:
            requested = request.tags.get(RETRAIN_REASON_TAG, "yes")
            result = self.execute(
                TRAINING_JOB,
                request,
                morning,
                ("dagster/sensor_name", "retraining_sensor"),
                "training",
            )
            retrain_runs.append(result)
            outcome = retrain_outcome(result)
            promoted = outcome["promoted"]
            self.tick_sensor("check_alert_sensor", morning)
            self.tick_sensor("run_failure_sensor", morning)
            self.tick_sensor("mlflow_run_sweep_sensor", morning)  # a failed run's MLflow runs
            self.retrains.append(
                {"day": d + 1, "date": f"{day_start:%Y-%m-%d}", "reason": requested, **outcome}
            )
        if requests:
            self.record_tick("sensor", "retraining_sensor", retrain_tick, retrain_runs)
        accuracy = self.latest("forecast_accuracy")
        drift = self.latest("drift_report")
        rmse = accuracy.get("rmse_7d_mean")
        persistence = accuracy.get("persistence_rmse_7d_mean")
        rmse_text = (
            f"{rmse:.1f} / {persistence:.1f}"
            if isinstance(rmse, float) and rmse == rmse
            else "not enough data"
        )
        score = drift.get("drift_score")
        drift_text = (
            f"{drift.get('status', '-')} ({score:.2f})"
            if isinstance(score, float) and score == score
            else str(drift.get("status", "-"))
        )
        if monitoring_failed:  # never the previous day's figures as if they were today's
            rmse_text = drift_text = "FAILED"
        fault = " (fault)" if self.fault_active(day_start) else ""
        alerts = len(distinct_alerts(RECEIVED)) - alerts_before
        sent = f"{alerts}"
        if pollution:  # subscribers' alerts, sent at 23:10, before the morning's check alerts
            sent = f"{alerts} + " + ", ".join(a["title"].split(": ", 1)[-1] for a in pollution)
        print(
            f"| {d + 1} | {day_start:%Y-%m-%d}{fault} | {issued_text} | {rmse_text} | "
            f"{drift_text} | {sent} | {requested or '-'} | {promoted or '-'} |",
            flush=True,
        )

    def fault_active(self, day_start: datetime) -> bool:
        """Whether the injected fault touches any hour of the day (a stuck sensor: 48 h)."""
        if not self.fault_start:
            return False
        import numpy as np

        from airquality_assets.monitoring.faults import Fault

        hours = np.arange(24) * 3600 + int(day_start.timestamp())
        return bool(Fault(self.args.fault, self.fault_start).affects(hours).any())

    def frames(self, day_start: datetime, now: datetime) -> None:
        from airquality_assets.defs.data.jobs import FRAMES_JOB

        month = day_start.replace(day=1).strftime("%Y-%m-%d")
        location_names = self.defs.resources["deployment"].settings.location_names  # type: ignore[index]
        for location in location_names:
            key = self.dg.MultiPartitionKey({"date": month, "location": location})
            self.execute(
                FRAMES_JOB,
                self.dg.RunRequest(partition_key=key),
                now,
                (STEP_TAG, "frames after ingestion"),
                "frames",
            )

    def latest(self, asset: str) -> dict:
        event = self.instance.get_latest_materialization_event(self.dg.AssetKey(asset))
        if event is None or event.asset_materialization is None:
            return {}
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


INSTANCE_YAML = """# The simulation's own Dagster instance, written at each start.
storage:
  sqlite:
    base_dir: {base}
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {base}
compute_logs:
  module: dagster._core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {base}/logs
telemetry:
  enabled: false
"""
#: Settings that would put part of the simulation's world elsewhere: it keeps them together.
ELSEWHERE = ("AIRQUALITY_STORAGE_URL", "MLFLOW_TRACKING_URI", "BENTOML_HOME")


def own_world(directory: Path) -> Path:
    """Empty ``directory`` and make it the simulation's whole deployment: the data dir
    (history, frames, forecasts, MLflow registry and artifacts, BentoML store) and the
    Dagster instance under ``dagster_home/``. Returns the Dagster home."""
    if directory.exists():
        shutil.rmtree(directory)
    home = directory / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(base=home.resolve().as_posix()))
    for name in ELSEWHERE:
        os.environ.pop(name, None)
    os.environ["AIRQUALITY_DATA_DIR"] = str(directory.resolve())
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--start", default="2014-03-01", help="first simulated UTC day")
    parser.add_argument("--fault", choices=FAULTS, help="inject a fault from --fault-day")
    parser.add_argument("--fault-day", type=int, default=20, help="day of the fault (0-based)")
    parser.add_argument(
        "--alert-urls",
        default=None,
        help="more Apprise URLs for the alerts (a receiver on 127.0.0.1 always gets and "
        "counts them)",
    )
    parser.add_argument(
        "--champion-age-days",
        type=int,
        default=60,
        help="train the first champion at this many days before --start (default 60)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="the simulation's own deployment, emptied at each start (default: "
        "<data dir>/simulation)",
    )
    args = parser.parse_args(argv)
    args.start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)

    directory = args.dir or Settings.from_env().data_dir / "simulation"
    home = own_world(directory)
    os.environ.setdefault("AIRQUALITY_MODEL_NAME", SIM_MODEL_NAME)
    os.environ.setdefault("AIRQUALITY_EXPERIMENT", SIM_EXPERIMENT)
    os.environ["AIRQUALITY_REPLAY_NOW"] = args.start.isoformat()
    server, url = start_receiver()
    os.environ["AIRQUALITY_ALERT_URLS"] = ",".join([url, *parse_urls(args.alert_urls)])
    print(f"alerts: local receiver {url}" + (f" and {args.alert_urls}" if args.alert_urls else ""))
    os.environ["AIRQUALITY_SUBSCRIBER_ALERT_URLS"] = url.replace("/alerts", "/subscribers")
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    started = time.perf_counter()
    simulation = Simulation(args)
    code = simulation.run()
    total = time.perf_counter() - started
    print(f"\nsimulated {args.days} days in {total / 60:.1f} min; where the time went:")
    for what, seconds in sorted(simulation.timings.seconds.items(), key=lambda kv: -kv[1]):
        runs = simulation.timings.runs[what]
        print(f"  {what:24s} {seconds:7.1f} s  ({runs} x, {seconds / max(runs, 1):.2f} s each)")
    print(f"retrains: {len(simulation.retrains) or 'none'}")
    for retrain in simulation.retrains:
        bento = retrain.get("bento")
        built = (
            f"; bento {bento} ({'new' if retrain.get('bento_rebuilt') else 're-used'})"
            if bento
            else ""
        )
        print(
            f"  - day {retrain['day']} ({retrain['date']}): {retrain['reason']}; promoted: "
            f"{retrain['promoted']}; registered v{retrain.get('version', '-')}{built}"
        )
        if retrain.get("gate"):
            print(f"    gate: {retrain['gate']}")
    received = distinct_alerts(RECEIVED)
    pollution = pollution_alerts(RECEIVED)
    print(f"high-pollution alerts to subscribers: {len(pollution)}")
    for alert in pollution:
        print(f"  - {alert.get('title')}: {alert.get('message')}")
    print(f"alerts received: {len(received)}")
    for alert in received:
        print(f"  - {alert.get('title', alert)}")
    print(f"failed runs: {len(simulation.failures) or 'none'}")
    for failure in simulation.failures:
        print(f"  - {failure[:300]}")
    print(
        f"\nlook at it: DAGSTER_HOME={home} .venv/bin/dg dev; .venv/bin/mlflow ui "
        f"--backend-store-uri sqlite:///{directory.resolve() / 'mlflow.db'}"
    )
    server.shutdown()
    simulation.exit_stack.close()
    return 1 if simulation.failures else code


if __name__ == "__main__":
    sys.exit(main())
