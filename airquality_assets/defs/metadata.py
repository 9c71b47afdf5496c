"""Asset metadata every frame gets: row counts, time range, missing hours, a preview."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from airquality_assets.columns import LOCATION, TIME


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
    shown = [c for c in preview.columns if preview[c].notna().any()][:12]
    meta["preview"] = dg.MetadataValue.md(preview[shown].to_markdown(index=False))
    return meta
