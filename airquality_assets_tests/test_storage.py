"""Raw bodies stored per (month, location) by the span of hours each request covered."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from airquality_assets.storage import (
    raw_month_bodies,
    raw_span,
    store_raw_span,
    stored_through,
)


def _h(day: int, hour: int) -> datetime:
    return datetime(2014, 12, day, hour, tzinfo=UTC)


def test_spans_order_supersede_and_stored_through(tmp_path: Path) -> None:
    month = date(2014, 12, 1)
    assert raw_month_bodies(tmp_path, "raw_air_quality", "x", month) == []
    assert stored_through(tmp_path, "raw_air_quality", "x", month) is None

    store_raw_span(tmp_path, "raw_air_quality", "x", _h(1, 0), _h(30, 5), b"history")
    store_raw_span(tmp_path, "raw_air_quality", "x", _h(30, 4), _h(30, 6), b"tick 1")
    store_raw_span(tmp_path, "raw_air_quality", "x", _h(30, 6), _h(30, 7), b"tick 2")
    bodies = raw_month_bodies(tmp_path, "raw_air_quality", "x", month)
    assert [p.read_bytes() for p in bodies] == [b"history", b"tick 1", b"tick 2"]
    assert raw_span(bodies[1]) == (_h(30, 4), _h(30, 6))
    assert stored_through(tmp_path, "raw_air_quality", "x", month) == _h(30, 7)

    # a re-pull of the whole month answers for every hour of all three: they are superseded
    store_raw_span(tmp_path, "raw_air_quality", "x", _h(1, 0), _h(31, 23), b"month")
    bodies = raw_month_bodies(tmp_path, "raw_air_quality", "x", month)
    assert [p.name for p in bodies] == ["2014-12-01T00_2014-12-31T23.json"]
    assert not list(bodies[0].parent.glob(".*.tmp"))
