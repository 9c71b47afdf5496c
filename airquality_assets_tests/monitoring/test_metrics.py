"""Metric pushes reach a stand-in Pushgateway on 127.0.0.1 with the defined names and labels."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.monitoring.metrics import METRICS, PipelineMetrics

DEFINED = {spec.name: spec for spec in METRICS}


def _pushed(httpserver: HTTPServer, pushes: list[tuple[str, str, bytes]]) -> None:
    def handler(request: Request) -> Response:
        pushes.append((request.method, request.path, request.get_data()))
        return Response("", status=200)

    httpserver.expect_request("/metrics/job/ingestion/location/beijing").respond_with_handler(
        handler
    )


def test_push_reaches_gateway_with_defined_names_and_labels(httpserver: HTTPServer) -> None:
    pushes: list[tuple[str, str, bytes]] = []
    _pushed(httpserver, pushes)
    metrics = PipelineMetrics()
    for source in ("air_pollution", "weather"):
        metrics.inc("data_ingestion_total", 24, source=source, location="beijing")
        metrics.set("data_ingestion_volume_bytes", 5000, source=source, location="beijing")
        metrics.set("data_ingestion_time_seconds", 1.5, source=source, location="beijing")
        metrics.set(
            "data_ingestion_last_successful_timestamp_seconds",
            1.7e9,
            source=source,
            location="beijing",
        )
    metrics.inc("data_ingestion_errors_total", 1, source="weather", location="beijing")

    ok = metrics.push(
        f"http://127.0.0.1:{httpserver.port}", job="ingestion", grouping_key={"location": "beijing"}
    )

    assert ok
    assert len(pushes) == 1
    method, _path, body = pushes[0]
    assert method == "POST"  # pushadd: replaces only the pushed families of this group
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    for (name, labels), _ in samples.items():
        assert name in DEFINED, name
        assert tuple(sorted(k for k, _ in labels)) == tuple(sorted(DEFINED[name].labels))
    key = (("location", "beijing"), ("source", "air_pollution"))
    assert samples[("data_ingestion_total", key)] == 24
    assert samples[("data_ingestion_volume_bytes", key)] == 5000
    assert samples[("data_ingestion_time_seconds", key)] == 1.5
    assert samples[("data_ingestion_last_successful_timestamp_seconds", key)] == 1.7e9
    weather = (("location", "beijing"), ("source", "weather"))
    assert samples[("data_ingestion_errors_total", weather)] == 1


def test_push_without_gateway_is_a_no_op() -> None:
    metrics = PipelineMetrics()
    metrics.inc("retrain_requests_total", reason="drift")
    assert metrics.push(None, job="sensors") is False
    assert metrics.samples()[("retrain_requests_total", (("reason", "drift"),))] == 1


def test_unreachable_gateway_does_not_raise(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/metrics/job/drift").respond_with_data("boom", status=500)
    metrics = PipelineMetrics()
    metrics.set("data_drift_status", 2, location="beijing")
    assert metrics.push(f"http://127.0.0.1:{httpserver.port}", job="drift") is False


def test_wrong_labels_or_kind_are_rejected() -> None:
    metrics = PipelineMetrics()
    with pytest.raises(ValueError, match="takes labels"):
        metrics.inc("data_ingestion_total", source="weather")
    with pytest.raises(TypeError, match="is a gauge"):
        metrics.inc("data_drift_status", location="beijing")
    with pytest.raises(KeyError, match="unknown metric"):
        metrics.set("no_such_metric", 1.0)


def test_counter_names_in_the_table_end_in_total() -> None:
    for spec in METRICS:
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name


def test_counter_totals_accumulate_and_survive_a_cursor_round_trip() -> None:
    import json

    from airquality_assets.monitoring.metrics import CounterTotals

    totals = CounterTotals()
    totals.add("retrain_requests_total", reason="drift")
    totals.add("retrain_requests_total", 2, reason="drift")
    totals.add("retrain_requests_total", reason="accuracy")
    restored = CounterTotals(json.loads(json.dumps(totals.totals)))
    restored.add("retrain_requests_total", reason="drift")
    metrics = PipelineMetrics()
    restored.record(metrics)
    assert metrics.samples()[("retrain_requests_total", (("reason", "drift"),))] == 4
    assert metrics.samples()[("retrain_requests_total", (("reason", "accuracy"),))] == 1
    with pytest.raises(TypeError):
        totals.add("forecast_rmse", location="x", pollutant="pm2_5", horizon="1", window="7d",
                   model="champion")  # fmt: skip
