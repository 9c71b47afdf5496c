"""Files on disk: atomic writes leave the previous file on failure; raw bodies by span;
tensors round-trip."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airquality_assets import storage
from airquality_assets.storage import (
    TENSOR_ARRAYS_FILE,
    atomic_path,
    atomic_write_bytes,
    frame_dir,
    frame_path,
    load_tensors,
    raw_issue_bodies,
    raw_issue_path,
    raw_issue_time,
    raw_month_bodies,
    raw_span,
    read_frames,
    read_weather_forecasts,
    save_tensors,
    store_raw_issue,
    store_raw_span,
    stored_issues,
    stored_through,
    stored_whole_month,
    write_frame_atomic,
    write_table_atomic,
)
from airquality_assets.transforms.windowing import (
    SplitSpec,
    build_sequence_tensors,
    tensor_summary,
    windows,
)
from airquality_assets_tests.transforms.test_windowing import issued_forecasts, make_frame

FRACTIONS = SplitSpec(train_end=None, validation_end=None)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_atomic_write_replaces_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "file.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert _leftovers(path.parent) == []


def test_a_failed_write_keeps_the_previous_file_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "file.parquet"
    atomic_write_bytes(path, b"good")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"good"
    assert _leftovers(tmp_path) == []


def test_a_parquet_write_failing_midway_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_table_atomic(pa.table({"x": [1]}), tmp_path / "frame.parquet")
    before = path.read_bytes()

    def half_write(_table: pa.Table, where: Path, **_: object) -> None:
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("no space left on device")

    monkeypatch.setattr(storage.pq, "write_table", half_write)
    with pytest.raises(OSError, match="no space"):
        write_table_atomic(pa.table({"x": [2]}), path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_frame_layout_is_one_file_per_partition(tmp_path: Path) -> None:
    day = date(2014, 3, 1)
    assert frame_path(tmp_path, "weather_hourly", "beijing", day) == (
        frame_dir(tmp_path, "weather_hourly", "beijing") / "2014-03-01.parquet"
    )


def test_read_frames_skips_missing_files_and_returns_none_for_none(tmp_path: Path) -> None:
    first = write_frame_atomic(pd.DataFrame({"x": [1, 2]}), tmp_path / "1.parquet")
    second = write_frame_atomic(pd.DataFrame({"x": [3]}), tmp_path / "2.parquet")
    frame = read_frames([first, tmp_path / "missing.parquet", second])
    assert frame is not None and sorted(frame["x"]) == [1, 2, 3]
    assert read_frames([tmp_path / "missing.parquet"]) is None


def test_tensors_round_trip_and_a_changed_array_file_is_refused(tmp_path: Path) -> None:
    frame = make_frame(300, locations=("a", "b"))
    tensors = build_sequence_tensors(frame, None, ["pm2_5"], 12, [1, 6], split=FRACTIONS)
    save_tensors(tensors, tmp_path / "tensors")
    loaded = load_tensors(tmp_path / "tensors")
    for name in ("features", "targets", "times", "location_codes"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tensors, name))
    for split in tensors.ends:
        np.testing.assert_array_equal(loaded.ends[split], tensors.ends[split])
        for a, b in zip(windows(loaded, split), windows(tensors, split), strict=True):
            np.testing.assert_array_equal(a, b)
    assert loaded.scaler.to_dict() == tensors.scaler.to_dict()
    assert tensor_summary(loaded) == tensor_summary(tensors)
    assert (loaded.lookback, loaded.horizons, loaded.locations) == (12, [1, 6], ["a", "b"])
    assert _leftovers(tmp_path / "tensors") == []

    (tmp_path / "tensors" / TENSOR_ARRAYS_FILE).write_bytes(b"not the same file")
    with pytest.raises(ValueError, match="hash"):
        load_tensors(tmp_path / "tensors")
    with pytest.raises(FileNotFoundError, match="no sequence_tensors"):
        load_tensors(tmp_path / "nothing")


def test_tensors_with_forecast_inputs_round_trip(tmp_path: Path) -> None:
    frame = make_frame(24 * 12, locations=("a", "b"))
    forecasts = issued_forecasts(frame, every=6, skip=range(10, 14))
    tensors = build_sequence_tensors(
        frame, None, ["pm2_5"], 24, range(1, 25), FRACTIONS, forecasts=forecasts
    )
    save_tensors(tensors, tmp_path / "tensors")
    loaded = load_tensors(tmp_path / "tensors")
    assert loaded.future is not None and tensors.future is not None
    np.testing.assert_array_equal(loaded.future, tensors.future)
    assert loaded.future_names == tensors.future_names
    assert loaded.no_forecast == tensors.no_forecast and sum(loaded.no_forecast.values()) > 0
    assert loaded.scaler.to_dict() == tensors.scaler.to_dict()
    assert "future_mean" in loaded.scaler.to_dict()


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
    assert not stored_whole_month(tmp_path, "raw_air_quality", "x", month)  # pieces only

    # a re-pull of the whole month answers for every hour of all three: they are superseded
    store_raw_span(tmp_path, "raw_air_quality", "x", _h(1, 0), _h(31, 23), b"month")
    bodies = raw_month_bodies(tmp_path, "raw_air_quality", "x", month)
    assert [p.name for p in bodies] == ["2014-12-01T00_2014-12-31T23.json"]
    assert stored_whole_month(tmp_path, "raw_air_quality", "x", month)
    assert not stored_whole_month(tmp_path, "raw_weather", "x", month)
    assert not list(bodies[0].parent.glob(".*.tmp"))


# --- forecast issues: one body per issue, named by its hour, under the issue's month -----------


def test_an_issue_is_stored_under_its_own_month_and_listed_oldest_first(tmp_path: Path) -> None:
    asset, month = "raw_weather_forecast", date(2014, 3, 1)
    assert raw_issue_bodies(tmp_path, asset, "x", month) == []
    assert stored_issues(tmp_path, asset, "x", month) == set()
    late = datetime(2014, 3, 31, 18, tzinfo=UTC)  # its targets reach into April
    early = datetime(2014, 3, 1, 0, tzinfo=UTC)
    path = store_raw_issue(tmp_path, asset, "x", late, b"late")
    store_raw_issue(tmp_path, asset, "x", early, b"early")
    assert path == tmp_path / "raw" / asset / "x" / "2014-03" / "2014-03-31T18.json"
    bodies = raw_issue_bodies(tmp_path, asset, "x", month)
    assert [p.read_bytes() for p in bodies] == [b"early", b"late"]
    assert [raw_issue_time(p) for p in bodies] == [early, late]
    assert stored_issues(tmp_path, asset, "x", month) == {early, late}
    assert stored_issues(tmp_path, asset, "x", date(2014, 4, 1)) == set()
    # an issue given in another zone is stored under its UTC hour (and UTC month)
    plus_two = timezone(timedelta(hours=2))
    moved = store_raw_issue(tmp_path, asset, "x", datetime(2014, 4, 1, 1, tzinfo=plus_two), b"")
    assert moved.name == "2014-03-31T23.json"


def test_issue_listing_ignores_temporary_files_and_span_bodies(tmp_path: Path) -> None:
    asset, month = "raw_weather_forecast", date(2014, 3, 1)
    issue = datetime(2014, 3, 2, 6, tzinfo=UTC)
    folder = store_raw_issue(tmp_path, asset, "x", issue, b"body").parent
    (folder / ".2014-03-02T12.json.abc.tmp").write_bytes(b"half")
    (folder / "2014-03-01T00_2014-03-01T23.json").write_bytes(b"a span body")
    assert stored_issues(tmp_path, asset, "x", month) == {issue}


def test_a_failed_issue_write_leaves_no_partial_file_and_keeps_a_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset, month = "raw_weather_forecast", date(2014, 3, 1)
    kept = datetime(2014, 3, 2, 0, tzinfo=UTC)
    new = datetime(2014, 3, 2, 6, tzinfo=UTC)
    store_raw_issue(tmp_path, asset, "x", kept, b"complete body")
    real_write = Path.write_bytes

    def half_write(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError("no space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_write)
    with pytest.raises(OSError, match="no space"):
        store_raw_issue(tmp_path, asset, "x", new, b"a forecast body that is cut in half")
    with pytest.raises(OSError, match="no space"):
        store_raw_issue(tmp_path, asset, "x", kept, b"a replacement cut in half")
    monkeypatch.undo()
    folder = raw_issue_path(tmp_path, asset, "x", kept).parent
    assert stored_issues(tmp_path, asset, "x", month) == {kept}  # the new issue is not stored
    assert not raw_issue_path(tmp_path, asset, "x", new).exists()
    assert raw_issue_path(tmp_path, asset, "x", kept).read_bytes() == b"complete body"
    assert _leftovers(folder) == []


def test_read_weather_forecasts_selects_issues_by_time_across_month_files(tmp_path: Path) -> None:
    def month_frame(issues: list[str], location: str) -> pd.DataFrame:
        issue = pd.DatetimeIndex(issues, tz="UTC")
        return pd.DataFrame(
            {
                "location": location,
                "issue_time": issue,
                "time": issue + pd.Timedelta("1h"),
                "lead": 1,
                "temp": np.arange(len(issue), dtype=float),
            }
        )

    for location in ("a", "b"):
        march = month_frame(["2014-03-31T12:00", "2014-03-31T18:00"], location)
        april = month_frame(["2014-04-01T00:00", "2014-04-01T06:00"], location)
        write_frame_atomic(
            march, frame_path(tmp_path, "weather_forecasts", location, date(2014, 3, 1))
        )
        write_frame_atomic(
            april, frame_path(tmp_path, "weather_forecasts", location, date(2014, 4, 1))
        )
    frame = read_weather_forecasts(
        tmp_path, ["b"], datetime(2014, 3, 31, 18, tzinfo=UTC), datetime(2014, 4, 1, 6, tzinfo=UTC)
    )
    assert frame is not None
    assert frame["issue_time"].dt.strftime("%m-%dT%H").tolist() == ["03-31T18", "04-01T00"]
    assert set(frame["location"]) == {"b"}
    assert (
        read_weather_forecasts(
            tmp_path, ["a"], datetime(2015, 1, 1, tzinfo=UTC), datetime(2015, 2, 1, tzinfo=UTC)
        )
        is None
    )
