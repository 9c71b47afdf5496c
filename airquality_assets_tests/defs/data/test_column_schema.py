"""The frames' column schemas as the Dagster UI shows them: described, with units, no regex."""

from __future__ import annotations

import dagster as dg
import pytest

from airquality_assets.columns import COLUMN_DOCS
from airquality_assets.definitions import defs as load_defs


@pytest.mark.usefixtures("data_dir")
def test_every_frame_column_has_a_description_and_no_pattern_poses_as_a_column() -> None:
    graph = load_defs().resolve_asset_graph()
    for name in ("air_quality_hourly", "weather_hourly", "hourly_observations"):
        schema = graph.get(dg.AssetKey(name)).metadata["dagster/column_schema"]
        names = [c.name for c in schema.columns]
        assert names and not [n for n in names if not n.isidentifier()], names
        for column in schema.columns:
            what, unit = COLUMN_DOCS[column.name]
            assert column.description and column.description.startswith(what), column
            assert unit in column.description
    observations = graph.get(dg.AssetKey("hourly_observations")).metadata
    pm = next(c for c in observations["dagster/column_schema"].columns if c.name == "pm2_5")
    assert pm.description == "fine particulate matter (PM2.5), ug/m3"
