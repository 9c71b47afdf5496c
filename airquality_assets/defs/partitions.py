"""Partitioning shared by the data half: one partition per (UTC day, location)."""

import dagster as dg

from airquality_assets.settings import get_settings

_settings = get_settings()

DATE_DIMENSION = "date"
LOCATION_DIMENSION = "location"

daily_location_partitions = dg.MultiPartitionsDefinition(
    {
        DATE_DIMENSION: dg.DailyPartitionsDefinition(
            start_date=_settings.start_date.isoformat(),
            end_date=_settings.end_date.isoformat() if _settings.end_date else None,
        ),
        LOCATION_DIMENSION: dg.StaticPartitionsDefinition(_settings.location_names),
    }
)

# A backfill of any range runs as ONE run per location: Dagster's per-run start-up is paid
# once instead of once per day (a year is 365 partitions).
single_run = dg.BackfillPolicy.single_run()

# hourly_observations for day D reads its inputs for D-1..D+1: interpolation and the
# outlier filter need context on both sides, and a short gap (< 24 h) never reaches further.
neighbouring_days = dg.MultiPartitionMapping(
    {
        DATE_DIMENSION: dg.DimensionPartitionMapping(
            DATE_DIMENSION, dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=1)
        ),
        LOCATION_DIMENSION: dg.DimensionPartitionMapping(
            LOCATION_DIMENSION, dg.IdentityPartitionMapping()
        ),
    }
)


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``"2014-01-01|beijing"`` -> ``("2014-01-01", "beijing")`` whatever the key type."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
    else:
        dims = daily_location_partitions.get_partition_key_from_str(key).keys_by_dimension
    return dims[DATE_DIMENSION], dims[LOCATION_DIMENSION]
