"""The loop's charts as inline images: logged to the champion's MLflow run, linked by URL;
trend points read from the asset's own materializations, on the deployment clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from airquality_assets.defs.loop.charts import chart_metadata, monitoring_folder, trend_points
from airquality_assets.ml.links import MlflowPages


class _Client:
    def __init__(self) -> None:
        self.logged: list[tuple[str, str, bytes, str]] = []

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str) -> None:
        path = Path(local_path)
        self.logged.append((run_id, path.name, path.read_bytes(), artifact_path))


class _Mlflow:
    def __init__(self) -> None:
        self.tracking = _Client()

    def client(self) -> Any:
        return self.tracking

    def pages(self) -> MlflowPages:
        return MlflowPages("http://mlflow:5000")


def test_each_chart_is_logged_to_the_run_and_shown_by_a_short_link() -> None:
    mlflow = _Mlflow()
    folder = monitoring_folder(datetime(2014, 12, 31, 0, 30, tzinfo=UTC))
    assert folder == "monitoring/2014-12-31T0030Z"
    meta = chart_metadata(mlflow, "run-1", folder, {"chart_x_pm2_5": ("x pm2_5", b"\x89PNG..")})  # type: ignore[arg-type]
    assert mlflow.tracking.logged == [("run-1", "chart_x_pm2_5.png", b"\x89PNG..", folder)]
    value = meta["chart_x_pm2_5"]
    assert isinstance(value, dg.MarkdownMetadataValue)
    assert value.md_str == (
        "![x pm2_5](http://mlflow:5000/get-artifact"
        "?path=monitoring/2014-12-31T0030Z/chart_x_pm2_5.png&run_uuid=run-1)"
    )


def test_trend_points_follow_the_deployment_clock_not_the_event_order() -> None:
    instance = dg.DagsterInstance.ephemeral()
    # written in this order (wall clock), about these deployment instants
    for clock, score in (("2014-12-29T00:30:00+00:00", 0.2), ("2014-12-27T00:30:00+00:00", 0.1)):
        instance.report_runless_asset_event(
            dg.AssetMaterialization("drift_report", metadata={"clock": clock, "drift_score": score})
        )
    instance.report_runless_asset_event(dg.AssetMaterialization("drift_report"))  # no clock
    now = {"clock": "2014-12-29T00:30:00+00:00", "drift_score": 0.3}  # a re-run at that clock
    points = trend_points(instance, "drift_report", ["drift_score"], now)
    assert [c.isoformat() for c in points["clock"]] == [
        "2014-12-27T00:30:00+00:00",
        "2014-12-29T00:30:00+00:00",
    ]
    assert points["drift_score"].tolist() == [0.1, 0.3]  # the newest value at a clock wins
