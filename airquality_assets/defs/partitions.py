"""Partitioning of the data half.

* Raw pulls: one partition per (UTC day, location): one request and one stored body each.
* Frames: one partition per (UTC month, location). A partition is a unit of Dagster
  bookkeeping (planned and materialization events, status in the UI); daily frames would
  cost 30x more of it for the same rows, which dominated the demo's run time. A month of
  hourly rows is still small, so an hourly update recomputes one month, never the history.

Backfills of any range run as ONE run per location (single-run backfill policy), so
Dagster's per-run start-up is paid once instead of once per partition.
Live deployments (no end date) include the current, still incomplete day and month.
"""

from dataclasses import dataclass
from datetime import date

import dagster as dg

from airquality_assets.settings import Settings

DATE_DIMENSION = "date"
LOCATION_DIMENSION = "location"


@dataclass(frozen=True)
class DataPartitions:
    """The data half's partitions of one deployment (its locations and date range)."""

    daily: dg.MultiPartitionsDefinition
    monthly: dg.MultiPartitionsDefinition


def build_partitions(settings: Settings) -> DataPartitions:
    """(day x location) and (month x location) partitions over the configured range."""
    end = settings.end_date.isoformat() if settings.end_date else None
    end_offset = 0 if end else 1
    locations = dg.StaticPartitionsDefinition(settings.location_names)
    first_month = settings.start_date.replace(day=1)
    return DataPartitions(
        daily=dg.MultiPartitionsDefinition(
            {
                DATE_DIMENSION: dg.DailyPartitionsDefinition(
                    start_date=settings.start_date.isoformat(), end_date=end, end_offset=end_offset
                ),
                LOCATION_DIMENSION: locations,
            }
        ),
        monthly=dg.MultiPartitionsDefinition(
            {
                DATE_DIMENSION: dg.MonthlyPartitionsDefinition(
                    start_date=first_month.isoformat(), end_date=end, end_offset=end_offset
                ),
                LOCATION_DIMENSION: locations,
            }
        ),
    )


single_run = dg.BackfillPolicy.single_run()


def _mapping(time_mapping: dg.TimeWindowPartitionMapping) -> dg.MultiPartitionMapping:
    return dg.MultiPartitionMapping(
        {
            DATE_DIMENSION: dg.DimensionPartitionMapping(DATE_DIMENSION, time_mapping),
            LOCATION_DIMENSION: dg.DimensionPartitionMapping(
                LOCATION_DIMENSION, dg.IdentityPartitionMapping()
            ),
        }
    )


# A month of frames depends on every day of that month of raw bodies.
days_of_month = _mapping(dg.TimeWindowPartitionMapping())

# hourly_observations for month M reads its inputs for M-1..M+1: interpolation and the
# spike filter need up to a day of context on both sides of every hour.
neighbouring_months = _mapping(
    dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True
    )
)


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``"2014-01-01|beijing"`` -> ``("2014-01-01", "beijing")`` for any of our partition keys.

    Multi-partition keys order their dimensions by name, so ``date`` always comes first.
    """
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[DATE_DIMENSION], dims[LOCATION_DIMENSION]
    day, location = key.split("|")
    return day, location


def month_days(month_start: str, last_day: date | None = None) -> list[str]:
    """Every day of the month starting at ``month_start``, stopping at ``last_day``."""
    first = date.fromisoformat(month_start)
    days = []
    current = first
    while current.month == first.month and (last_day is None or current <= last_day):
        days.append(current.isoformat())
        current = date.fromordinal(current.toordinal() + 1)
    return days
