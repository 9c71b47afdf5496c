"""Freshness: is the newest stored observation close enough to the source's clock?

Dagster's built-in freshness policies and checks compare with the wall clock; a replay
deployment's present is inside 2014, so this check asks the deployment's clock what "now"
is. It fails on stale data and on data from the future alike (rows with a measured value
stamped after the clock: a clock or source bug, or forecasts stored as observations).
"""

from datetime import timedelta

import dagster as dg
import pandas as pd

from airquality_assets.columns import POLLUTANTS, WEATHER
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.quality import freshness_verdict
from airquality_assets.storage import StoragePath, frame_dir, read_frames, storage_location

MAX_LAG = timedelta(hours=3)


def newest_stored_frame(base_dir: StoragePath, asset: str, location: str) -> pd.DataFrame | None:
    """The latest non-empty partition file of ``asset`` for ``location`` (None if none)."""
    files = frame_dir(base_dir, asset, location).glob("*.parquet")
    for path in sorted(files, key=lambda p: p.name, reverse=True):
        frame = read_frames([path])
        if frame is not None and len(frame):
            return frame
    return None


@dg.asset_check(
    asset="hourly_observations",
    description=(
        f"By the source's clock, the newest observation of every location is at most "
        f"{MAX_LAG} old, and no observation is stamped after the clock"
    ),
)
def hourly_observations_freshness(deployment: DeploymentResource) -> dg.AssetCheckResult:
    settings = deployment.settings
    now = settings.clock.now()
    verdicts = {
        location: freshness_verdict(
            newest_stored_frame(
                storage_location(settings.storage_root), "hourly_observations", location
            ),
            now,
            MAX_LAG,
            observed_columns=[*POLLUTANTS, *WEATHER],
        )
        for location in settings.location_names
    }
    failing = {loc: v for loc, v in verdicts.items() if not v.passed}
    lags = {
        loc: None if v.lag_hours is None else round(v.lag_hours, 1) for loc, v in verdicts.items()
    }
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "source_now": str(now),
            "lag_hours_by_location": dg.MetadataValue.json(lags),
            "state_by_location": dg.MetadataValue.json({k: v.state for k, v in verdicts.items()}),
            "max_lag_hours": MAX_LAG / timedelta(hours=1),
        },
        description="; ".join(f"{loc}: {v.state}, {v.describe()}" for loc, v in failing.items())
        or None,
    )
