"""The high-pollution alert sensor against a real forecast store, a real Dagster sensor
context and a receiver on 127.0.0.1: a daily tick steps through every hourly issue, so a
smog day sends one alert and the clean day after it one "over"."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from airquality_assets.defs import build_definitions
from airquality_assets.defs.resources import OperationsResource
from airquality_assets.ml.intervals import Intervals
from airquality_assets.monitoring.forecasting import ForecastStore, forecast_frame
from airquality_assets.settings import Settings

HORIZONS = list(range(1, 25))
START = datetime(2014, 2, 19, tzinfo=UTC)


def store_days(settings: Settings, peaks_by_day: list[float]) -> None:
    """Hourly issues for each day; a day's every forecast peaks at its value at +6 h."""
    location = settings.location_names[0]
    store = ForecastStore(settings.storage_root)
    calibration = Intervals(0.8, ["pm2_5"], HORIZONS, [[-10.0] * 24], [[25.0] * 24], n=500)
    for d, peak in enumerate(peaks_by_day):
        issued = pd.date_range(START + timedelta(days=d), periods=24, freq="h")
        values = np.full((24, 24, 1), 20.0)
        values[:, 5, 0] = peak
        frame = forecast_frame(
            location, issued, values, np.full((24, 1), 20.0), ["pm2_5"], HORIZONS,
            "airquality-lstm", "2", intervals=calibration,
        )  # fmt: skip
        store.append(location, issued[0].date(), frame)


def tick(defs, cursor, now, operations):
    sensor = defs.resolve_sensor_def("pollution_alert_sensor")
    resources = {"deployment": defs.resources["deployment"].at(now), "operations": operations}
    with dg.build_sensor_context(cursor=cursor, resources=resources, definitions=defs) as context:
        return sensor.evaluate_tick(context)


@pytest.fixture
def receiver(httpserver: HTTPServer) -> tuple[str, list[dict]]:
    received: list[dict] = []

    def handle(request: Request) -> Response:
        received.append(json.loads(request.get_data()))
        return Response("", status=200)

    httpserver.expect_request("/subscribers", method="POST").respond_with_handler(handle)
    return f"json://127.0.0.1:{httpserver.port}/subscribers", received


def test_one_alert_for_a_smog_day_and_one_over(settings: Settings, receiver) -> None:
    url, received = receiver
    store_days(settings, [30.0, 30.0, 60.0, 30.0, 30.0, 30.0])  # day 3 forecasts Poor
    defs = build_definitions(settings)
    operations = OperationsResource(subscriber_alert_urls=url)
    cursor = None
    for d in range(6):
        data = tick(defs, cursor, START + timedelta(days=d, hours=23, minutes=10), operations)
        cursor = data.cursor
    titles = [r["title"] for r in received]
    location = settings.location_names[0]
    assert titles == [f"Air quality alert: {location} Poor (band 4)",
                      f"Air quality alert over: {location}"]  # fmt: skip
    assert "Peak 60 ug/m3 (interval 50-85)" in received[0]["message"]
    assert "issued 2014-02-21T00:00" in received[0]["message"]  # the first smog issue
    # The 12th clean issue in a row (day 4, 11:00) ends it.
    assert "issued at 2014-02-22T11:00" in received[1]["message"]
    assert json.loads(cursor)["open_since"] == {}
    # Ticking again with nothing new sends nothing.
    again = tick(defs, cursor, START + timedelta(days=6), operations)
    assert len(received) == 2 and "no change" in again.skip_message


def test_a_band_5_threshold_ignores_a_poor_day(settings: Settings, receiver) -> None:
    url, received = receiver
    store_days(settings, [30.0, 60.0, 30.0])
    defs = build_definitions(settings)
    operations = OperationsResource(subscriber_alert_urls=url, pollution_alert_band=5)
    cursor = None
    for d in range(3):
        cursor = tick(defs, cursor, START + timedelta(days=d, hours=23, minutes=10),
                      operations).cursor  # fmt: skip
    assert received == []
