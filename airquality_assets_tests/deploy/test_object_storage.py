"""Object storage through the same code path: the graph's files and MLflow artifacts on S3.

moto's S3 server runs on 127.0.0.1 on a free port (started and stopped by the fixture); the
project talks to it through the real clients (s3fs/fsspec for the raw store and the IO
managers, boto3 for MLflow's artifact store), configured the way a deployment is: an
``AIRQUALITY_STORAGE_URL`` and the standard AWS variables, nothing else. What was stored is
read back with boto3, independently of the code under test. moto is a dev dependency, so
these tests never skip.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests

from airquality_assets import storage
from airquality_assets.defs.data.frames import frame_assets
from airquality_assets.defs.data.freshness import hourly_observations_freshness
from airquality_assets.defs.data.ingestion import ingestion_assets
from airquality_assets.defs.io_managers import SequenceTensorsIOManager
from airquality_assets.defs.partitions import build_partitions, range_tags
from airquality_assets.defs.resources import build_resources
from airquality_assets.settings import Settings
from airquality_assets.storage import (
    raw_month_bodies,
    storage_location,
    store_raw_span,
    stored_through,
    write_table_atomic,
)
from airquality_assets_tests.defs.data.test_data_half import _FlakySource, _with

BUCKET = "airquality-test"
URL = f"s3://{BUCKET}/prod"
PARTITIONS = build_partitions(Settings(data_dir=Path("unused")))
RAW = ingestion_assets(PARTITIONS)
FRAMES = frame_assets(PARTITIONS)
MARCH = range_tags("2014-03-01", "2014-03-01", ["beijing"])
MARCH_BODY = "prod/raw/raw_air_quality/beijing/2014-03/2014-03-01T00_2014-03-31T23.json"


@pytest.fixture
def s3(
    data_dir: Path,  # noqa: ARG001 (its environment, by name)
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[object]:
    """A bucket on a local S3 server; the environment a deployment would set; a boto3 client."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,  # boto3 and s3fs (aiobotocore) both read it
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # no client cached against another endpoint
    # The in-process server keeps moto's state between instances: start from an empty store.
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def _keys(client, prefix: str = "prod/") -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _object(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_storage_url_must_be_a_url(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="AIRQUALITY_STORAGE_URL"):
        Settings.from_env({"AIRQUALITY_DATA_DIR": str(data_dir), "AIRQUALITY_STORAGE_URL": "x"})
    local = Settings.from_env({"AIRQUALITY_DATA_DIR": str(data_dir)})
    assert local.storage_root == str(data_dir.resolve())
    assert isinstance(storage_location(local.storage_root), Path)


@pytest.mark.slow
def test_raw_pull_to_frames_on_s3(s3, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One month of one location: raw pull -> parsed, merged, cleaned frames -> freshness."""
    monkeypatch.setenv("AIRQUALITY_STORAGE_URL", f"{URL}/")
    settings = Settings.from_env()
    assert settings.storage_root == URL
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(RAW, resources=resources, tags=MARCH, instance=instance).success
    result = dg.materialize(
        [*FRAMES, hourly_observations_freshness],
        resources=resources,
        tags=MARCH,
        instance=instance,
        raise_on_error=True,
    )
    assert result.success

    keys = _keys(s3)
    body = json.loads(_object(s3, MARCH_BODY))  # one body for the closed month
    assert {"coord", "list"} <= body.keys()
    weather = "prod/raw/raw_weather/beijing/2014-03/2014-03-01T00_2014-03-31T23.json"
    assert len(json.loads(_object(s3, weather))["days"]) == 31
    for asset in ("air_quality_hourly", "weather_hourly", "hourly_observations"):
        assert f"prod/frames/{asset}/beijing/2014-03-01.parquet" in keys, asset
    observations = pd.read_parquet(
        io.BytesIO(_object(s3, "prod/frames/hourly_observations/beijing/2014-03-01.parquet"))
    )
    assert len(observations) == 31 * 24 and observations["temp"].notna().all()
    # the frames step read its raw input back from the bucket, the freshness check its frame
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("hourly_observations", "schema")].passed
    freshness = checks[("hourly_observations", "hourly_observations_freshness")]
    assert freshness.metadata["lag_hours_by_location"].value["beijing"] is not None
    # nothing of it on the local disk
    assert not (data_dir / "raw").exists() and not (data_dir / "frames").exists()

    # a failed re-pull (asked for: a closed month stored whole is not pulled again) leaves
    # the stored body exactly as it was, and no other object
    flaky = _with(settings, _FlakySource(failing_months=["2014-03"]))
    before = _object(s3, MARCH_BODY)
    refetch = {"ops": {RAW[0].key.path[-1]: {"config": {"refetch_closed_months": True}}}}
    again = dg.materialize(
        [RAW[0]], resources=flaky, tags=MARCH, instance=instance, raise_on_error=False,
        run_config=refetch,
    )  # fmt: skip
    assert not again.success
    assert _object(s3, MARCH_BODY) == before
    assert _keys(s3) == keys


def test_span_store_on_s3_supersedes_covered_bodies(s3) -> None:
    """The month-in-progress path: small bodies, then a re-pull covering them replaces them."""
    root = storage_location(URL)
    month = date(2014, 3, 1)

    def hour(day: int, h: int) -> datetime:
        return datetime(2014, 3, day, h, tzinfo=UTC)

    store_raw_span(root, "raw_air_quality", "beijing", hour(1, 0), hour(1, 5), b"a")
    store_raw_span(root, "raw_air_quality", "beijing", hour(1, 3), hour(1, 9), b"b")
    assert stored_through(root, "raw_air_quality", "beijing", month) == hour(1, 9)
    bodies = raw_month_bodies(root, "raw_air_quality", "beijing", month)
    assert [p.read_bytes() for p in bodies] == [b"a", b"b"]  # overlapping: both kept, in order
    store_raw_span(root, "raw_air_quality", "beijing", hour(1, 0), hour(2, 23), b"c")
    month_prefix = "prod/raw/raw_air_quality/beijing/2014-03/"
    keys = _keys(s3)
    assert {k for k in keys if "/.history/" not in k} == {
        month_prefix + "2014-03-01T00_2014-03-02T23.json"
    }
    # the superseded bodies are kept, not deleted: one pull's copy in the month's history
    kept = sorted(k.rsplit("/", 1)[-1] for k in keys if k.startswith(month_prefix + ".history/"))
    assert kept == ["2014-03-01T00_2014-03-01T05.json", "2014-03-01T03_2014-03-01T09.json"]
    assert [
        p.read_bytes() for p in raw_month_bodies(root, "raw_air_quality", "beijing", month)
    ] == [b"c"]
    assert stored_through(root, "raw_air_quality", "beijing", date(2014, 4, 1)) is None


def test_a_failed_parquet_write_never_reaches_the_bucket(
    s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is finished in memory before its one PUT: a writer that fails half-way
    leaves the previous object untouched and no partial one."""
    path = storage_location(URL) / "frames" / "x" / "beijing" / "2014-03-01.parquet"
    write_table_atomic(pa.table({"v": [1.0, 2.0]}), path)
    before = _object(s3, "prod/frames/x/beijing/2014-03-01.parquet")

    def half_then_fail(_table, sink, **_) -> None:
        sink.write(b"PAR1 half a file")
        raise OSError("writer died")

    monkeypatch.setattr(storage.pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="writer died"):
        write_table_atomic(pa.table({"v": [3.0]}), path)
    assert _object(s3, "prod/frames/x/beijing/2014-03-01.parquet") == before
    assert _keys(s3) == {"prod/frames/x/beijing/2014-03-01.parquet"}


def test_tensors_io_manager_round_trip_on_s3(s3) -> None:
    from airquality_assets.transforms.windowing import SplitSpec, build_sequence_tensors
    from airquality_assets_tests.transforms.test_windowing import make_frame

    split = SplitSpec(train_end=None, validation_end=None)
    tensors = build_sequence_tensors(
        make_frame(400), ["pm2_5", "temp"], ["pm2_5"], 4, [1, 2], split=split
    )
    manager = SequenceTensorsIOManager(base_dir=URL)
    key = dg.AssetKey("sequence_tensors")
    manager.handle_output(dg.build_output_context(asset_key=key), tensors)
    assert _keys(s3, "prod/tensors/") == {
        "prod/tensors/sequence_tensors/sequence_tensors.npz",
        "prod/tensors/sequence_tensors/sequence_tensors.json",
    }
    loaded = manager.load_input(
        dg.build_input_context(upstream_output=dg.build_output_context(asset_key=key))
    )
    np.testing.assert_array_equal(loaded.features, tensors.features)
    assert loaded.feature_names == tensors.feature_names
    for name, ends in tensors.ends.items():
        np.testing.assert_array_equal(loaded.ends[name], ends)


def test_mlflow_artifacts_on_s3(s3, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's MLflow resource puts the experiment's artifacts under the storage URL."""
    import mlflow

    monkeypatch.setenv("AIRQUALITY_STORAGE_URL", URL)
    resource = build_resources(Settings.from_env())["mlflow"]
    previous = mlflow.get_tracking_uri()
    try:
        resource.setup_for_execution(dg.build_init_resource_context())  # type: ignore[attr-defined]
        client = resource.client()  # type: ignore[attr-defined]
        experiment = client.get_experiment(resource.experiment_id())  # type: ignore[attr-defined]
        assert experiment.artifact_location == f"{URL}/mlartifacts/airquality-forecast"
        run_id = client.create_run(resource.experiment_id()).info.run_id  # type: ignore[attr-defined]
        client.log_text(run_id, "candidate summary", "reports/summary.txt")
        downloaded = Path(client.download_artifacts(run_id, "reports", str(data_dir / "dl")))
    finally:
        mlflow.set_tracking_uri(previous)

    key = f"prod/mlartifacts/airquality-forecast/{run_id}/artifacts/reports/summary.txt"
    assert _object(s3, key) == b"candidate summary"
    assert (downloaded / "summary.txt").read_text() == "candidate summary"


def test_pickle_io_manager_on_s3(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small values between training steps go through Dagster's own IO manager, on S3 too."""
    monkeypatch.setenv("AIRQUALITY_STORAGE_URL", URL)
    resources = build_resources(Settings.from_env())

    @dg.asset(io_manager_key="pickle_io_manager")
    def summary() -> dict[str, float]:
        return {"rmse": 1.5}

    @dg.asset(io_manager_key="pickle_io_manager")
    def report(summary: dict[str, float]) -> float:
        return summary["rmse"] * 2

    result = dg.materialize([summary, report], resources=resources)
    assert result.success and result.output_for_node("report") == 3.0
    assert {"prod/dagster_storage/summary", "prod/dagster_storage/report"} <= _keys(s3)


def test_issued_forecasts_on_s3_are_appended_never_rewritten(s3) -> None:
    from airquality_assets.monitoring.forecasting import ForecastStore

    store = ForecastStore(URL)
    day = date(2014, 3, 2)

    def issued(hours: list[int], version: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "location": "beijing",
                "issued_at": [datetime(2014, 3, 2, h, tzinfo=UTC) for h in hours],
                "target_time": [datetime(2014, 3, 2, h + 1, tzinfo=UTC) for h in hours],
                "horizon": 1,
                "pollutant": "pm2_5",
                "forecast": float(version),
                "last_observed": 10.0,
                "model_name": "m",
                "model_version": version,
            }
        )

    assert store.append("beijing", day, issued([0, 1], "1")) == (2, 0)
    assert store.append("beijing", day, issued([1, 2], "2")) == (1, 1)
    assert _keys(s3) == {"prod/forecasts/beijing/2014-03-02.parquet"}
    stored = store.read_day("beijing", day)
    assert list(stored["model_version"]) == ["1", "1", "2"]  # hour 1 stays what v1 said
