"""The full Definitions load, and the asset graph has the shape the README describes."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from airquality_assets.definitions import defs as load_defs

DATA_ASSETS = {
    "raw_air_quality",
    "raw_weather",
    "air_quality_hourly",
    "weather_hourly",
    "hourly_observations",
}


#: The model half's libraries: seconds of start-up each, which a data run never needs.
HEAVY = ("keras", "jax", "mlflow", "bentoml", "lightgbm", "matplotlib", "optuna")


def _graph() -> dg.Definitions:
    return load_defs()


@pytest.mark.usefixtures("data_dir")
def test_data_assets_are_partitioned_by_month_and_location() -> None:
    defs = _graph()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys >= DATA_ASSETS
    for name in DATA_ASSETS:
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition)
        assert {d.name for d in partitions.partitions_defs} == {"date", "location"}
        assert "2014-06-01|beijing" in partitions.get_partition_keys()
        assert "2014-06-02|beijing" not in partitions.get_partition_keys()


@pytest.mark.usefixtures("data_dir")
def test_frames_carry_blocking_schema_checks_and_freshness() -> None:
    defs = _graph()
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for name in ("air_quality_hourly", "weather_hourly", "hourly_observations"):
        assert (name, "schema") in checks
        assert (name, "completeness") in checks
    assert ("hourly_observations", "hourly_observations_freshness") in checks
    spec = next(
        s for s in defs.resolve_assets_def("hourly_observations").check_specs if s.name == "schema"
    )
    assert spec.blocking


@pytest.mark.usefixtures("data_dir")
def test_lineage() -> None:
    graph = _graph().resolve_asset_graph()
    parents = {
        k.to_user_string() for k in graph.get(dg.AssetKey("hourly_observations")).parent_keys
    }
    assert parents == {"air_quality_hourly", "weather_hourly"}


@pytest.mark.usefixtures("data_dir")
def test_hourly_schedule_is_off_by_default_and_one_run_for_all_locations(monkeypatch) -> None:
    monkeypatch.setenv("AIRQUALITY_REPLAY_LOCATIONS", "3")
    defs = _graph()
    schedule = defs.resolve_schedule_def("hourly_ingestion_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    context = dg.build_schedule_context(
        repository_def=defs.get_repository_def(),
        resources={
            "deployment": defs.resources["deployment"],
            "raw_store": defs.resources["raw_store"],
        },
    )
    (request,) = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.tags["dagster/asset_partition_range_start"] == "2014-12-01|beijing-001"
    assert request.tags["dagster/asset_partition_range_end"] == "2014-12-01|beijing-003"


def test_loading_definitions_does_not_import_keras_jax_or_mlflow() -> None:
    """The UI, sensors and the data half must not pay keras/jax/mlflow start-up."""
    code = (
        "import sys; from airquality_assets.definitions import defs; defs(); "
        f"HEAVY = {HEAVY!r}; "
        "heavy = [m for m in HEAVY if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
