"""Counting the pipeline's records into metrics, without a Dagster instance."""

from airquality_assets.monitoring.metrics import CounterTotals, PipelineMetrics
from airquality_assets.monitoring.pipeline_counts import (
    Materialization,
    TrainingRunChange,
    count_pipeline,
    location_of,
)


def test_location_of_a_multi_partition_key() -> None:
    assert location_of("2014-12-01|beijing") == "beijing"
    assert location_of(None) == "all"


def test_each_record_counts_once_under_its_own_labels() -> None:
    totals, metrics = CounterTotals({}), PipelineMetrics()
    count_pipeline(
        totals,
        metrics,
        [
            Materialization("raw_weather", "beijing", {"bytes": 10, "wall_seconds": 0.5}, 100.0),
            Materialization("raw_weather", "beijing", {"bytes": 20, "wall_seconds": 0.2}, 200.0),
            Materialization("forecasts", "beijing", {"issued": 3, "model": "m v2"}, 300.0),
            Materialization("forecasts", "beijing", {"issued": 0, "model": "m v2"}, 301.0),
            Materialization(
                "champion_model", "all", {"promoted": False, "champion_version": "2"}, 1
            ),
        ],
        [("raw_air_quality", "beijing")],
        [
            TrainingRunChange(None, 1.0, "drift"),
            TrainingRunChange(None, 2.0),
            TrainingRunChange("failure", 3.0),
        ],
    )
    weather = {"source": "weather", "location": "beijing"}
    assert totals.value("data_ingestion_total", **weather) == 2
    samples = metrics.samples()
    assert samples[("data_ingestion_volume_bytes", tuple(sorted(weather.items())))] == 20.0
    assert (
        totals.value("data_ingestion_errors_total", source="air_pollution", location="beijing") == 1
    )
    assert totals.value("forecasts_issued_total", location="beijing", model_version="2") == 3
    assert totals.value("model_promotion_total", outcome="rejected") == 1
    assert samples[("model_champion_version", (("model", "champion"),))] == 2.0
    assert totals.value("retrain_requests_total", reason="drift") == 1
    assert totals.value("retrain_requests_total", reason="manual") == 1
    assert totals.value("model_training_total", outcome="failure") == 1


def test_counters_that_did_not_move_are_present_at_zero() -> None:
    """A dashboard panel on an error counter reads 0, not "No data", once pulls ran."""
    totals, metrics = CounterTotals({}), PipelineMetrics()
    count_pipeline(
        totals,
        metrics,
        [
            Materialization("raw_weather", "beijing", {"bytes": 1}, 1.0),
            Materialization("champion_model", "all", {"promoted": True}, 2.0),
        ],
        [],
        [TrainingRunChange("success", 3.0)],
    )
    samples = metrics.samples()
    weather = (("location", "beijing"), ("source", "weather"))
    assert samples[("data_ingestion_errors_total", weather)] == 0.0
    assert samples[("data_ingestion_total", weather)] == 1.0
    assert samples[("model_training_total", (("outcome", "failure"),))] == 0.0
    assert samples[("model_training_total", (("outcome", "success"),))] == 1.0
    assert samples[("model_promotion_total", (("outcome", "rejected"),))] == 0.0
    # nothing is invented for what was never pulled
    assert not any(
        name == "data_ingestion_errors_total" and ("source", "air_pollution") in labels
        for name, labels in samples
    )
