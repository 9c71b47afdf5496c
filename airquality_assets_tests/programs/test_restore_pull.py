"""The restore command lists a month's kept pulls and brings one back."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from airquality_assets.programs.restore_pull import main
from airquality_assets.settings import Settings
from airquality_assets.storage import raw_month_bodies, raw_pulls, store_raw_span

MARCH = date(2014, 3, 1)


def test_a_month_is_restored_to_an_earlier_pull(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first, last = datetime(2014, 3, 1, tzinfo=UTC), datetime(2014, 3, 31, 23, tzinfo=UTC)
    for body in (b"earlier pull", b"later pull"):
        store_raw_span(settings.data_dir, "raw_weather", "beijing", first, last, body)
    assert main(["raw_weather", "beijing", "2014-03"], settings=settings) == 0
    (pull,) = raw_pulls(settings.data_dir, "raw_weather", "beijing", MARCH)
    assert f"kept pull: {pull}" in capsys.readouterr().out
    assert main(["raw_weather", "beijing", "2014-03", "--pull", pull], settings=settings) == 0
    (body,) = raw_month_bodies(settings.data_dir, "raw_weather", "beijing", MARCH)
    assert body.read_bytes() == b"earlier pull"
    assert main(["raw_weather", "beijing", "2014-03", "--pull", "nope"], settings=settings) == 1
