"""The Parquet IO manager's edge cases: wrong types, stray rows, empty and missing partitions."""

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from airquality_assets.defs.io_managers import PartitionedParquetIOManager, missing_partitions
from airquality_assets.defs.partitions import build_partitions
from airquality_assets.settings import Settings
from airquality_assets.storage import frame_path

MONTHLY = build_partitions(Settings(data_dir=Path("unused"))).monthly
KEY = dg.MultiPartitionKey({"date": "2014-03-01", "location": "beijing"})


def _rows(*days: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "location": pd.array(["beijing"] * len(days), dtype="string"),
            "time": pd.to_datetime(list(days), utc=True),
            "pm2_5": [float(i) for i in range(len(days))],
        }
    )


def _run(assets: list, base: Path, partition_key=KEY, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        partition_key=partition_key,
        resources={"io_manager": PartitionedParquetIOManager(base_dir=str(base))},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def test_a_partition_with_no_rows_is_stored_empty(tmp_path: Path) -> None:
    @dg.asset(partitions_def=MONTHLY)
    def frame() -> pd.DataFrame:
        return _rows()

    assert _run([frame], tmp_path).success
    stored = pd.read_parquet(frame_path(tmp_path, "frame", "beijing", date(2014, 3, 1)))
    assert len(stored) == 0 and list(stored.columns) == ["location", "time", "pm2_5"]


def test_rows_outside_the_run_partitions_are_refused(tmp_path: Path) -> None:
    @dg.asset(partitions_def=MONTHLY)
    def frame() -> pd.DataFrame:
        return _rows("2014-03-01T05:00", "2014-04-02T05:00")

    with pytest.raises(ValueError, match=r"rows outside its partitions \['2014-04-01\|beijing'\]"):
        _run([frame], tmp_path)


def test_only_dataframes_are_stored(tmp_path: Path) -> None:
    @dg.asset(partitions_def=MONTHLY)
    def frame() -> dict:
        return {"not": "a frame"}

    with pytest.raises(TypeError, match="stores pandas DataFrames"):
        _run([frame], tmp_path)


def test_loading_an_unmaterialized_asset_fails_clearly(tmp_path: Path) -> None:
    @dg.asset
    def upstream() -> pd.DataFrame:
        return _rows("2014-03-01T05:00")

    @dg.asset
    def downstream(upstream: pd.DataFrame) -> pd.DataFrame:
        return upstream

    with pytest.raises(FileNotFoundError, match="upstream has not been materialized"):
        _run([upstream, downstream], tmp_path, partition_key=None, selection=[downstream])
    assert _run([upstream, downstream], tmp_path, partition_key=None).success
    stored = pd.read_parquet(tmp_path / "frames" / "downstream.parquet")
    pd.testing.assert_frame_equal(stored, _rows("2014-03-01T05:00"))


def test_missing_partitions_tell_gaps_from_months_not_reached_yet() -> None:
    keys = [
        ("2014-01-01", "beijing"),
        ("2014-02-01", "beijing"),  # missing between stored months: a gap
        ("2014-03-01", "beijing"),
        ("2014-04-01", "beijing"),  # after the newest stored month: not reached yet
        ("2014-01-01", "delhi"),  # a location with nothing stored: nothing reached yet
    ]
    stored = [True, False, True, False, False]
    gaps, not_yet = missing_partitions(keys, stored)
    assert gaps == ["2014-02-01|beijing"]
    assert not_yet == ["2014-01-01|delhi", "2014-04-01|beijing"]
