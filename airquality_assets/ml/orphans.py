"""MLflow runs left RUNNING by Dagster runs that ended without closing them.

A step's own hooks end its MLflow runs, but not when the process was killed (run monitoring
fails the Dagster run later) or when MLflow was down as the step failed (the call that would
have ended the run failed too). :func:`end_orphaned_runs` is the sweep that settles them
once MLflow answers again: every RUNNING run whose Dagster run has ended badly gets that
outcome (FAILED, KILLED). Pure: the Dagster status of a run is asked through a function, so
this module needs neither Dagster nor a server (tests use a local SQLite store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airquality_assets.ml.links import TAG_RUN_ID
from airquality_assets.ml.tracking import DAGSTER_RUN_TAG

#: The MLflow status for a Dagster run status that means the run is over and did not succeed.
#: A run still going (or one that succeeded: its own hook ends its runs) is left alone.
MLFLOW_STATUS_OF = {"FAILURE": "FAILED", "CANCELED": "KILLED"}


@dataclass(frozen=True)
class Ended:
    mlflow_run_id: str
    dagster_run_id: str
    status: str  # FAILED or KILLED


def end_orphaned_runs(
    client: Any, experiment_id: str, dagster_status: Callable[[str], str | None]
) -> list[Ended]:
    """End every RUNNING MLflow run of ``experiment_id`` whose Dagster run (its
    ``dagster_run_id`` tag, or a candidate's ``dagster.run_id``) ``dagster_status`` says
    failed or was canceled; returns what it ended. ``dagster_status`` returns a Dagster
    ``DagsterRunStatus`` name, or None for a run it does not know (left RUNNING)."""
    ended: list[Ended] = []
    known: dict[str, str | None] = {}
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        dagster_run_id = tags.get(DAGSTER_RUN_TAG) or tags.get(TAG_RUN_ID)
        if not dagster_run_id:
            continue
        if dagster_run_id not in known:
            known[dagster_run_id] = dagster_status(dagster_run_id)
        status = MLFLOW_STATUS_OF.get(known[dagster_run_id] or "")
        if status is None:
            continue
        client.set_terminated(run.info.run_id, status=status)
        ended.append(Ended(run.info.run_id, dagster_run_id, status))
    return ended
