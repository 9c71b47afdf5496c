"""A Parquet IO manager that understands (period x location) partitions and ranges of them.

Dagster's default pickling IO manager refuses a single output covering a range of
multi-partitions (what a single-run backfill produces). This one splits a frame by
(location, UTC month or day, whichever the asset is partitioned by) and writes one Parquet
file per partition key, atomically, and loads any
set of partitions back in one multithreaded pyarrow read. Non-partitioned outputs go to one
file. Downstream of a partitioned asset, a non-partitioned asset gets every stored partition.

A row's partition is the month of its ``time``, or of the column an asset names in its
definition metadata under :data:`PARTITION_COLUMN` (``weather_forecasts``: ``issue_time``, so
an issue's targets in the next month stay with the issue).
"""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from airquality_assets.columns import LOCATION, TIME
from airquality_assets.defs.partitions import DATE_DIMENSION, split_key
from airquality_assets.storage import (
    StoragePath,
    frame_path,
    load_tensors,
    read_frames,
    save_tensors,
    storage_location,
    write_frame_atomic,
    write_table_atomic,
)

#: Definition-metadata key naming the time column a row's partition follows (default ``time``).
PARTITION_COLUMN = "airquality/partition_column"


def partition_column(definition_metadata: object) -> str:
    """The time column an asset's rows are partitioned by (its definition metadata's
    :data:`PARTITION_COLUMN`, else ``time``)."""
    value = getattr(definition_metadata, "get", lambda *_: None)(PARTITION_COLUMN)
    value = getattr(value, "value", value)  # a MetadataValue or a plain string
    return str(value) if value else TIME


def _sort_columns(by: str) -> list[str]:
    return [LOCATION, TIME] if by == TIME else [LOCATION, by, TIME]


def _period_format(partitions_def: dg.PartitionsDefinition | None) -> str:
    """strftime giving a row's partition date: its month start or its day."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = {d.name: d.partitions_def for d in partitions_def.partitions_defs}
        if isinstance(dims.get(DATE_DIMENSION), dg.MonthlyPartitionsDefinition):
            return "%Y-%m-01"
    return "%Y-%m-%d"


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str
    """A directory or an object-store URL (``s3://bucket/prefix``)."""

    def _asset_name(self, key: dg.AssetKey) -> str:
        return "__".join(key.path)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "this IO manager stores pandas DataFrames"
            )
        name = self._asset_name(context.asset_key)
        base = storage_location(self.base_dir)
        if not context.has_asset_partitions:
            path = base / "frames" / f"{name}.parquet"
            write_frame_atomic(obj, path)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
            return

        # One pandas->Arrow conversion, then a zero-copy slice per (location, period) group.
        by = partition_column(context.definition_metadata)
        obj = obj.sort_values(_sort_columns(by), kind="stable").reset_index(drop=True)
        table = pa.Table.from_pandas(obj, preserve_index=False)
        period = _period_format(context.asset_partitions_def)
        group_keys = (obj[LOCATION].astype(str) + "|" + obj[by].dt.strftime(period)).to_numpy()
        starts = np.flatnonzero(np.r_[True, group_keys[1:] != group_keys[:-1]][: len(obj)])
        stops = np.r_[starts[1:], len(group_keys)][: len(starts)]  # none for an empty frame
        groups = {
            tuple(group_keys[a].split("|")[::-1]): (a, b)
            for a, b in zip(starts, stops, strict=True)
        }
        written = 0
        for partition_key in context.asset_partition_keys:
            day, location = split_key(partition_key)
            start, stop = groups.pop((day, location), (0, 0))
            write_table_atomic(
                table.slice(start, stop - start),
                frame_path(base, name, location, date.fromisoformat(day)),
            )
            written += 1
        if groups:
            stray = sorted(f"{day}|{loc}" for day, loc in groups)
            raise ValueError(
                f"{name} produced rows outside its partitions {stray[:5]}"
                f"{' ...' if len(stray) > 5 else ''}; nothing beyond the run's keys is stored"
            )
        context.log.info(f"{name}: wrote {written} partition file(s), {len(obj)} rows")

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        assert upstream is not None
        name = self._asset_name(upstream.asset_key)
        base = storage_location(self.base_dir)
        if not context.has_asset_partitions:
            path = base / "frames" / f"{name}.parquet"
            if not path.exists():
                raise FileNotFoundError(f"{name} has not been materialized yet ({path})")
            return pd.read_parquet(path)

        keys = [split_key(key) for key in context.asset_partition_keys]
        paths = [frame_path(base, name, loc, date.fromisoformat(day)) for day, loc in keys]
        stored = [p.exists() for p in paths]
        frame = read_frames(paths)
        if frame is None:
            raise FileNotFoundError(
                f"none of the {len(paths)} requested partitions of {name} is stored; "
                f"materialize {name} first"
            )
        gaps, not_yet = missing_partitions(keys, stored)
        if gaps:
            context.log.warning(
                f"{name}: {len(gaps)} of {len(paths)} upstream partitions are not stored "
                f"although later ones are (first: {gaps[0]}); loading the rest"
            )
        if not_yet:
            context.log.info(
                f"{name}: {len(not_yet)} partition(s) after the newest stored one are not "
                f"stored yet (from {not_yet[0]}; the data has not reached them)"
            )
        missing = len(gaps) + len(not_yet)
        by = partition_column(upstream.definition_metadata)
        frame = frame.sort_values(_sort_columns(by), kind="stable").reset_index(drop=True)
        context.log.info(f"{name}: loaded {len(frame)} rows from {len(paths) - missing} files")
        return frame


def missing_partitions(
    keys: list[tuple[str, str]], stored: list[bool]
) -> tuple[list[str], list[str]]:
    """Split the unstored ``(period start, location)`` keys into gaps (a later partition of
    the same location is stored) and those after a location's newest stored one: a
    deployment whose clock has not reached them yet, which is no reason to warn."""
    newest: dict[str, str] = {}
    for (day, location), exists in zip(keys, stored, strict=True):
        if exists and day > newest.get(location, ""):
            newest[location] = day
    gaps, not_yet = [], []
    for (day, location), exists in sorted(zip(keys, stored, strict=True)):
        if not exists:
            (gaps if day < newest.get(location, "") else not_yet).append(f"{day}|{location}")
    return gaps, not_yet


class SequenceTensorsIOManager(dg.ConfigurableIOManager):
    """Stores ``SequenceTensors`` as the hourly matrix + window end indices (npz + json).

    Windows are never stored: they are cut as views on load, so what lands on disk grows
    with hours x features, not 24x that.
    """

    base_dir: str

    def _directory(self, key: dg.AssetKey) -> StoragePath:
        return storage_location(self.base_dir) / "tensors" / "__".join(key.path)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        save_tensors(obj, self._directory(context.asset_key))

    def load_input(self, context: dg.InputContext):
        assert context.upstream_output is not None
        return load_tensors(self._directory(context.upstream_output.asset_key))
