"""``bento/example_request.json`` is what the program makes from the bundled data, and a
body the demo's champion (observations and the weather forecast) accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airquality_assets.programs.example_request import DEFAULT_OUT, demo_spec, main
from airquality_assets.serving.request import parse_request
from airquality_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_example_is_up_to_date(settings: Settings) -> None:  # noqa: ARG001
    assert main(["--check", "--out", str(ROOT / DEFAULT_OUT)]) == 0


def test_the_example_carries_the_forecast_after_its_last_observation(
    settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "example.json"
    assert main(["--out", str(out)]) == 0
    assert out.read_text() == (ROOT / DEFAULT_OUT).read_text()
    spec = demo_spec(settings)
    request = parse_request(out.read_bytes(), spec)
    assert spec.reads_forecast and request.forecast_hours == spec.forecast_hours == 24
    (entry,) = json.loads(out.read_text())["locations"]
    last = datetime.fromisoformat(entry["observations"][-1]["time"])
    assert last == datetime(2014, 12, 29, 23, tzinfo=UTC)
    assert [datetime.fromisoformat(h["time"]) for h in entry["forecast"]] == [
        last + timedelta(hours=h) for h in range(1, 25)
    ]
    # a forecast, not the observation: the stand-in's error moves the values
    assert entry["forecast"][0]["temp"] != entry["observations"][-1]["temp"] or (
        entry["forecast"][5]["pressure"] != entry["observations"][-1]["pressure"]
    )
    assert set(entry["forecast"][0]) == {"time", *spec.forecast_fields}


def test_a_stale_example_is_reported(settings: Settings, tmp_path: Path) -> None:  # noqa: ARG001
    stale = tmp_path / "example.json"
    stale.write_text('{"locations": []}\n')
    assert main(["--check", "--out", str(stale)]) == 1
