"""Definitions a code server serves in ``test_run_monitoring``: a run that sleeps (its worker
gets killed) with a planned check, and an asset whose check fails (an alert to send)."""

import time

import dagster as dg


@dg.asset(check_specs=[dg.AssetCheckSpec("finished", asset="sleepy")])
def sleepy():
    time.sleep(600)
    yield dg.Output(1)
    yield dg.AssetCheckResult(passed=True)


@dg.asset(check_specs=[dg.AssetCheckSpec("plausible", asset="frame")])
def frame():
    yield dg.Output(1)
    yield dg.AssetCheckResult(passed=False, description="implausible")


# In process: the run worker is the only process to kill (no step subprocess left behind).
sleepy_job = dg.define_asset_job(
    "sleepy_job", selection=["sleepy"], executor_def=dg.in_process_executor
)
defs = dg.Definitions(assets=[sleepy, frame], jobs=[sleepy_job])
