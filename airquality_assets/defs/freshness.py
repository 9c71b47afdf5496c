"""Freshness: is the newest stored observation close enough to the source's clock?

Dagster's built-in freshness checks compare with the wall clock; a replay deployment's
present is inside 2014, so this check asks the deployment's clock what "now" is.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from airquality_assets.columns import TIME
from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.storage import frame_dir

MAX_LAG = timedelta(hours=3)


def newest_stored_hour(base_dir: Path, asset: str, location: str) -> pd.Timestamp | None:
    """Newest ``time`` in the latest non-empty partition file of ``asset`` for ``location``."""
    for path in sorted(frame_dir(base_dir, asset, location).glob("*.parquet"), reverse=True):
        frame = pd.read_parquet(path, columns=[TIME])
        if len(frame):
            return frame[TIME].max()
    return None


@dg.asset_check(
    asset="hourly_observations",
    description=f"The newest observation of every location is at most {MAX_LAG} old",
)
def hourly_observations_freshness(deployment: DeploymentResource) -> dg.AssetCheckResult:
    settings = deployment.settings
    now = pd.Timestamp(settings.clock.now())
    lags: dict[str, str] = {}
    stale: list[str] = []
    for location in settings.location_names:
        newest = newest_stored_hour(settings.data_dir, "hourly_observations", location)
        if newest is None or now - newest > MAX_LAG:
            stale.append(location)
        lags[location] = "never" if newest is None else str(now - newest)
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"source_now": str(now), "lag_by_location": dg.MetadataValue.json(lags)},
        description=f"stale: {', '.join(stale)}" if stale else None,
    )
