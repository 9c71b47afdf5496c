"""The data half's jobs run their steps in the run's own process (no process per step)."""

from __future__ import annotations

import dagster as dg
import pytest

from airquality_assets.definitions import defs as load_defs
from airquality_assets.defs.data.jobs import FRAMES_JOB, INGESTION_JOB


@pytest.mark.usefixtures("data_dir")
@pytest.mark.parametrize("job", [INGESTION_JOB, FRAMES_JOB])
def test_data_jobs_execute_in_process(job: str) -> None:
    """A launched run of these jobs (CLI, UI, schedule) must not start a Python process per
    step: each would import and load the definitions again."""
    executor = load_defs().resolve_job_def(job).executor_def
    assert executor.name == dg.in_process_executor.name
