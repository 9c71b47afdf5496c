"""The "see it run" command, end to end on a short history: schedules and sensors evaluated
against a real instance, a stuck sensor caught the next morning, one retrain run, alerts at
the local receiver, and the timeline and summary it prints."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from airquality_assets import simulate


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_stuck_sensor_is_alerted_and_retrained_on(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Everything the command sets goes through monkeypatch first, so it is undone afterwards.
    for name, value in {
        "DAGSTER_HOME": str(home),
        "AIRQUALITY_START_DATE": "2013-01-01",  # a short history: training takes seconds
        "AIRQUALITY_STORAGE_URL": (data_dir / "simulation").resolve().as_uri(),
        "AIRQUALITY_MODEL_NAME": simulate.SIM_MODEL_NAME,
        "AIRQUALITY_EXPERIMENT": simulate.SIM_EXPERIMENT,
        "AIRQUALITY_REPLAY_NOW": "2014-03-01T00:00:00+00:00",
        "AIRQUALITY_ALERT_URLS": "set by the command",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(simulate, "RECEIVED", [])

    code = simulate.main(
        ["--days", "3", "--fault", "stuck", "--fault-day", "0", "--champion-age-days", "59"]
    )

    out = capsys.readouterr().out
    assert code == 0
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

    instance = dg.DagsterInstance.get()
    retrains = instance.get_runs(
        filters=dg.RunsFilter(
            job_name="training", tags={"dagster/sensor_name": "retraining_sensor"}
        )
    )
    assert len(retrains) == 1 and retrains[0].is_success
    assert retrains[0].tags["airquality/retrain_reason"] == "drift"
    assert "stuck 25 h" in retrains[0].tags["airquality/retrain_detail"]

    titles = [alert.get("title", "") for alert in simulate.RECEIVED]
    assert titles.count("ERROR check failed: drift_report.drift_within_limits") == 1, titles
    assert f"alerts received: {len(titles)}" in out
