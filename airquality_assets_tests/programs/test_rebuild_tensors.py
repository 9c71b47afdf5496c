"""A registered model's training tensors are rebuilt bit-exact from the stored data its
MLflow run recorded; a changed stored body is named and the digest then differs."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
from mlflow import MlflowClient

from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.model.lineage import tensors_record
from airquality_assets.defs.model.tensors import sequence_tensors
from airquality_assets.defs.partitions import build_partitions, range_tags
from airquality_assets.defs.resources import build_resources
from airquality_assets.ml.lineage import (
    DIGEST_TAG,
    link_data_record,
    log_data_record,
    read_data_record,
)
from airquality_assets.programs.rebuild_tensors import rebuild
from airquality_assets.settings import Settings
from airquality_assets.storage import load_tensors, raw_month_bodies

RAW = ["raw_air_quality", "raw_weather", "raw_weather_forecast"]
FRAMES = ["air_quality_hourly", "weather_hourly", "hourly_observations", "weather_forecasts"]


def test_the_champions_tensors_are_rebuilt_bit_exact_from_its_recorded_data(
    settings: Settings,
) -> None:
    settings = settings.replace(start_date=date(2014, 1, 1), end_date=date(2014, 5, 1))
    partitions = build_partitions(settings)
    assets = [*ingestion_assets(partitions), *frame_assets(partitions), sequence_tensors]
    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources(settings)
    tags = range_tags("2014-01-01", "2014-04-01", ["beijing"])
    for selection in (RAW, FRAMES):
        dg.materialize(
            assets, selection=selection, resources=resources, instance=instance, tags=tags
        )
    dg.materialize(assets, selection=["sequence_tensors"], resources=resources, instance=instance)
    tensors = load_tensors(settings.data_dir / "tensors" / "sequence_tensors")
    record = tensors_record(instance, tensors)
    assert len(record.partitions) == 3 * 4  # three raw assets x four months
    assert set(record.splits) == {"train", "validation", "test"}
    # the split ranges as a person reads them on the MLflow run, not epoch seconds
    first, last = record.splits["train"]["first_end"], record.splits["test"]["last_end"]
    assert first.startswith("2014-01-") and first.endswith("Z") and last.startswith("2014-0")

    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment = client.create_experiment("lineage")
    run_id = client.create_run(experiment).info.run_id
    log_data_record(client, run_id, record, "training")
    (dataset_input,) = client.get_run(run_id).inputs.dataset_inputs
    assert dataset_input.tags[0].value == "training"
    assert json.loads(dataset_input.dataset.profile)["partitions"] == record.partitions
    assert read_data_record(client, run_id) == record
    name = settings.model_name
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version
    link_data_record(client, name, version, record, run_id)
    client.set_registered_model_alias(name, "champion", version)
    assert client.get_model_version(name, version).tags[DIGEST_TAG] == record.digest

    outcome = rebuild(settings)
    assert outcome.matches and outcome.changed_partitions == []

    (body,) = raw_month_bodies(settings.data_dir, "raw_air_quality", "beijing", date(2014, 2, 1))
    data = json.loads(body.read_bytes())
    data["list"][100]["components"]["pm2_5"] += 50.0
    body.write_text(json.dumps(data))
    changed = rebuild(settings)
    assert changed.changed_partitions == ["raw_air_quality|2014-02-01|beijing"]
    assert not changed.matches
