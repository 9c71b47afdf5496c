"""The "see it run" command, end to end on a short history: schedules and sensors evaluated
against a real instance, a stuck sensor caught the next morning, one retrain run, alerts at
the local receiver, and the timeline and summary it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_stuck_sensor_is_alerted_and_retrained_on(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command in a process of its own, as a user runs it (BentoML, MLflow and Keras keep
    # process-wide state that earlier tests would otherwise have set). It keeps its whole
    # deployment, Dagster instance included, in <data dir>/simulation.
    env = {
        **os.environ,
        "AIRQUALITY_START_DATE": "2013-01-01",  # a short history: training takes seconds
    }
    args = ["--days", "3", "--fault", "stuck", "--fault-day", "0", "--champion-age-days", "59"]
    done = subprocess.run(
        [sys.executable, "-m", "airquality_assets.programs.simulate", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    out = done.stdout
    print(out, done.stderr[-3000:])  # shown by pytest if an assertion below fails
    assert done.returncode == 0
    rows = [line for line in out.splitlines() if line.startswith("| ") and "2014-03" in line]
    assert [row.split(" | ")[1] for row in rows] == ["2014-03-01 (fault)", "2014-03-02 (fault)",
                                                     "2014-03-03"]  # fmt: skip
    # Stuck from 03-01 00:00: 24 frozen hours by the next morning's drift report.
    first = rows[0].split(" | ")
    assert first[4].startswith("error") and first[6] == "drift", first
    assert first[7].startswith(("yes (", "no (")), first  # the gate's two scores
    assert [row.split(" | ")[6] for row in rows[1:]] == ["-", "-"]  # one run per episode
    # The next day's forecasts come from whichever version the gate left as champion.
    after = "24 (v2)" if first[7].startswith("yes") else "24 (v1)"
    assert [row.split(" | ")[2] for row in rows] == ["24 (v1)", after, after]
    assert "retrains: 1" in out and "; bento airquality-forecast:" in out

    home = data_dir / "simulation" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    retrains = instance.get_runs(
        filters=dg.RunsFilter(
            job_name="training", tags={"dagster/sensor_name": "retraining_sensor"}
        )
    )
    assert len(retrains) == 1 and retrains[0].is_success
    assert retrains[0].tags["airquality/retrain_reason"] == "drift"
    assert "stuck 25 h" in retrains[0].tags["airquality/retrain_detail"]

    alerts = out[out.index("alerts received:") :]
    assert alerts.count("- ERROR check failed: drift_report.drift_within_limits") == 1, alerts


def test_the_summary_tells_subscribers_alerts_from_the_operators() -> None:
    """The receiver gets both kinds; the subscribers' are counted apart, each once."""
    from airquality_assets.programs.simulate import pollution_alerts

    received = [
        {"title": "Air quality alert: beijing Poor (band 4)", "message": "a"},
        {"title": "Air quality alert: beijing Poor (band 4)", "message": "a"},  # redelivery
        {"title": "forecasts_issued failed on forecasts", "message": "b"},
        {"title": "Air quality alert over: beijing", "message": "c"},
    ]
    assert [a["message"] for a in pollution_alerts(received)] == ["a", "c"]
