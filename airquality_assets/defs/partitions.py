"""Partitioning of the data half: one partition per (UTC month, location) for every asset.

A partition is a unit of Dagster bookkeeping (a planned and a materialization event and its
status in the UI, per (asset, partition); docs/decisions.md gives the measured cost). Daily raw
partitions made that bookkeeping the cost of the data half (100 locations x 1 year = 73,000
raw partitions), and the APIs do not need them: OWM's history endpoint takes any
range and Visual Crossing's timeline a date range, so a closed month is one request. The
month in progress is pulled incrementally by the hourly schedule (see
:mod:`airquality_assets.sources.spans`), so a month partition never means re-pulling a month.

Any range of months x locations runs as ONE run (single-run backfill policy; the range tags
span a rectangle: first month|first location .. last month|last location).
Live deployments (no end date) include the current, still incomplete month.
"""

from dataclasses import dataclass

import dagster as dg

from airquality_assets.settings import Settings

DATE_DIMENSION = "date"
LOCATION_DIMENSION = "location"


@dataclass(frozen=True)
class DataPartitions:
    """The data half's partitions of one deployment (its locations and date range)."""

    monthly: dg.MultiPartitionsDefinition


def build_partitions(settings: Settings) -> DataPartitions:
    """(month x location) partitions over the configured range."""
    end = settings.end_date.isoformat() if settings.end_date else None
    end_offset = 0 if end else 1
    first_month = settings.start_date.replace(day=1)
    return DataPartitions(
        monthly=dg.MultiPartitionsDefinition(
            {
                DATE_DIMENSION: dg.MonthlyPartitionsDefinition(
                    start_date=first_month.isoformat(), end_date=end, end_offset=end_offset
                ),
                LOCATION_DIMENSION: dg.StaticPartitionsDefinition(settings.location_names),
            }
        ),
    )


single_run = dg.BackfillPolicy.single_run()

# hourly_observations for month M reads its inputs for M-1..M+1: interpolation and the
# spike filter need up to a day of context on both sides of every hour.
neighbouring_months = dg.MultiPartitionMapping(
    {
        DATE_DIMENSION: dg.DimensionPartitionMapping(
            DATE_DIMENSION,
            dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
            ),
        ),
        LOCATION_DIMENSION: dg.DimensionPartitionMapping(
            LOCATION_DIMENSION, dg.IdentityPartitionMapping()
        ),
    }
)


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``"2014-01-01|beijing"`` -> ``("2014-01-01", "beijing")`` for any of our partition keys.

    Multi-partition keys order their dimensions by name, so ``date`` always comes first.
    """
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[DATE_DIMENSION], dims[LOCATION_DIMENSION]
    month, location = key.split("|")
    return month, location


def range_tags(first_month: str, last_month: str, locations: list[str]) -> dict[str, str]:
    """Run tags for ONE run over months ``first..last`` x every location in ``locations``."""
    return {
        "dagster/asset_partition_range_start": f"{first_month}|{locations[0]}",
        "dagster/asset_partition_range_end": f"{last_month}|{locations[-1]}",
    }
