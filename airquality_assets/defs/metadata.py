"""Asset metadata every frame gets: row counts, time range, missing hours, a preview.

A run may materialize many (month, location) partitions at once (a single-run backfill);
each partition's materialization event then carries that partition's own figures, through
``context.add_asset_metadata(..., partition_key=...)``, never the run's totals.
"""

from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np
import pandas as pd

from airquality_assets import markdown
from airquality_assets.columns import LOCATION, TIME
from airquality_assets.defs.data.checks import completeness_metadata
from airquality_assets.defs.partitions import split_key
from airquality_assets.transforms.completeness import Completeness


def frame_metadata(frame: pd.DataFrame, watch: Sequence[str] = ()) -> dict[str, object]:
    """Row count, locations, time range, missing values of ``watch`` columns, a preview."""
    meta: dict[str, object] = {
        "dagster/row_count": len(frame),
        "locations": ", ".join(sorted(map(str, frame[LOCATION].unique()))) if len(frame) else "",
    }
    if len(frame):
        meta["first_hour"] = str(frame[TIME].min())
        meta["last_hour"] = str(frame[TIME].max())
    for column in watch:
        if column in frame:
            meta[f"missing_{column}"] = int(frame[column].isna().sum())
    preview = frame.head(8)
    shown = preview.columns[preview.notna().any().to_numpy()][:12]
    meta["preview"] = dg.MetadataValue.md(
        markdown.table(list(shown), preview[shown].itertuples(index=False))
    )
    return meta


def month_key(partition_key: str) -> str:
    """``"2014-03-01|beijing"`` -> ``"2014-03|beijing"``, the pure modules' (month, location)."""
    month, location = split_key(partition_key)
    return f"{month[:7]}|{location}"


def rows_by_partition(
    frame: pd.DataFrame, partition_keys: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Each (month, location) partition key's rows of ``frame`` (empty when it has none)."""
    groups: dict[str, pd.DataFrame] = {}
    if len(frame):
        months = pd.DatetimeIndex(frame[TIME]).asi8.astype("datetime64[ns]").astype("datetime64[M]")
        labels = np.char.add(
            np.char.add(months.astype(str), "-01|"), frame[LOCATION].astype(str).to_numpy(str)
        )
        groups = {str(k): g for k, g in frame.groupby(labels, sort=False)}
    return {str(key): groups.get(str(key), frame.iloc[0:0]) for key in partition_keys}


def partition_metadata(
    frame: pd.DataFrame,
    partition_keys: Sequence[str],
    completeness: Completeness,
    watch: Sequence[str],
) -> dict[str, dict[str, object]]:
    """Per partition key: its row count, first/last hour, preview, and its completeness
    (expected and missing hours per column, longest gap, columns it never reports).
    ``missing_<column>`` counts the partition's hours without a value, absent rows
    included (OWM leaves a missing hour out), so the Plots tab draws one true point per
    partition."""
    out: dict[str, dict[str, object]] = {}
    for key, rows in rows_by_partition(frame, partition_keys).items():
        meta = frame_metadata(rows, watch)
        month = completeness.per_month.get(month_key(key))
        if month is not None:
            meta.update(completeness_metadata(month))
            for column in watch:
                if column in month.columns:
                    meta[f"missing_{column}"] = month.columns[column].missing_hours
        out[key] = meta
    return out


def add_partition_metadata(
    context: dg.AssetExecutionContext, by_partition: Mapping[str, Mapping[str, object]]
) -> None:
    """Attach each partition's own metadata to its materialization event. Call it before
    the output is yielded: Dagster reads it when it emits the events."""
    for key, meta in by_partition.items():
        context.add_asset_metadata(dict(meta), partition_key=key)
