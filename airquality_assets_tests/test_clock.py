"""The clock: one owner of "now" for replay and live deployments."""

from __future__ import annotations

from datetime import UTC, datetime

from airquality_assets.clock import REPLAY_DEFAULT_NOW, Clock, to_utc
from airquality_assets.settings import Settings


def test_replay_clock_stands_still_and_ignores_wall_time() -> None:
    clock = Clock(replay_now=datetime(2013, 5, 1, 12, tzinfo=UTC))
    assert clock.is_replay
    assert clock.now() == clock.now(wall=datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2013, 5, 1, 12, tzinfo=UTC)


def test_wall_clock_uses_the_callers_wall_time_or_now() -> None:
    clock = Clock()
    assert not clock.is_replay
    tick = datetime(2026, 3, 1, 5, 5, tzinfo=UTC)
    assert clock.now(wall=tick) == tick
    before = datetime.now(UTC)
    assert before <= clock.now() <= datetime.now(UTC)


def test_instants_are_normalised_to_utc() -> None:
    assert to_utc("2014-01-01T08:00:00+08:00") == datetime(2014, 1, 1, tzinfo=UTC)
    assert to_utc("2014-01-01T00:00:00") == datetime(2014, 1, 1, tzinfo=UTC)
    assert Clock(replay_now=datetime(2014, 1, 1)).now().tzinfo == UTC


def test_settings_choose_the_clock_by_source(tmp_path) -> None:
    replay = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path)})
    assert replay.clock.now() == REPLAY_DEFAULT_NOW
    live = Settings.from_env({"AIRQUALITY_DATA_DIR": str(tmp_path), "AIRQUALITY_SOURCE": "live"})
    assert not live.clock.is_replay
