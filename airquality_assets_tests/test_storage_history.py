"""Superseded raw pulls are kept, bounded by the retention setting, and can be restored;
a partition's content hash is its data version."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from airquality_assets import storage
from airquality_assets.storage import (
    prune_raw_history,
    raw_month_bodies,
    raw_month_digest,
    raw_pulls,
    restore_raw_pull,
    store_raw_issue,
    store_raw_span,
)

MARCH = date(2014, 3, 1)
FIRST, LAST = datetime(2014, 3, 1, 0, tzinfo=UTC), datetime(2014, 3, 31, 23, tzinfo=UTC)


def _current(base: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in raw_month_bodies(base, "raw_weather", "x", MARCH)}


def _pull(base: Path, body: bytes, keep: int | None = None) -> None:
    store_raw_span(base, "raw_weather", "x", FIRST, LAST, body, history_keep=keep)


def test_a_superseding_pull_keeps_the_covered_bodies_in_history(tmp_path: Path) -> None:
    piece = datetime(2014, 3, 1, 5, tzinfo=UTC)
    store_raw_span(tmp_path, "raw_weather", "x", FIRST, piece, b"hours 0-5")
    _pull(tmp_path, b"whole month")
    assert _current(tmp_path) == {"2014-03-01T00_2014-03-31T23.json": b"whole month"}
    (pull,) = raw_pulls(tmp_path, "raw_weather", "x", MARCH)
    kept = storage.raw_history_dir(tmp_path, "raw_weather", "x", MARCH) / pull
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == {
        "2014-03-01T00_2014-03-01T05.json": b"hours 0-5"
    }


def test_an_identical_re_pull_changes_nothing_and_keeps_the_digest(tmp_path: Path) -> None:
    _pull(tmp_path, b"same")
    before = raw_month_digest(tmp_path, "raw_weather", "x", MARCH)
    _pull(tmp_path, b"same")
    assert raw_pulls(tmp_path, "raw_weather", "x", MARCH) == []
    assert raw_month_digest(tmp_path, "raw_weather", "x", MARCH) == before
    _pull(tmp_path, b"changed")
    assert raw_month_digest(tmp_path, "raw_weather", "x", MARCH) != before
    assert len(raw_pulls(tmp_path, "raw_weather", "x", MARCH)) == 1


def test_restoring_a_pull_brings_its_bodies_back_and_keeps_the_current_ones(
    tmp_path: Path,
) -> None:
    _pull(tmp_path, b"first")
    first = raw_month_digest(tmp_path, "raw_weather", "x", MARCH)
    _pull(tmp_path, b"second")
    (older,) = raw_pulls(tmp_path, "raw_weather", "x", MARCH)
    restore_raw_pull(tmp_path, "raw_weather", "x", MARCH, older)
    assert list(_current(tmp_path).values()) == [b"first"]
    assert raw_month_digest(tmp_path, "raw_weather", "x", MARCH) == first
    (undo,) = raw_pulls(tmp_path, "raw_weather", "x", MARCH)  # the restore is undoable
    restore_raw_pull(tmp_path, "raw_weather", "x", MARCH, undo)
    assert list(_current(tmp_path).values()) == [b"second"]
    with pytest.raises(FileNotFoundError, match="no kept pull"):
        restore_raw_pull(tmp_path, "raw_weather", "x", MARCH, "nope")


def test_retention_keeps_the_newest_pulls_only(tmp_path: Path) -> None:
    for n in range(5):
        _pull(tmp_path, f"pull {n}".encode(), keep=2)
    pulls = raw_pulls(tmp_path, "raw_weather", "x", MARCH)
    assert len(pulls) == 2
    history = storage.raw_history_dir(tmp_path, "raw_weather", "x", MARCH)
    kept = [next((history / p).iterdir()).read_bytes() for p in pulls]
    assert kept == [b"pull 2", b"pull 3"]  # the oldest go first; pull 4 is current
    assert prune_raw_history(tmp_path, "raw_weather", "x", MARCH, 0) == pulls


def test_a_failed_pull_write_keeps_the_stored_body_and_history_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pull(tmp_path, b"good")
    real = storage.atomic_write_bytes

    def failing(path, data):
        if path.parent.name == "2014-03":  # the new current body
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        _pull(tmp_path, b"new")
    assert list(_current(tmp_path).values()) == [b"good"]


def test_forecast_partitions_are_digested_from_their_issues(tmp_path: Path) -> None:
    empty = raw_month_digest(tmp_path, "raw_weather_forecast", "x", MARCH)
    store_raw_issue(tmp_path, "raw_weather_forecast", "x", FIRST, b"issue")
    assert raw_month_digest(tmp_path, "raw_weather_forecast", "x", MARCH) != empty
