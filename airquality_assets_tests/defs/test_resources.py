"""The deployment resource carries the settings unchanged and can move the replay clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from airquality_assets.defs.resources import DeploymentResource
from airquality_assets.settings import Settings


def test_deployment_resource_round_trips_settings(settings: Settings) -> None:
    settings = dataclasses.replace(settings, profile="full", targets=["pm2_5", "no2"])
    restored = DeploymentResource.from_settings(settings).settings
    for field in dataclasses.fields(Settings):
        if field.name not in {"tracking_uri", "bentoml_home_dir"}:
            assert getattr(restored, field.name) == getattr(settings, field.name), field.name
    assert restored.mlflow_tracking_uri == settings.mlflow_tracking_uri
    assert restored.bentoml_home == settings.bentoml_home


def test_run_config_moves_the_replay_clock(settings: Settings) -> None:
    resource = DeploymentResource.from_settings(settings)
    assert resource.clock().now() == settings.replay_now
    moved = resource.model_copy(update={"replay_now": "2013-02-03T04:00:00Z"})
    assert moved.clock().now() == datetime(2013, 2, 3, 4, tzinfo=UTC)
